"""Typing rhythm of one simulated person: per-user parameters and keystroke timing.

Times are log-normal. A keystroke's hold time depends on its timing class and finger; the
press-to-press latency of a digraph on the pair of classes, hand alternation, same finger, same
key and key distance, each with user-specific weights. Texts are typed in bursts separated by
pauses, with slips corrected by backspace, capitals by a left or right shift.

Population figures (medians across people and spreads of log values between and within people)
follow published typing studies and were checked against summary statistics of the Aalto desktop
keystroke data: letter hold median ~100 ms (log sd 0.22 between people, ~0.28 within), letter
press-to-press latency ~170 ms (log sd ~0.3 between), ~15-20% of digraphs typed with rollover,
shift held ~270 ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from touchstone.collectors.sim_keyboard import (
    KEY_CLASS,
    KEY_CODE,
    KEY_FINGER,
    KEY_HAND,
    KEY_POS,
    N_CLASSES,
    SHIFTED,
    KeyClass,
    neighbours,
)

__all__ = ["TypingProfile", "TypingState", "Keystrokes", "type_units", "type_shortcut"]

K = KeyClass
_LETTER_CLASSES = np.array([K.LEFT, K.RIGHT])
_SHIFT_L = KEY_CODE["shift_l"]
_SHIFT_R = KEY_CODE["shift_r"]
_CTRL = KEY_CODE["ctrl_l"]
_BACKSPACE = KEY_CODE["backspace"]
_NEIGHBOURS = {c: tuple(KEY_CODE[n] for n in neighbours(c)) for c in "abcdefghijklmnopqrstuvwxyz"}
_IS_LETTER = np.isin(KEY_CLASS, _LETTER_CLASSES)
_MIN_INTERVAL_MS = 25.0
_SAME_KEY_GAP_MS = 5.0

# Hold-time offsets of each class relative to letters: (population mean, spread between people), log units.
_HOLD_CLASS = {
    K.SPACE: (0.0, 0.12),
    K.DIGIT: (0.05, 0.08),
    K.PUNCT: (0.05, 0.08),
    K.BACKSPACE: (-0.02, 0.10),
    K.ENTER: (0.10, 0.12),
    K.NAV: (0.15, 0.12),
    K.CTRL: (0.0, 0.0),
    K.SHIFT: (0.0, 0.0),
}
# Pinky .. index, thumb (mirrored for the right hand): slower outer fingers.
_HOLD_FINGER = (0.05, 0.02, 0.0, -0.02, 0.0, 0.0, -0.02, 0.0, 0.02, 0.05)


def _pair_population() -> np.ndarray:
    """Mean log offset of the press-to-press latency for each (previous class, next class)."""
    pair = np.zeros((N_CLASSES, N_CLASSES))
    letters = [K.LEFT, K.RIGHT]
    for a in letters:
        pair[a, K.SPACE] = -0.05
        pair[K.SPACE, a] = 0.12  # starting a word
    pair[:, K.DIGIT] += 0.15
    pair[K.DIGIT, :] += 0.15
    pair[K.DIGIT, K.DIGIT] = 0.05
    pair[:, K.PUNCT] += 0.25
    pair[K.PUNCT, K.SPACE] = -0.1
    pair[:, K.BACKSPACE] += 0.1
    pair[K.BACKSPACE, K.BACKSPACE] = -0.2
    pair[K.BACKSPACE, :] += 0.15
    pair[:, K.ENTER] += 0.35
    pair[K.ENTER, :] += 0.3
    pair[:, K.NAV] += 0.3
    pair[K.NAV, :] += 0.2
    return pair


_PAIR_POPULATION = _pair_population()


def _clipped_lognormal(rng: np.random.Generator, median: float, sd: float, low: float, high: float) -> float:
    return float(np.clip(median * math.exp(sd * rng.standard_normal()), low, high))


@dataclass(frozen=True, eq=False, slots=True)
class TypingProfile:
    """One person's typing parameters; times in ms, ``*_mu`` are log-ms medians, ``*_sigma`` log spreads."""

    hold_mu: np.ndarray  # per KeyClass
    finger_hold: np.ndarray  # per finger, log offset
    hold_sigma: float
    dd_mu: float  # press-to-press latency between two letters, before digraph effects
    pair_offset: np.ndarray  # (previous class, next class) log offset
    alternate: float  # log offset when the two keys are typed by different hands
    same_finger: float  # log offset for two different keys typed by the same finger
    repeat: float  # log offset for the same key twice
    distance: float  # log offset per key width between the two keys
    dd_sigma: float
    shift_lead_mu: float
    shift_lag_mu: float
    modifier_sigma: float
    opposite_shift: float  # probability of using the shift on the other hand than the key
    left_shift: float  # otherwise, probability of the left shift
    capitalise: float
    error_rate: float  # probability that a letter is a slip
    notice_mean: float  # keys typed after a slip before it is noticed, on average
    reaction_mu: float
    pause_word: float  # probability of a pause before a word
    pause_sentence: float
    pause_mu: float
    pause_sigma: float
    message_words_mu: float
    enter_to_send: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> TypingProfile:
        # Truncated normals: beyond ~2 sd lie people the population figures do not describe.
        speed = float(np.clip(rng.standard_normal(), -2.2, 2.2))  # fast typists also hold keys shorter
        own = float(np.clip(rng.standard_normal(), -2.5, 2.5))
        hold_base = math.log(100.0) + 0.22 * (0.45 * speed + math.sqrt(1 - 0.45**2) * own)
        hold_mu = np.full(N_CLASSES, hold_base)
        hold_mu[K.LEFT] += 0.05 * rng.standard_normal()
        hold_mu[K.RIGHT] += 0.05 * rng.standard_normal()
        for key_class, (mean, spread) in _HOLD_CLASS.items():
            hold_mu[key_class] += mean + spread * rng.standard_normal()
        finger_hold = np.asarray(_HOLD_FINGER) + 0.05 * rng.standard_normal(10)
        pair_offset = _PAIR_POPULATION + 0.10 * rng.standard_normal((N_CLASSES, N_CLASSES))
        return cls(
            hold_mu=hold_mu,
            finger_hold=finger_hold,
            hold_sigma=_clipped_lognormal(rng, 0.26, 0.2, 0.14, 0.45),
            dd_mu=math.log(180.0) + 0.28 * speed,
            pair_offset=pair_offset,
            alternate=-0.12 + 0.06 * rng.standard_normal(),
            same_finger=0.20 + 0.08 * rng.standard_normal(),
            repeat=-0.10 + 0.10 * rng.standard_normal(),
            distance=float(np.clip(0.04 + 0.02 * rng.standard_normal(), 0.0, 0.08)),
            dd_sigma=_clipped_lognormal(rng, 0.38, 0.15, 0.25, 0.6),
            shift_lead_mu=math.log(110.0) + 0.3 * rng.standard_normal(),
            shift_lag_mu=math.log(50.0) + 0.45 * rng.standard_normal(),
            modifier_sigma=_clipped_lognormal(rng, 0.4, 0.2, 0.2, 0.7),
            opposite_shift=float(rng.beta(1.5, 1.5)),
            left_shift=float(rng.beta(5.0, 1.5)),
            capitalise=float(rng.beta(6.0, 1.5)),
            error_rate=_clipped_lognormal(rng, 0.025, 0.5, 0.003, 0.1),
            notice_mean=float(rng.uniform(0.3, 2.5)),
            reaction_mu=math.log(350.0) + 0.3 * rng.standard_normal(),
            pause_word=float(rng.beta(2.0, 14.0)),
            pause_sentence=float(rng.beta(4.0, 4.0)),
            pause_mu=math.log(900.0) + 0.35 * rng.standard_normal(),
            pause_sigma=_clipped_lognormal(rng, 0.6, 0.2, 0.3, 1.0),
            message_words_mu=math.log(7.0) + 0.4 * rng.standard_normal(),
            enter_to_send=float(rng.beta(4.0, 2.0)),
        )


