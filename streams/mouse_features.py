"""Mouse dynamics: raw mouse events → actions → windows of K actions.

Segmentation follows the Balabit-challenge literature (Antal & Egyed-Zsigmond 2019,
after Ahmed & Traore 2007): a session's pointer trace is cut into

* **MM** (mouse move): moves with no button held, ended by a pause, a scroll, an
  orphan release or the start of a drag;
* **PC** (point-and-click): the moves leading to a click plus the click itself
  (press and release with the pointer still);
* **DD** (drag-and-drop): press, the moves while held, release.

A pause is a gap of more than ``pause_ms`` between consecutive events with no button
held. The default, 1 s, ends an action when the hand rests: aimed movements last well
under a second or two (Fitts), and 1 s is still about eight sampling intervals of the
slowest clients seen (RDP at ~110-125 ms). Antal & Egyed-Zsigmond split Balabit at 10 s.
On a training-only validation split of Balabit (later sessions held out), 10 s scored a
little higher against impostors from any user (session AUC 0.91 vs 0.90) and 1 s a
little higher against impostors sampled at the owner's rate (0.83 vs 0.82), which is
the case at one workstation. A press followed by less than ``drag_px`` of travel
before its release is a click (4 px is the Windows drag threshold, ``SM_CXDRAG``);
more travel makes a drag. Mouse moves of fewer than ``min_move_points`` points are
too short to measure and dropped (Antal & Egyed-Zsigmond use 4); clicks are kept even
without a preceding move, their hold time is behaviour. An action longer than ``max_points`` events is cut there, which
bounds the state kept for the open action.

Per action (:data:`ACTION_FIELDS`): type, size, duration, travelled length, end-to-end
distance, straightness, direction, velocity along x, y and the path, acceleration,
jerk, angular velocity, curvature, turning, critical points, pauses, largest deviation
from the end-to-end line, time to peak speed, click hold and pre-click dwell. Points
sharing a timestamp keep their geometry but are merged for derivatives, and every
time step is taken as at least 1 ms, so no value is NaN or infinite.

Everything is vectorised over all the actions a batch closes: per push, the cost is a
few dozen numpy calls plus a Python step per button event or pause, not per move.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np

from touchstone.config import Settings
from touchstone.contracts import MouseEvents, MouseKind
from touchstone.streams.base import ClosedWindow

__all__ = [
    "ACTION_FIELDS",
    "ActionType",
    "MouseWindower",
    "SegmentParams",
    "action_features",
    "extract_actions",
    "window_features",
]

log = logging.getLogger(__name__)

STATE_VERSION = 1


class ActionType(IntEnum):
    MM = 0
    PC = 1
    DD = 2


# Plain ints for the per-event loops: enum member lookups cost more than the comparisons.
_MOVE, _PRESS, _RELEASE, _SCROLL = (
    int(k) for k in (MouseKind.MOVE, MouseKind.PRESS, MouseKind.RELEASE, MouseKind.SCROLL)
)
_MM, _PC, _DD = int(ActionType.MM), int(ActionType.PC), int(ActionType.DD)

ACTION_FIELDS: tuple[str, ...] = (
    "type",
    "n_points",
    "duration_ms",
    "length_px",
    "distance_px",
    "straightness",
    "dir_cos",
    "dir_sin",
    "largest_dev_px",
    "turn_abs_rad",
    "turn_net_rad",
    "critical_points",
    "curv_mean",
    "curv_std",
    "curv_absmax",
    "omega_mean",
    "omega_std",
    "omega_absmax",
    "v_mean",
    "v_std",
    "v_max",
    "v_min",
    "vx_mean",
    "vx_std",
    "vx_max",
    "vx_min",
    "vy_mean",
    "vy_std",
    "vy_max",
    "vy_min",
    "a_mean",
    "a_std",
    "a_max",
    "a_min",
    "jerk_mean",
    "jerk_std",
    "jerk_max",
    "jerk_min",
    "t_peak_v_ms",
    "t_peak_v_frac",
    "pauses",
    "pause_frac",
    "hold_ms",
    "pre_click_ms",
)
_F = {name: i for i, name in enumerate(ACTION_FIELDS)}
# A turn sharper than this between two consecutive path steps is a critical point.
CRITICAL_TURN_RAD = math.pi / 4
# A gap this long inside an action (shorter than a splitting pause) counts as a hesitation.
INNER_PAUSE_MS = 300.0
# Time steps shorter than this are clock jitter; derivatives use at least this step.
MIN_DT_MS = 1.0


DEFAULT_PAUSE_MS = 1_000.0
# How long after its capture an event may still sit in the collector's queue when a batch is anchored.
ANCHOR_MARGIN_MS = 500.0
DEFAULT_DRAG_PX = 4.0
DEFAULT_MIN_MOVE_POINTS = 4
DEFAULT_MAX_POINTS = 400


@dataclass(frozen=True, slots=True)
class SegmentParams:
    """How raw events are cut into actions (see the module docstring)."""

    pause_ms: float = DEFAULT_PAUSE_MS
    drag_px: float = DEFAULT_DRAG_PX
    min_move_points: int = DEFAULT_MIN_MOVE_POINTS
    max_points: int = DEFAULT_MAX_POINTS

    def __post_init__(self) -> None:
        if not self.pause_ms > 0:
            raise ValueError(f"pause_ms must be positive, not {self.pause_ms}")
        if not self.drag_px >= 0:
            raise ValueError(f"drag_px must be >= 0, not {self.drag_px}")
        if self.min_move_points < 2:
            raise ValueError(f"min_move_points must be at least 2, not {self.min_move_points}")
        if self.max_points < max(8, self.min_move_points):
            raise ValueError(f"max_points must be at least 8, not {self.max_points}")


# ----------------------------------------------------------------------------------------------
# Segmentation


@dataclass(slots=True)
class _Scan:
    """Spans of the actions a scan closed: point range [first, last], closing event, click timings."""

    kinds: list[int]
    first: list[int]
    last: list[int]
    end_event: list[int]
    hold_ms: list[float]
    pre_click_ms: list[float]
    dropped_short: int = 0
    seg_start: int = 0
    pressed: bool = False
    press_idx: int = 0
    # True when the unconsumed events begin inside a held drag (the open action was cut there).
    start_pressed: bool = False


def _scan(
    t: np.ndarray, kind: np.ndarray, x: np.ndarray, y: np.ndarray, params: SegmentParams, pressed: bool, final: bool
) -> _Scan:
    """Cut the events into actions; what is still open at the end stays unconsumed (``seg_start`` onwards).

    ``pressed`` says a button is held at index 0 (a drag continued from a cut action).
    ``final`` closes the open action too (session end or idle flush).
    """
    n = t.shape[0]
    out = _Scan([], [], [], [], [], [], pressed=pressed, press_idx=0, start_pressed=pressed)
    gap = np.zeros(n, dtype=bool)
    if n > 1:
        gap[1:] = np.diff(t) > params.pause_ms
    special = np.flatnonzero(gap | (kind != _MOVE))
    drag2 = params.drag_px * params.drag_px

    def close_move(stop: int) -> None:
        """Close [seg_start, stop) as a mouse move, if long enough."""
        start = out.seg_start
        if stop - start >= params.min_move_points:
            out.kinds.append(_MM)
            out.first.append(start)
            out.last.append(stop - 1)
            out.end_event.append(stop - 1)
            out.hold_ms.append(0.0)
            out.pre_click_ms.append(0.0)
        elif stop > start:
            out.dropped_short += 1

    def close_press(end: int, release_t: float) -> None:
        """Close the held press at ``end`` (release index, or the last event of a cut drag)."""
        p = out.press_idx
        hold = max(release_t - float(t[p]), 0.0)
        dx = x[p : end + 1] - x[p]
        dy = y[p : end + 1] - y[p]
        dragged = bool(((dx * dx + dy * dy) > drag2).any())
        if dragged:
            close_move(p)
            out.kinds.append(_DD)
            out.first.append(p)
            out.last.append(end)
            out.pre_click_ms.append(0.0)
        else:
            out.kinds.append(_PC)
            out.first.append(out.seg_start)
            out.last.append(p)
            out.pre_click_ms.append(float(t[p] - t[p - 1]) if p > out.seg_start else 0.0)
        out.end_event.append(end)
        out.hold_ms.append(hold)
        out.pressed = False

    def enforce_cap(upto: int) -> None:
        """Cut the open action so that no more than max_points events stay buffered."""
        while upto - out.seg_start > params.max_points:
            cut = out.seg_start + params.max_points
            held = out.pressed
            if held:
                close_press(cut - 1, float(t[cut - 1]))
                out.pressed = True  # the button is still held: the drag continues from the cut
                out.press_idx = cut
            else:
                close_move(cut)
            out.seg_start = cut
            out.start_pressed = held

    for i in special.tolist():
        enforce_cap(i)
        k = int(kind[i])
        if gap[i] and not out.pressed:
            close_move(i)
            out.seg_start = i
            out.start_pressed = False
        if k == _PRESS:
            if not out.pressed:
                out.pressed = True
                out.press_idx = i
        elif k == _RELEASE:
            if out.pressed:
                close_press(i, float(t[i]))
            else:
                close_move(i)
            out.seg_start = i + 1
            out.start_pressed = False
        elif k == _SCROLL and not out.pressed:
            close_move(i)
            out.seg_start = i + 1
            out.start_pressed = False
    enforce_cap(n)
    if final and out.seg_start < n:
        if out.pressed:
            close_press(n - 1, float(t[n - 1]))
        else:
            close_move(n)
        out.seg_start = n
        out.start_pressed = False
    return out


# ----------------------------------------------------------------------------------------------
# Per-action features, vectorised over actions


def _group_stats(
    values: np.ndarray, group: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, std, max, min of ``values`` per group; 0 for a group without values."""
    count = np.bincount(group, minlength=n_groups).astype(np.float64)
    total = np.bincount(group, weights=values, minlength=n_groups)
    squares = np.bincount(group, weights=values * values, minlength=n_groups)
    safe = np.maximum(count, 1.0)
    mean = total / safe
    std = np.sqrt(np.maximum(squares / safe - mean * mean, 0.0))
    high = np.full(n_groups, -np.inf)
    low = np.full(n_groups, np.inf)
    np.maximum.at(high, group, values)
    np.minimum.at(low, group, values)
    empty = count == 0
    high[empty] = 0.0
    low[empty] = 0.0
    return mean, std, high, low


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2.0 * np.pi) - np.pi


