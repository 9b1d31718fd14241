"""Keystroke feature windows: press/release pairing and robust timing summaries. Transport-free.

:class:`KeystrokeWindower` pairs presses with releases incrementally, across batch
boundaries, and closes a window every ``window`` keystrokes (press order), early on
a long silence, or at flush. :func:`keystroke_features` summarises one window.

Pairing rules, all decided on event times so batch boundaries never matter:

* rollover (the next press before the previous release) is normal typing: a release
  ends the oldest held press of its token;
* a key pressed again while held, with no other press in between and at least
  ``repeat_delay_ms`` after its press (or right after a repeat), is auto-repeating:
  counted, not a keystroke; sooner, it is a second key with the same token;
* a press of a token whose earlier press has been held longer than ``max_hold_ms``
  means that press lost its release: its hold is unknown;
* a release of a key that is not down is counted and ignored;
* a window waits for the releases of its keys, but no longer than ``max_hold_ms``
  after a press (later than that the hold is unknown).

Timing definitions (ms), for keystrokes i and i+1 in press order: hold = release -
press; ``pp`` = press-to-press, ``rp`` = release-to-press (negative under rollover).
A press-to-press gap above ``pause_ms`` is a pause: it counts in the pause features
but not in flights or digraphs; a gap above ``burst_gap_ms`` ends a typing burst.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from touchstone.collectors.privacy import token_base, token_class
from touchstone.contracts import KeyEvents
from touchstone.streams.base import ClosedWindow

__all__ = ["KeystrokeWindower", "keystroke_features", "quantiles"]

STATE_VERSION = 1
_NO_RELEASE = -1.0

# Timing classes grouped for the per-group features: letters by hand, and a few keys.
_HAND = {"L.top": "L", "L.home": "L", "L.bottom": "L", "R.top": "R", "R.home": "R", "R.bottom": "R", "space": "S"}
_HOLD_GROUPS = {
    "L.top": "left",
    "L.home": "left",
    "L.bottom": "left",
    "R.top": "right",
    "R.home": "right",
    "R.bottom": "right",
    "space": "space",
    "erase": "erase",
    "shift": "shift",
    "shift_l": "shift",
    "shift_r": "shift",
    "punct": "punct",
    "digit": "digit",
    "enter": "enter",
}
_SHIFTS = frozenset({"shift", "shift_l", "shift_r"})
_SIDED_MODIFIERS = frozenset({"ctrl_l", "ctrl_r", "alt_l", "alt_r", "cmd_l", "cmd_r"})


def quantiles(sorted_values: Sequence[float], probs: Sequence[float]) -> list[float]:
    """Linear-interpolation quantiles (numpy's default) of an already sorted, non-empty sequence.

    >>> quantiles([1.0, 2.0, 3.0, 4.0], [0.25, 0.5, 0.75])
    [1.75, 2.5, 3.25]
    """
    last = len(sorted_values) - 1
    out = []
    for p in probs:
        pos = p * last
        low = int(pos)
        high = min(low + 1, last)
        frac = pos - low
        out.append(sorted_values[low] + (sorted_values[high] - sorted_values[low]) * frac)
    return out


def _summarise(features: dict[str, float], name: str, values: list[float]) -> None:
    if not values:
        return
    values.sort()
    q10, q25, q50, q75, q90 = quantiles(values, (0.1, 0.25, 0.5, 0.75, 0.9))
    features[f"{name}.median"] = q50
    features[f"{name}.iqr"] = q75 - q25
    features[f"{name}.p10"] = q10
    features[f"{name}.p90"] = q90
    features[f"{name}.mean"] = math.fsum(values) / len(values)


def _median(values: list[float]) -> float:
    values.sort()
    return quantiles(values, (0.5,))[0]


def keystroke_features(
    tokens: Sequence[str],
    press: Sequence[float],
    release: Sequence[float],
    *,
    pause_ms: float = 2000.0,
    burst_gap_ms: float = 500.0,
    max_hold_ms: float = 2000.0,
    repeats: int = 0,
) -> tuple[dict[str, float], dict[str, float]]:
    """Summary features and digraph latencies of one window of keystrokes (press order).

    ``release[i]`` is negative when the hold of keystroke i is unknown. Returns
    ``(features, grams)``; every value is finite. ``grams`` maps ``"a>b"`` to the mean
    press-to-press latency of that token digraph and ``"a"`` to the mean hold of token a.

    >>> f, g = keystroke_features(["a", "b", "a"], [0.0, 100.0, 250.0], [80.0, 190.0, 330.0])
    >>> f["hold.median"], f["pp.median"], g["a>b"], g["a"]
    (80.0, 125.0, 100.0, 80.0)
    """
    n = len(tokens)
    features: dict[str, float] = {}
    grams: dict[str, float] = {}
    if n == 0:
        return features, grams
    tokens = [token_base(tok) for tok in tokens]  # pairing slots matter for pairing only
    classes = [token_class(tok) for tok in tokens]

    holds: list[float] = []
    group_holds: dict[str, list[float]] = {}
    hold_sums: dict[str, list[float]] = {}
    valid_release = [False] * n
    for i in range(n):
        r = release[i]
        if r < 0.0:
            continue
        hold = r - press[i]
        if 0.0 <= hold <= max_hold_ms:
            valid_release[i] = True
            holds.append(hold)
            group = _HOLD_GROUPS.get(classes[i])
            if group is not None:
                group_holds.setdefault(group, []).append(hold)
            acc = hold_sums.get(tokens[i])
            if acc is None:
                hold_sums[tokens[i]] = [hold, 1.0]
            else:
                acc[0] += hold
                acc[1] += 1.0

    pp: list[float] = []
    rp: list[float] = []
    hand_pp: dict[str, list[float]] = {}
    digraph_sums: dict[str, list[float]] = {}
    gaps = pauses = rollovers = 0
    for i in range(n - 1):
        delta = press[i + 1] - press[i]
        if delta > burst_gap_ms:
            gaps += 1
        if delta > pause_ms:
            pauses += 1
            continue
        pp.append(delta)
        if valid_release[i]:
            flight = press[i + 1] - release[i]
            rp.append(flight)
            if flight < 0.0:
                rollovers += 1
        pair = _HAND.get(classes[i], "") + _HAND.get(classes[i + 1], "")
        if len(pair) == 2:
            hand_pp.setdefault(pair, []).append(delta)
        name = f"{tokens[i]}>{tokens[i + 1]}"
        acc = digraph_sums.get(name)
        if acc is None:
            digraph_sums[name] = [delta, 1.0]
        else:
            acc[0] += delta
            acc[1] += 1.0

    _summarise(features, "hold", holds)
    _summarise(features, "pp", pp)
    _summarise(features, "rp", rp)
    for group, values in group_holds.items():
        features[f"hold.{group}.median"] = _median(values)
    for pair, values in hand_pp.items():
        features[f"pp.{pair}.median"] = _median(values)
    pairs = n - 1
    if pairs:
        features["pause.rate"] = pauses / pairs
        features["burst.mean_keys"] = n / (gaps + 1)
        if rp:
            features["rollover.rate"] = rollovers / len(rp)
    span = press[-1] - press[0]
    if span > 0.0:
        features["rate.kps"] = 1000.0 * pairs / span

    erase = sum(1 for c in classes if c == "erase")
    features["erase.rate"] = erase / n
    runs = sum(1 for i in range(n) if classes[i] == "erase" and (i == 0 or classes[i - 1] != "erase"))
    features["erase.run_keys"] = erase / runs if runs else 0.0
    shifts = [i for i in range(n) if classes[i] in _SHIFTS]
    features["shift.rate"] = len(shifts) / n
    sided = sum(1 for i in shifts if classes[i] != "shift")
    if sided:
        features["shift.right_share"] = sum(1 for i in shifts if classes[i] == "shift_r") / sided
    # Ctrl/alt/cmd: which side a typist reaches for is a habit, like the shift side.
    sided_mods = [c for c in classes if c in _SIDED_MODIFIERS]
    if sided_mods:
        features["mod.right_share"] = sum(1 for c in sided_mods if c.endswith("_r")) / len(sided_mods)
    leads = [press[i + 1] - press[i] for i in shifts if i + 1 < n and classes[i + 1] not in _SHIFTS]
    leads = [v for v in leads if v <= pause_ms]
    if leads:
        features["shift.lead.median"] = _median(leads)
    features["repeat.rate"] = repeats / n

    for name, (total, count) in digraph_sums.items():
        grams[name] = total / count
    for name, (total, count) in hold_sums.items():
        grams[name] = total / count
    return features, grams


class KeystrokeWindower:
    """Per-session keystroke windows (streams/base.py's Windower).

    Parameters
    ----------
    window
        Keystrokes per window (Settings.key_window).
    close_pause_ms
        A press after this much silence closes the open window early ("pause");
        None disables it (the evaluation harness does, to follow its protocol).
    min_keys
        Smallest window a pause or flush emits; fewer keystrokes are dropped (counted).
    repeat_delay_ms
        A key pressed again while held, this long or longer after its press (or after
        an earlier repeat), is auto-repeating; sooner, it is a second key of the same
        token (two same-class keys under rollover when tokens carry no pairing slot).
    pause_ms, burst_gap_ms, max_hold_ms
        See the module docstring.

    >>> import numpy as np
    >>> w = KeystrokeWindower(window=2, min_keys=1)
    >>> ev = KeyEvents(t=np.array([0.0, 50.0, 120.0, 140.0]), down=np.array([True, True, False, False]),
    ...                key=("L.home", "R.top", "L.home", "R.top"))
    >>> [c.closed_by for c in w.push(ev)], w.flush("session_end")
    (['count'], [])
    """

    modality = "keys"
    MAX_HELD_PER_TOKEN = 8

    def __init__(
        self,
        window: int = 50,
        *,
        close_pause_ms: float | None = 10_000.0,
        min_keys: int = 10,
        repeat_delay_ms: float = 250.0,
        pause_ms: float = 2000.0,
        burst_gap_ms: float = 500.0,
        max_hold_ms: float = 2000.0,
    ) -> None:
        if window < 2:
            raise ValueError(f"window must be at least 2 keystrokes, not {window}")
        if not 1 <= min_keys <= window:
            raise ValueError(f"min_keys must lie in [1, window], not {min_keys}")
        for name, value in (
            ("repeat_delay_ms", repeat_delay_ms),
            ("pause_ms", pause_ms),
            ("burst_gap_ms", burst_gap_ms),
            ("max_hold_ms", max_hold_ms),
        ):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, not {value}")
        if close_pause_ms is not None and not (math.isfinite(close_pause_ms) and close_pause_ms > 0):
            raise ValueError(f"close_pause_ms must be positive or None, not {close_pause_ms}")
        self.window = window
        self.close_pause_ms = close_pause_ms
        self.min_keys = min_keys
        self.repeat_delay_ms = repeat_delay_ms
        self.pause_ms = pause_ms
        self.burst_gap_ms = burst_gap_ms
        self.max_hold_ms = max_hold_ms
        # Pending keystrokes in press order: token, press time, release time (or _NO_RELEASE).
        self._tokens: list[str] = []
        self._press: list[float] = []
        self._release: list[float] = []
        self._settled: list[bool] = []  # release seen, or known never to come
        self._repeats: list[int] = []  # auto-repeats per pending keystroke
        self._base = 0  # absolute number of the first pending keystroke
        # token -> keys held under it, oldest first: [absolute number, time of last press or repeat, repeats]
        self._down: dict[str, list[list[float]]] = {}
        self._last_press_token: str | None = None
        self._last_t: float | None = None
        self._index = 0
        self.counters: dict[str, int] = {
            "keystrokes": 0,
            "repeats": 0,
            "unmatched_releases": 0,
            "lost_releases": 0,
            "time_regressions": 0,
            "dropped_keys": 0,
        }

    # -- events -----------------------------------------------------------------------------

    def push(self, events: KeyEvents) -> list[ClosedWindow]:
        closed: list[ClosedWindow] = []
        t_values = events.t.tolist() if hasattr(events.t, "tolist") else list(events.t)
        downs = events.down.tolist() if hasattr(events.down, "tolist") else list(events.down)
        for t, down, token in zip(t_values, downs, events.key, strict=True):
            if not math.isfinite(t):
                self.counters["time_regressions"] += 1
                continue
            last = self._last_t
            if last is not None and t < last:
                self.counters["time_regressions"] += 1
                t = last
            if down:
                if self.close_pause_ms is not None and last is not None and t - last > self.close_pause_ms:
                    closed.extend(self._close_pending("pause"))
                self._press_key(t, token)
            else:
                self._release_key(t, token)
            self._last_t = t
            while len(self._tokens) >= self.window and self._ready(t):
                closed.append(self._emit(self.window, "count"))
        return closed

    def _press_key(self, t: float, token: str) -> None:
        held = self._down.get(token)
        if held:
            newest = held[-1]
            if self._last_press_token == token and (newest[2] > 0 or t - newest[1] >= self.repeat_delay_ms):
                newest[1] = t
                newest[2] += 1
                i = int(newest[0]) - self._base
                if 0 <= i < len(self._tokens):
                    self._repeats[i] += 1
                self.counters["repeats"] += 1
                return
            # Keys of this token held longer than a hold can last lost their release.
            while held and t - held[0][1] > self.max_hold_ms:
                self._settle(int(held.pop(0)[0]))
                self.counters["lost_releases"] += 1
            if len(held) >= self.MAX_HELD_PER_TOKEN:
                self._settle(int(held.pop(0)[0]))
                self.counters["lost_releases"] += 1
        else:
            held = self._down[token] = []
        held.append([self._base + len(self._tokens), t, 0])
        self._tokens.append(token)
        self._press.append(t)
        self._release.append(_NO_RELEASE)
        self._settled.append(False)
        self._repeats.append(0)
        self._last_press_token = token
        self.counters["keystrokes"] += 1

    def _release_key(self, t: float, token: str) -> None:
        held = self._down.get(token)
        if not held:
            self.counters["unmatched_releases"] += 1
            return
        absolute = int(held.pop(0)[0])
        if not held:
            del self._down[token]
        i = absolute - self._base
        if 0 <= i < len(self._tokens) and not self._settled[i]:
            self._release[i] = t
            self._settled[i] = True

    def _settle(self, absolute: int) -> None:
        i = absolute - self._base
        if 0 <= i < len(self._tokens):
            self._settled[i] = True

    def _ready(self, now: float) -> bool:
        """Whether the first ``window`` keystrokes all have their release or waited long enough."""
        limit = self._base + self.window
        for held in self._down.values():
            for entry in held:
                absolute = int(entry[0])
                i = absolute - self._base
                if absolute >= limit or i < 0 or self._settled[i]:
                    continue
                if now - self._press[i] <= self.max_hold_ms:
                    return False
                self._settled[i] = True  # held too long: the hold is unknown; the key stays down for repeats
        return True

    # -- windows ----------------------------------------------------------------------------

    def _emit(self, count: int, reason: str) -> ClosedWindow:
        tokens = self._tokens[:count]
        press = self._press[:count]
        release = [r if s else _NO_RELEASE for r, s in zip(self._release[:count], self._settled[:count], strict=True)]
        features, grams = keystroke_features(
            tokens,
            press,
            release,
            pause_ms=self.pause_ms,
            burst_gap_ms=self.burst_gap_ms,
            max_hold_ms=self.max_hold_ms,
            repeats=sum(self._repeats[:count]),
        )
        window = ClosedWindow(
            modality=self.modality,
            index=self._index,
            start_t=press[0],
            end_t=max(press[-1], max(release)),
            n_events=count,
            closed_by=reason,
            features=features,
            grams=grams,
        )
        self._index += 1
        del self._tokens[:count], self._press[:count], self._release[:count], self._settled[:count]
        del self._repeats[:count]
        self._base += count
        return window

    def _close_pending(self, reason: str) -> list[ClosedWindow]:
        count = len(self._tokens)
        if count == 0:
            return []
        if count < self.min_keys:
            self.counters["dropped_keys"] += count
            del self._tokens[:], self._press[:], self._release[:], self._settled[:], self._repeats[:]
            self._base += count
            return []
        return [self._emit(count, reason)]

    def flush(self, reason: str) -> list[ClosedWindow]:
        """Close what is open; windows shorter than ``min_keys`` are dropped."""
        closed: list[ClosedWindow] = []
        while len(self._tokens) >= self.window:
            closed.append(self._emit(self.window, reason))
        closed.extend(self._close_pending(reason))
        self._down.clear()
        self._last_press_token = None
        return closed

    # -- state ------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "config": {
                "window": self.window,
                "close_pause_ms": self.close_pause_ms,
                "min_keys": self.min_keys,
                "repeat_delay_ms": self.repeat_delay_ms,
                "pause_ms": self.pause_ms,
                "burst_gap_ms": self.burst_gap_ms,
                "max_hold_ms": self.max_hold_ms,
            },
            "tokens": list(self._tokens),
            "press": list(self._press),
            "release": list(self._release),
            "settled": list(self._settled),
            "repeats": list(self._repeats),
            "base": self._base,
            "down": {token: [list(entry) for entry in held] for token, held in self._down.items()},
            "last_press_token": self._last_press_token,
            "last_t": self._last_t,
            "index": self._index,
            "counters": dict(self.counters),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> KeystrokeWindower:
        if state.get("v") != STATE_VERSION:
            raise ValueError(f"unknown keystroke windower state version {state.get('v')!r}")
        windower = cls(**state["config"])
        windower._tokens = [str(v) for v in state["tokens"]]
        windower._press = [float(v) for v in state["press"]]
        windower._release = [float(v) for v in state["release"]]
        windower._settled = [bool(v) for v in state["settled"]]
        windower._repeats = [int(v) for v in state["repeats"]]
        windower._base = int(state["base"])
        windower._down = {
            str(token): [[int(e[0]), float(e[1]), int(e[2])] for e in held] for token, held in state["down"].items()
        }
        windower._last_press_token = state["last_press_token"]
        windower._last_t = None if state["last_t"] is None else float(state["last_t"])
        windower._index = int(state["index"])
        windower.counters.update({k: int(v) for k, v in state["counters"].items()})
        return windower