class TypingState:
    """Slow drift of one person's pace within a session (tiredness, attention): an AR(1) per text."""

    __slots__ = ("flight", "hold")
    _RHO = 0.9
    _FLIGHT_SD = 0.08
    _HOLD_SD = 0.04

    def __init__(self, rng: np.random.Generator) -> None:
        # Day-to-day offset of the whole session, then the drift around it.
        self.flight = self._FLIGHT_SD * rng.standard_normal()
        self.hold = self._HOLD_SD * rng.standard_normal()

    def step(self, rng: np.random.Generator) -> None:
        keep = math.sqrt(1 - self._RHO**2)
        self.flight = self._RHO * self.flight + keep * self._FLIGHT_SD * rng.standard_normal()
        self.hold = self._RHO * self.hold + keep * self._HOLD_SD * rng.standard_normal()


@dataclass(frozen=True, slots=True)
class Keystrokes:
    """Key events of one text, sorted by time: ``code`` indexes :data:`sim_keyboard.KEY_NAMES`."""

    t: np.ndarray
    down: np.ndarray
    code: np.ndarray

    @property
    def end(self) -> float:
        return float(self.t[-1]) if self.t.size else 0.0


_PAUSE_NONE, _PAUSE_WORD, _PAUSE_SENTENCE, _PAUSE_REACTION = 0, 1, 2, 3