def action_features(
    t: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    kinds: np.ndarray,
    first: np.ndarray,
    last: np.ndarray,
    hold_ms: np.ndarray,
    pre_click_ms: np.ndarray,
) -> np.ndarray:
    """Feature matrix (actions × :data:`ACTION_FIELDS`) for the point spans ``[first, last]``; all finite."""
    n_act = int(first.shape[0])
    out = np.zeros((n_act, len(ACTION_FIELDS)), dtype=np.float64)
    if n_act == 0:
        return out
    sizes = last - first + 1
    seg = np.repeat(np.arange(n_act), sizes)
    offsets = np.cumsum(sizes) - sizes
    idx = np.repeat(first - offsets, sizes) + np.arange(int(sizes.sum()))
    pt, px, py = t[idx], x[idx], y[idx]
    head = offsets
    tail = offsets + sizes - 1

    # Path geometry on every point.
    same = np.zeros(idx.shape[0], dtype=bool)
    same[1:] = seg[1:] == seg[:-1]
    step = np.flatnonzero(same)
    dx = px[step] - px[step - 1]
    dy = py[step] - py[step - 1]
    ds = np.hypot(dx, dy)
    step_seg = seg[step]
    length = np.bincount(step_seg, weights=ds, minlength=n_act)
    ex = px[tail] - px[head]
    ey = py[tail] - py[head]
    distance = np.hypot(ex, ey)
    duration = pt[tail] - pt[head]
    out[:, _F["type"]] = kinds
    out[:, _F["n_points"]] = sizes
    out[:, _F["duration_ms"]] = duration
    out[:, _F["length_px"]] = length
    out[:, _F["distance_px"]] = distance
    out[:, _F["straightness"]] = np.where(length > 0, distance / np.maximum(length, 1e-12), 1.0)
    out[:, _F["dir_cos"]] = np.where(distance > 0, ex / np.maximum(distance, 1e-12), 0.0)
    out[:, _F["dir_sin"]] = np.where(distance > 0, ey / np.maximum(distance, 1e-12), 0.0)

    # Largest perpendicular deviation from the start→end line (from the start point when it is closed).
    rx = px - px[head][seg]
    ry = py - py[head][seg]
    norm = distance[seg]
    cross = np.abs(rx * ey[seg] - ry * ex[seg]) / np.maximum(norm, 1e-12)
    deviation = np.where(norm > 0, cross, np.hypot(rx, ry))
    largest = np.zeros(n_act)
    np.maximum.at(largest, seg, deviation)
    out[:, _F["largest_dev_px"]] = largest

    # Turning between consecutive steps that move.
    moving = ds > 0
    m_seg = step_seg[moving]
    theta = np.arctan2(dy[moving], dx[moving])
    m_ds = ds[moving]
    m_t = pt[step[moving]]
    consecutive = np.flatnonzero(m_seg[1:] == m_seg[:-1]) + 1
    turn = _wrap(theta[consecutive] - theta[consecutive - 1])
    turn_seg = m_seg[consecutive]
    out[:, _F["turn_abs_rad"]] = np.bincount(turn_seg, weights=np.abs(turn), minlength=n_act)
    out[:, _F["turn_net_rad"]] = np.bincount(turn_seg, weights=turn, minlength=n_act)
    out[:, _F["critical_points"]] = np.bincount(
        turn_seg, weights=(np.abs(turn) > CRITICAL_TURN_RAD).astype(np.float64), minlength=n_act
    )
    curvature = turn / np.maximum(m_ds[consecutive], 1e-12)
    mean, std, high, low = _group_stats(curvature, turn_seg, n_act)
    out[:, _F["curv_mean"]] = mean
    out[:, _F["curv_std"]] = std
    out[:, _F["curv_absmax"]] = np.maximum(high, -low)
    turn_dt = np.maximum(m_t[consecutive] - m_t[consecutive - 1], MIN_DT_MS)
    omega = turn / turn_dt * 1000.0
    mean, std, high, low = _group_stats(omega, turn_seg, n_act)
    out[:, _F["omega_mean"]] = mean
    out[:, _F["omega_std"]] = std
    out[:, _F["omega_absmax"]] = np.maximum(high, -low)

    # Kinematics on distinct timestamps: the last point of each run of equal times, path length accumulated.
    # (Path lengths are summed per kept point, never as a running total, so an action's
    # values do not depend on which other actions share the batch, bit for bit.)
    keep = np.ones(idx.shape[0], dtype=bool)
    keep[:-1] = ~(same[1:] & (pt[1:] == pt[:-1]))
    rank = np.cumsum(keep) - keep  # for every point, the index of the kept point that closes its run
    n_kept = int(keep.sum())
    kept_ds = np.bincount(rank[step], weights=ds, minlength=n_kept)
    kt, kx, ky, kseg = pt[keep], px[keep], py[keep], seg[keep]
    k_pair = np.flatnonzero(kseg[1:] == kseg[:-1]) + 1
    dt = np.maximum(kt[k_pair] - kt[k_pair - 1], MIN_DT_MS)
    v_seg = kseg[k_pair]
    vx = (kx[k_pair] - kx[k_pair - 1]) / dt * 1000.0
    vy = (ky[k_pair] - ky[k_pair - 1]) / dt * 1000.0
    v = kept_ds[k_pair] / dt * 1000.0
    for name, values in (("v", v), ("vx", vx), ("vy", vy)):
        mean, std, high, low = _group_stats(values, v_seg, n_act)
        out[:, _F[f"{name}_mean"]] = mean
        out[:, _F[f"{name}_std"]] = std
        out[:, _F[f"{name}_max"]] = high
        out[:, _F[f"{name}_min"]] = low
    mid_t = kt[k_pair] - dt / 2.0
    a_pair = np.flatnonzero(v_seg[1:] == v_seg[:-1]) + 1
    a_dt = np.maximum(mid_t[a_pair] - mid_t[a_pair - 1], MIN_DT_MS)
    accel = (v[a_pair] - v[a_pair - 1]) / a_dt * 1000.0
    a_seg = v_seg[a_pair]
    mean, std, high, low = _group_stats(accel, a_seg, n_act)
    out[:, _F["a_mean"]], out[:, _F["a_std"]], out[:, _F["a_max"]], out[:, _F["a_min"]] = mean, std, high, low
    a_mid = mid_t[a_pair] - a_dt / 2.0
    j_pair = np.flatnonzero(a_seg[1:] == a_seg[:-1]) + 1
    j_dt = np.maximum(a_mid[j_pair] - a_mid[j_pair - 1], MIN_DT_MS)
    jerk = (accel[j_pair] - accel[j_pair - 1]) / j_dt * 1000.0
    mean, std, high, low = _group_stats(jerk, a_seg[j_pair], n_act)
    out[:, _F["jerk_mean"]], out[:, _F["jerk_std"]] = mean, std
    out[:, _F["jerk_max"]], out[:, _F["jerk_min"]] = high, low

    # Time to peak speed: the first step reaching the action's maximum speed.
    v_max = out[v_seg, _F["v_max"]]
    at_peak = np.flatnonzero(v >= v_max)
    peak_t = np.full(n_act, np.inf)
    np.minimum.at(peak_t, v_seg[at_peak], kt[k_pair][at_peak])
    has_peak = np.isfinite(peak_t)
    since = np.where(has_peak, peak_t - pt[head], 0.0)
    out[:, _F["t_peak_v_ms"]] = since
    out[:, _F["t_peak_v_frac"]] = np.where(duration > 0, since / np.maximum(duration, 1e-12), 0.0)

    raw_dt = kt[k_pair] - kt[k_pair - 1]
    hesitant = raw_dt > INNER_PAUSE_MS
    out[:, _F["pauses"]] = np.bincount(v_seg, weights=hesitant.astype(np.float64), minlength=n_act)
    paused = np.bincount(v_seg, weights=np.where(hesitant, raw_dt, 0.0), minlength=n_act)
    out[:, _F["pause_frac"]] = np.where(duration > 0, paused / np.maximum(duration, 1e-12), 0.0)
    out[:, _F["hold_ms"]] = hold_ms
    out[:, _F["pre_click_ms"]] = pre_click_ms
    # Belt and braces: extreme inputs (coordinates near the contract's 1e6 px bound) must not leak inf.
    np.nan_to_num(out, copy=False, nan=0.0, posinf=1e300, neginf=-1e300)
    return out