def _plan(
    units: list[str], profile: TypingProfile, rng: np.random.Generator
) -> tuple[list[int], list[bool], list[int]]:
    """Key codes, shift flags and pause kinds of the keystrokes, slips and corrections included."""
    clean: list[tuple[int, bool, str]] = []
    for unit in units:
        if unit == " ":
            clean.append((KEY_CODE["space"], False, unit))
        elif unit in SHIFTED:
            clean.append((KEY_CODE[SHIFTED[unit]], True, unit))
        elif len(unit) == 1:
            lower = unit.lower()
            clean.append((KEY_CODE[lower], unit != lower, lower))
        else:
            clean.append((KEY_CODE[unit], False, unit))
    codes: list[int] = []
    shifted: list[bool] = []
    pauses: list[int] = []
    previous = ""
    i = 0
    slip_allowed = True
    while i < len(clean):
        code, shift, char = clean[i]
        pause = _PAUSE_NONE
        if previous in (" ", "tab") and char not in (" ", "tab"):
            before = clean[i - 2][2] if i >= 2 else ""
            if before in (".", "?", "!") or previous == "tab":
                pause = _PAUSE_SENTENCE if rng.random() < profile.pause_sentence else _PAUSE_NONE
            elif rng.random() < profile.pause_word:
                pause = _PAUSE_WORD
        if slip_allowed and char in _NEIGHBOURS and rng.random() < profile.error_rate:
            extra = min(int(rng.geometric(1.0 / (1.0 + profile.notice_mean))) - 1, len(clean) - i - 1)
            slip = _NEIGHBOURS[char]
            codes.append(slip[int(rng.integers(0, len(slip)))])
            shifted.append(shift)
            pauses.append(pause)
            for c, s, _ in clean[i + 1 : i + 1 + extra]:
                codes.append(c)
                shifted.append(s)
                pauses.append(_PAUSE_NONE)
            codes.extend([_BACKSPACE] * (extra + 1))
            shifted.extend([False] * (extra + 1))
            pauses.extend([_PAUSE_REACTION] + [_PAUSE_NONE] * extra)
            slip_allowed = False  # retype this key correctly
            previous = "backspace"
            continue
        codes.append(code)
        shifted.append(shift)
        pauses.append(pause)
        previous = char
        slip_allowed = True
        i += 1
    return codes, shifted, pauses