def extract_actions(events: MouseEvents, params: SegmentParams = SegmentParams()) -> np.ndarray:
    """All actions of a complete event stream (session end closes the last one), as a feature matrix."""
    t = np.asarray(events.t, dtype=np.float64)
    scan = _scan(t, np.asarray(events.kind), events.x, events.y, params, pressed=False, final=True)
    return _features_of(scan, t, events.x, events.y)


def _features_of(scan: _Scan, t: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return action_features(
        t,
        x,
        y,
        np.asarray(scan.kinds, dtype=np.float64),
        np.asarray(scan.first, dtype=np.int64),
        np.asarray(scan.last, dtype=np.int64),
        np.asarray(scan.hold_ms, dtype=np.float64),
        np.asarray(scan.pre_click_ms, dtype=np.float64),
    )


# ----------------------------------------------------------------------------------------------
# Window summaries


_SUMMARISED = tuple(name for name in ACTION_FIELDS if name != "type")


def window_features(actions: np.ndarray, n_scrolls: int = 0) -> dict[str, float]:
    """Robust summaries of a window's actions: median and IQR per field, type shares, scroll count."""
    if actions.ndim != 2 or actions.shape[0] == 0:
        return {}
    q25, q50, q75 = np.percentile(actions, [25.0, 50.0, 75.0], axis=0)
    features: dict[str, float] = {}
    for name in _SUMMARISED:
        j = _F[name]
        features[f"{name}.median"] = float(q50[j])
        features[f"{name}.iqr"] = float(q75[j] - q25[j])
    types = actions[:, _F["type"]]
    for action_type in ActionType:
        features[f"share.{action_type.name}"] = float(np.mean(types == action_type))
    features["actions"] = float(actions.shape[0])
    features["scrolls"] = float(n_scrolls)
    return features


# ----------------------------------------------------------------------------------------------
# The windower


_EMPTY_F = np.zeros(0, dtype=np.float64)


class MouseWindower:
    """Per-session mouse windower: push events batch after batch, get a window every ``window_actions`` actions.

    The open action's events stay buffered (at most ``max_points``) and the closed
    actions of the open window are kept as feature vectors, so a window never depends
    on how the events were batched, and the state stays small.

    >>> from touchstone.contracts import MouseEvents
    >>> w = MouseWindower(window_actions=2)
    >>> ts = np.arange(12) * 20.0
    >>> ev = MouseEvents(t=ts, kind=np.zeros(12, np.int8), x=ts, y=ts * 0, button=np.zeros(12, np.int16))
    >>> w.push(ev)  # one long move, still open
    []
    >>> [len(window.actions) for window in w.flush("session_end")]
    [1]
    """

    modality = "mouse"

    def __init__(
        self,
        window_actions: int | None = None,
        *,
        pause_ms: float = DEFAULT_PAUSE_MS,
        drag_px: float = DEFAULT_DRAG_PX,
        min_move_points: int = DEFAULT_MIN_MOVE_POINTS,
        max_points: int = DEFAULT_MAX_POINTS,
    ) -> None:
        self.window_actions = Settings().mouse_window if window_actions is None else int(window_actions)
        if self.window_actions < 1:
            raise ValueError(f"window_actions must be at least 1, not {self.window_actions}")
        self.params = SegmentParams(
            pause_ms=float(pause_ms),
            drag_px=float(drag_px),
            min_move_points=int(min_move_points),
            max_points=int(max_points),
        )
        # Buffered, unconsumed events (the open action) and the held-button state at their start.
        self._t = _EMPTY_F
        self._kind = np.zeros(0, dtype=np.int8)
        self._x = _EMPTY_F
        self._y = _EMPTY_F
        self._pressed = False
        # Closed actions of the open window, and how they map onto events.
        self._actions: list[list[float]] = []
        self._start_t = 0.0
        self._end_t = 0.0
        self._scrolls = 0
        self.index = 0
        self._consumed = 0  # events before the buffer, over the whole session
        self._window_from = 0  # first event of the open window
        # Counters, for metrics.
        self.events_in = 0
        self.actions_out = 0
        self.dropped_short = 0
        self.max_buffered = 0

    @classmethod
    def from_settings(cls, settings: Settings, **params: Any) -> MouseWindower:
        return cls(settings.mouse_window, **params)

    # -- Windower protocol ----------------------------------------------------------------------

    def push(self, events: MouseEvents) -> list[ClosedWindow]:
        n_new = len(events)
        if n_new == 0:
            return []
        self.events_in += n_new
        new_t = np.asarray(events.t, dtype=np.float64)
        new_kind = np.asarray(events.kind, dtype=np.int8)
        new_x = np.asarray(events.x, dtype=np.float64)
        new_y = np.asarray(events.y, dtype=np.float64)
        if self._t.shape[0] == 0:  # nothing buffered (the pointer rested): no concatenation needed
            t, kind, x, y = new_t, new_kind, new_x, new_y
        else:
            t = np.concatenate((self._t, new_t))
            kind = np.concatenate((self._kind, new_kind))
            x = np.concatenate((self._x, new_x))
            y = np.concatenate((self._y, new_y))
        return self._advance(t, kind, x, y, final=False, reason="count")

    def advance(self, now_t: float) -> list[ClosedWindow]:
        """No mouse event arrived up to capture time ``now_t`` (the batch anchor).

        A resting pointer ends the open move exactly as the next event after the pause would, so
        the move is closed now instead of when the hand returns to the mouse (possibly minutes of
        typing later). The same actions and windows result, only sooner. ``ANCHOR_MARGIN_MS``
        covers events still queued in the collector when it stamped the anchor. A held button
        (a drag) is never cut.
        """
        n = self._t.shape[0]
        if n == 0 or now_t - float(self._t[-1]) <= self.params.pause_ms + ANCHOR_MARGIN_MS:
            return []
        # Held at the end of the buffer: the last button event is a press (or none, and held at its start).
        buttons = np.flatnonzero((self._kind == _PRESS) | (self._kind == _RELEASE))
        pressed = self._pressed if buttons.size == 0 else bool(self._kind[buttons[-1]] == _PRESS)
        if pressed:
            return []
        return self._advance(self._t, self._kind, self._x, self._y, final=True, reason="count")

    def flush(self, reason: str) -> list[ClosedWindow]:
        windows: list[ClosedWindow] = []
        if self._t.shape[0]:
            windows = self._advance(self._t, self._kind, self._x, self._y, final=True, reason=reason)
        if self._actions:
            windows.append(self._close(reason))
        return windows

    # -- internals -------------------------------------------------------------------------------

    def _advance(
        self, t: np.ndarray, kind: np.ndarray, x: np.ndarray, y: np.ndarray, *, final: bool, reason: str
    ) -> list[ClosedWindow]:
        scan = _scan(t, kind, x, y, self.params, pressed=self._pressed, final=final)
        self.dropped_short += scan.dropped_short
        windows: list[ClosedWindow] = []
        consumed_scrolls = np.flatnonzero(kind[: scan.seg_start] == _SCROLL)
        if scan.kinds:
            matrix = _features_of(scan, t, x, y)
            scroll_at = 0
            for row, first, end_event in zip(matrix.tolist(), scan.first, scan.end_event, strict=True):
                # Scrolls are not actions; each counts in the window of the action that follows it.
                before = int(np.searchsorted(consumed_scrolls, end_event, side="right"))
                self._scrolls += before - scroll_at
                scroll_at = before
                if not self._actions:
                    self._start_t = float(t[first])
                self._actions.append(row)
                self._end_t = float(t[end_event])
                self.actions_out += 1
                if len(self._actions) >= self.window_actions:
                    windows.append(self._close("count", upto=self._consumed + end_event + 1))
            self._scrolls += consumed_scrolls.shape[0] - scroll_at
        else:
            self._scrolls += consumed_scrolls.shape[0]
        start = scan.seg_start
        self._consumed += start
        self._t, self._kind = t[start:].copy(), kind[start:].copy()
        self._x, self._y = x[start:].copy(), y[start:].copy()
        self._pressed = scan.start_pressed
        self.max_buffered = max(self.max_buffered, self._t.shape[0])
        return windows

    def _close(self, reason: str, upto: int | None = None) -> ClosedWindow:
        upto = self._consumed if upto is None else upto
        matrix = np.asarray(self._actions, dtype=np.float64)
        window = ClosedWindow(
            modality=self.modality,
            index=self.index,
            start_t=self._start_t,
            end_t=self._end_t,
            n_events=max(upto - self._window_from, 0),
            closed_by=reason,
            features=window_features(matrix, self._scrolls),
            actions=self._actions,
            action_fields=list(ACTION_FIELDS),
        )
        self.index += 1
        self._window_from = upto
        self._actions = []
        self._scrolls = 0
        return window

    # -- state -----------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """JSON-able state: parameters, the buffered open action, the open window's action vectors, counters."""
        p = self.params
        return {
            "v": STATE_VERSION,
            "window_actions": self.window_actions,
            "params": [p.pause_ms, p.drag_px, p.min_move_points, p.max_points],
            "buf": [self._t.tolist(), self._kind.tolist(), self._x.tolist(), self._y.tolist()],
            "pressed": self._pressed,
            "actions": [list(row) for row in self._actions],
            "win": [self._start_t, self._end_t, self._scrolls, self.index, self._consumed, self._window_from],
            "counters": [self.events_in, self.actions_out, self.dropped_short, self.max_buffered],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> MouseWindower:
        if state.get("v") != STATE_VERSION:
            raise ValueError(f"unknown MouseWindower state version {state.get('v')!r}")
        pause_ms, drag_px, min_move_points, max_points = state["params"]
        windower = cls(
            state["window_actions"],
            pause_ms=pause_ms,
            drag_px=drag_px,
            min_move_points=min_move_points,
            max_points=max_points,
        )
        t, kind, x, y = state["buf"]
        windower._t = np.asarray(t, dtype=np.float64)
        windower._kind = np.asarray(kind, dtype=np.int8)
        windower._x = np.asarray(x, dtype=np.float64)
        windower._y = np.asarray(y, dtype=np.float64)
        windower._pressed = bool(state["pressed"])
        windower._actions = [[float(v) for v in row] for row in state["actions"]]
        start_t, end_t, scrolls, index, consumed, window_from = state["win"]
        windower._start_t, windower._end_t = float(start_t), float(end_t)
        windower._scrolls, windower.index = int(scrolls), int(index)
        windower._consumed, windower._window_from = int(consumed), int(window_from)
        windower.events_in, windower.actions_out, windower.dropped_short, windower.max_buffered = (
            int(v) for v in state["counters"]
        )
        return windower