def _merge_intervals(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of [start, end] intervals closer than the same-key gap (one shift held over several keys)."""
    if start.size <= 1:
        return start, end
    order = np.argsort(start, kind="stable")
    start, end = start[order], end[order]
    reach = np.maximum.accumulate(end)
    new_group = np.empty(start.size, dtype=bool)
    new_group[0] = True
    new_group[1:] = start[1:] > reach[:-1] + _SAME_KEY_GAP_MS
    return start[new_group], np.maximum.reduceat(end, np.flatnonzero(new_group))


def _release_before_repress(code: np.ndarray, press: np.ndarray, release: np.ndarray) -> None:
    """A key cannot go down again before it came up: shorten holds that would overlap (in place)."""
    order = np.lexsort((press, code))
    same = code[order[1:]] == code[order[:-1]]
    if not same.any():
        return
    first, second = order[:-1][same], order[1:][same]
    gap = press[second] - press[first]
    latest = np.maximum(press[first] + 0.5 * gap, press[second] - _SAME_KEY_GAP_MS)
    release[first] = np.minimum(release[first], latest)


def _events(
    code: np.ndarray, press: np.ndarray, release: np.ndarray, extra: list[tuple[int, np.ndarray, np.ndarray]]
) -> Keystrokes:
    codes = [code, code]
    times = [press, release]
    downs = [np.ones(code.size, dtype=bool), np.zeros(code.size, dtype=bool)]
    for modifier, starts, ends in extra:
        codes += [np.full(starts.size, modifier, dtype=code.dtype)] * 2
        times += [starts, ends]
        downs += [np.ones(starts.size, dtype=bool), np.zeros(starts.size, dtype=bool)]
    t = np.concatenate(times)
    order = np.argsort(t, kind="stable")
    return Keystrokes(t=np.round(t[order], 3), down=np.concatenate(downs)[order], code=np.concatenate(codes)[order])


def _holds(code: np.ndarray, profile: TypingProfile, state: TypingState, rng: np.random.Generator) -> np.ndarray:
    log_hold = (
        profile.hold_mu[KEY_CLASS[code]]
        + profile.finger_hold[KEY_FINGER[code]]
        + state.hold
        + profile.hold_sigma * rng.standard_normal(code.size)
    )
    return np.clip(np.exp(log_hold), _MIN_INTERVAL_MS, 1500.0)


def type_units(
    units: list[str], start_ms: float, profile: TypingProfile, state: TypingState, rng: np.random.Generator
) -> Keystrokes:
    """Key events of ``units`` (see :mod:`sim_text`) typed by ``profile``, the first press after ``start_ms``."""
    codes, shifted, pauses = _plan(units, profile, rng)
    code = np.asarray(codes, dtype=np.int16)
    shift = np.asarray(shifted, dtype=bool)
    pause = np.asarray(pauses, dtype=np.int8)
    n = code.size
    if n == 0:
        return Keystrokes(t=np.zeros(0), down=np.zeros(0, dtype=bool), code=np.zeros(0, dtype=np.int16))
    state.step(rng)
    prev, nxt = code[:-1], code[1:]
    letters = _IS_LETTER[prev] & _IS_LETTER[nxt]
    same_key = prev == nxt
    distance = np.hypot(*(KEY_POS[nxt] - KEY_POS[prev]).T)
    log_dd = (
        profile.dd_mu
        + state.flight
        + profile.pair_offset[KEY_CLASS[prev], KEY_CLASS[nxt]]
        + profile.alternate * (letters & (KEY_HAND[prev] != KEY_HAND[nxt]))
        + profile.same_finger * (letters & (KEY_FINGER[prev] == KEY_FINGER[nxt]) & ~same_key)
        + profile.repeat * same_key
        + profile.distance * distance
        + profile.dd_sigma * rng.standard_normal(n - 1)
    )
    dd = np.empty(n)
    dd[0] = math.exp(profile.dd_mu + profile.dd_sigma * rng.standard_normal())
    dd[1:] = np.maximum(np.exp(log_dd), _MIN_INTERVAL_MS)
    pause_ms = np.zeros(n)
    for kind, mu, sigma in (
        (_PAUSE_WORD, profile.pause_mu, profile.pause_sigma),
        (_PAUSE_SENTENCE, profile.pause_mu + 0.4, profile.pause_sigma),
        (_PAUSE_REACTION, profile.reaction_mu, 0.35),
    ):
        where = pause == kind
        if where.any():
            pause_ms[where] = np.exp(mu + sigma * rng.standard_normal(int(where.sum())))
    lead = np.exp(profile.shift_lead_mu + profile.modifier_sigma * rng.standard_normal(n))
    lead = np.maximum(lead, 15.0) * shift
    press = start_ms + np.cumsum(dd + pause_ms + lead)
    release = press + _holds(code, profile, state, rng)
    _release_before_repress(code, press, release)

    extra: list[tuple[int, np.ndarray, np.ndarray]] = []
    if shift.any():
        lag = np.exp(profile.shift_lag_mu + profile.modifier_sigma * rng.standard_normal(n))
        key_hand = KEY_HAND[code]
        opposite = rng.random(n) < profile.opposite_shift
        left = np.where(opposite, key_hand == 1, rng.random(n) < profile.left_shift)
        for modifier, side in ((_SHIFT_L, left), (_SHIFT_R, ~left)):
            chosen = shift & side
            if chosen.any():
                extra.append((modifier, *_merge_intervals(press[chosen] - lead[chosen], release[chosen] + lag[chosen])))
    return _events(code, press, release, extra)


def type_shortcut(
    letter: str, start_ms: float, profile: TypingProfile, state: TypingState, rng: np.random.Generator
) -> Keystrokes:
    """``ctrl`` + ``letter`` (copy, paste, select all, undo)."""
    code = np.asarray([KEY_CODE[letter]], dtype=np.int16)
    lead = max(15.0, math.exp(profile.shift_lead_mu + 0.2 + profile.modifier_sigma * rng.standard_normal()))
    lag = math.exp(profile.shift_lag_mu + profile.modifier_sigma * rng.standard_normal())
    press = np.asarray([start_ms + lead])
    release = press + _holds(code, profile, state, rng)
    return _events(code, press, release, [(_CTRL, np.asarray([start_ms]), release + lag)])
