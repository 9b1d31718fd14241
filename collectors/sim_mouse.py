"""Mouse behaviour of one simulated person: pointing, clicking, dragging and scrolling as sampled motion.

A pointing movement follows a minimum-jerk position profile, time-warped so that the velocity
peak comes at a user-specific fraction of the movement, with a duration from a Fitts' law
relation (``a + b * log2(D / W + 1)``) of the user's own ``a`` and ``b``. The path bows sideways
by a user-specific curvature that depends on the movement direction; the primary movement over-
or undershoots and a corrective submovement follows when it misses the target. Samples arrive at
the workstation's polling rate with jitter, rounded to pixels; positions that did not change are
not reported, as with a real pointer.

What belongs to the machine (screen, polling rate, the desk application's controls) lives in
:class:`Workstation`, so an impostor at the same desk shares it and only behaviour differs.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from touchstone.contracts import Button, MouseKind

__all__ = ["Workstation", "MouseProfile", "MouseState", "MouseChunk", "point", "hover", "drag", "scroll", "wander"]

_SCREENS = ((1920, 1080), (1920, 1200), (2560, 1440), (1680, 1050), (1366, 768))


def _clipped_lognormal(rng: np.random.Generator, median: float, sd: float, low: float, high: float) -> float:
    return float(np.clip(median * math.exp(sd * rng.standard_normal()), low, high))


@dataclass(frozen=True, eq=False, slots=True)
class Workstation:
    """A desk: screen size (px), mouse polling rate (Hz) while moving, and the desk application's controls.

    ``controls`` rows are (x, y, width) of frequently used buttons and fields; ``weights`` their use.
    """

    host: str
    width: int
    height: int
    poll_hz: float
    controls: tuple[tuple[float, float, float], ...]
    weights: tuple[float, ...]
    cumulative: tuple[float, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cumulative", tuple(itertools.accumulate(self.weights)))

    @classmethod
    def draw(cls, host: str, rng: np.random.Generator) -> Workstation:
        width, height = _SCREENS[int(rng.choice(len(_SCREENS), p=[0.5, 0.15, 0.15, 0.1, 0.1]))]
        n = int(rng.integers(10, 25))
        controls = np.column_stack(
            [
                rng.uniform(0.03, 0.97, n) * width,
                rng.uniform(0.03, 0.97, n) * height,
                rng.choice([16.0, 24.0, 32.0, 60.0, 120.0, 300.0], size=n),
            ]
        )
        weights = tuple(float(w) for w in rng.dirichlet(np.full(n, 0.7)))
        # Most office mice report at 125 Hz; some, and some remote sessions, deliver fewer motion events.
        poll_hz = 125.0 if rng.random() < 0.6 else float(rng.uniform(60.0, 125.0))
        return cls(host, width, height, poll_hz, tuple(tuple(float(v) for v in row) for row in controls), weights)


@dataclass(frozen=True, eq=False, slots=True)
class MouseProfile:
    """One person's mouse parameters; ``*_mu`` are log-ms medians, ``*_sigma`` log spreads."""

    fitts_a: float  # ms
    fitts_b: float  # ms per bit
    duration_sigma: float
    peak_at: float  # fraction of the movement time at which speed peaks
    curvature: float  # sideways bow as a fraction of the distance (signed)
    curvature_by_direction: float  # amplitude of its dependence on the direction
    curvature_phase: float
    curvature_sigma: float
    overshoot: float  # mean relative overshoot (negative: undershoot)
    overshoot_sigma: float
    endpoint_spread: float  # sideways endpoint error, in target widths
    correction_pause_mu: float
    tremor_px: float
    dwell_mu: float  # pause between arriving on a target and pressing
    dwell_sigma: float
    click_mu: float
    click_sigma: float
    double_click: float  # probability that a click is a double click
    double_gap_mu: float
    right_click: float
    drag_slowdown: float
    scroll_interval_mu: float
    scroll_interval_sigma: float
    scroll_notches: float  # mean notches per burst
    scroll_up: float  # probability that a burst scrolls up

    @classmethod
    def draw(cls, rng: np.random.Generator) -> MouseProfile:
        return cls(
            fitts_a=float(np.clip(120.0 + 40.0 * rng.standard_normal(), 30.0, 300.0)),
            fitts_b=float(np.clip(150.0 + 35.0 * rng.standard_normal(), 60.0, 280.0)),
            duration_sigma=_clipped_lognormal(rng, 0.15, 0.25, 0.07, 0.3),
            peak_at=float(np.clip(0.43 + 0.05 * rng.standard_normal(), 0.3, 0.55)),
            curvature=0.04 * rng.standard_normal(),
            curvature_by_direction=abs(0.04 * rng.standard_normal()),
            curvature_phase=float(rng.uniform(0.0, 2 * math.pi)),
            curvature_sigma=_clipped_lognormal(rng, 0.03, 0.3, 0.01, 0.08),
            overshoot=0.03 * rng.standard_normal(),
            overshoot_sigma=_clipped_lognormal(rng, 0.05, 0.3, 0.02, 0.12),
            endpoint_spread=_clipped_lognormal(rng, 0.25, 0.3, 0.1, 0.5),
            correction_pause_mu=math.log(60.0) + 0.4 * rng.standard_normal(),
            tremor_px=_clipped_lognormal(rng, 0.4, 0.4, 0.1, 1.2),
            dwell_mu=math.log(180.0) + 0.4 * rng.standard_normal(),
            dwell_sigma=_clipped_lognormal(rng, 0.5, 0.2, 0.3, 0.8),
            click_mu=math.log(105.0) + 0.18 * rng.standard_normal(),
            click_sigma=_clipped_lognormal(rng, 0.25, 0.2, 0.12, 0.4),
            double_click=float(rng.beta(2.0, 14.0)),
            double_gap_mu=math.log(110.0) + 0.25 * rng.standard_normal(),
            right_click=float(rng.beta(1.5, 25.0)),
            drag_slowdown=float(np.clip(1.35 + 0.15 * rng.standard_normal(), 1.0, 2.0)),
            scroll_interval_mu=math.log(60.0) + 0.35 * rng.standard_normal(),
            scroll_interval_sigma=_clipped_lognormal(rng, 0.45, 0.2, 0.2, 0.8),
            scroll_notches=float(rng.uniform(2.0, 8.0)),
            scroll_up=float(rng.beta(3.0, 7.0)),
        )


class MouseState:
    """Cursor position and the person's slow drift in movement pace within a session."""

    __slots__ = ("pace", "x", "y")
    _RHO = 0.98
    _PACE_SD = 0.06

    def __init__(self, x: float, y: float, rng: np.random.Generator) -> None:
        self.x = x
        self.y = y
        self.pace = self._PACE_SD * rng.standard_normal()

    def step(self, rng: np.random.Generator) -> None:
        self.pace = self._RHO * self.pace + math.sqrt(1 - self._RHO**2) * self._PACE_SD * rng.standard_normal()


@dataclass(frozen=True, slots=True)
class MouseChunk:
    """Mouse events of one action, sorted by time (columns as in :class:`contracts.MouseEvents`)."""

    t: np.ndarray
    kind: np.ndarray
    x: np.ndarray
    y: np.ndarray
    button: np.ndarray

    @property
    def end(self) -> float:
        return float(self.t[-1]) if self.t.size else 0.0


class _Builder:
    """Collects the pieces of one action, then joins them into a :class:`MouseChunk`."""

    __slots__ = ("button", "kind", "t", "x", "y")

    def __init__(self) -> None:
        self.t: list[np.ndarray] = []
        self.kind: list[np.ndarray] = []
        self.x: list[np.ndarray] = []
        self.y: list[np.ndarray] = []
        self.button: list[np.ndarray] = []

    def add(self, t: np.ndarray, kind: int, x: np.ndarray, y: np.ndarray, button: int) -> None:
        if t.size:
            self.t.append(t)
            self.kind.append(np.full(t.size, kind, dtype=np.int8))
            self.x.append(x)
            self.y.append(y)
            self.button.append(np.full(t.size, button, dtype=np.int16))

    def event(self, t: float, kind: MouseKind, x: float, y: float, button: int) -> None:
        self.add(np.array([t]), kind, np.array([x]), np.array([y]), button)

    def build(self) -> MouseChunk:
        if not self.t:
            empty = np.zeros(0)
            return MouseChunk(empty, np.zeros(0, np.int8), empty, empty, np.zeros(0, np.int16))
        t = np.round(np.concatenate(self.t), 3)
        np.maximum.accumulate(t, out=t)  # pauses drawn shorter than a polling jitter must not reorder events
        return MouseChunk(
            t=t,
            kind=np.concatenate(self.kind),
            x=np.concatenate(self.x),
            y=np.concatenate(self.y),
            button=np.concatenate(self.button),
        )


_SAMPLE_STEPS = np.arange(0.8, 20_000.8)


def _lognormal(rng: np.random.Generator, mu: float, sigma: float) -> float:
    return math.exp(mu + sigma * rng.standard_normal())


def _clamp(value: float, high: float) -> float:
    return min(max(value, 0.0), high)


def _trajectory(
    start: tuple[float, float],
    end: tuple[float, float],
    duration: float,
    t0: float,
    bow: float,
    profile: MouseProfile,
    station: Workstation,
    rng: np.random.Generator,
    out: _Builder,
) -> float:
    """Sampled minimum-jerk motion from ``start`` to ``end``: adds the samples whose pixel position
    changed and returns the time of the last sample."""
    # Small arrays: numpy's per-call cost dominates, hence the in-place arithmetic.
    interval = 1000.0 / station.poll_hz
    n = min(max(2, math.ceil(duration / interval)), _SAMPLE_STEPS.size)
    t = rng.random(n)
    t *= 0.4
    t += _SAMPLE_STEPS[:n]  # sample k at (k +- 0.2) polling intervals
    t *= interval
    tau = t / duration
    np.minimum(tau, 1.0, out=tau)
    t += t0
    t[-1] = max(t[-1], t0 + duration)
    # Time warp tau**k moves the speed peak of the minimum-jerk profile from 0.5 to peak_at.
    tau **= math.log(0.5) / math.log(profile.peak_at)
    s = tau * 6.0  # s = tau^3 (10 - 15 tau + 6 tau^2)
    s -= 15.0
    s *= tau
    s += 10.0
    s *= tau
    s *= tau
    s *= tau
    bulge = s * math.pi
    np.sin(bulge, out=bulge)
    bulge *= bow  # sideways offset in units of the distance, along (-dy, dx)
    dx, dy = end[0] - start[0], end[1] - start[1]
    noise = rng.standard_normal(2 * n)
    noise *= profile.tremor_px
    x, y = noise[:n], noise[n:]
    x += start[0]
    x += s * dx
    x -= bulge * dy
    y += start[1]
    y += s * dy
    y += bulge * dx
    x[-1], y[-1] = end
    np.rint(noise, out=noise)
    np.maximum(noise, 0.0, out=noise)
    np.minimum(x, station.width - 1.0, out=x)
    np.minimum(y, station.height - 1.0, out=y)
    moved = np.empty(n, dtype=bool)
    moved[0] = x[0] != round(start[0]) or y[0] != round(start[1])
    np.not_equal(x[1:], x[:-1], out=moved[1:])
    moved[1:] |= y[1:] != y[:-1]
    out.add(t[moved], MouseKind.MOVE, x[moved], y[moved], 0)
    return float(t[-1])


def _move_to(
    target: tuple[float, float],
    width: float,
    t0: float,
    profile: MouseProfile,
    station: Workstation,
    state: MouseState,
    rng: np.random.Generator,
    out: _Builder,
    slowdown: float = 1.0,
) -> float:
    """Move the cursor to ``target`` (a control ``width`` px wide); returns the time of arrival."""
    start = (state.x, state.y)
    dx, dy = target[0] - start[0], target[1] - start[1]
    distance = math.hypot(dx, dy)
    if distance < 2.0:
        return t0
    state.step(rng)
    normal = rng.standard_normal(6)
    bits = math.log2(distance / width + 1.0)
    duration = (profile.fitts_a + profile.fitts_b * bits) * slowdown
    duration *= math.exp(state.pace + profile.duration_sigma * normal[0])
    ux, uy = dx / distance, dy / distance
    reach = distance * (1.0 + profile.overshoot + profile.overshoot_sigma * normal[1])
    lateral = profile.endpoint_spread * width * normal[2]
    primary = (start[0] + ux * reach - uy * lateral, start[1] + uy * reach + ux * lateral)
    bow = (
        profile.curvature
        + profile.curvature_by_direction * math.sin(math.atan2(dy, dx) + profile.curvature_phase)
        + profile.curvature_sigma * normal[3]
    )
    arrival = _trajectory(start, primary, duration, t0, bow, profile, station, rng, out)
    miss = math.hypot(primary[0] - target[0], primary[1] - target[1])
    if miss > width / 2:
        pause = _lognormal(rng, profile.correction_pause_mu, 0.4)
        fix_duration = (0.6 * profile.fitts_a + profile.fitts_b * math.log2(miss / width + 1.0)) * slowdown
        spread = profile.endpoint_spread * 0.3 * width
        final = (target[0] + spread * normal[4], target[1] + spread * normal[5])
        arrival = _trajectory(primary, final, fix_duration, arrival + pause, 0.0, profile, station, rng, out)
        primary = final
    state.x = _clamp(round(primary[0]), station.width - 1.0)
    state.y = _clamp(round(primary[1]), station.height - 1.0)
    return arrival


def _pick_target(station: Workstation, rng: np.random.Generator) -> tuple[tuple[float, float], float]:
    if rng.random() < 0.65:
        x, y, width = station.controls[bisect.bisect_right(station.cumulative, rng.random() * station.cumulative[-1])]
        reach = min(width, 40.0)
        return (x + reach * (rng.random() - 0.5) * 0.7, y + reach * (rng.random() - 0.5) * 0.7), width
    target = (10.0 + rng.random() * (station.width - 20.0), 10.0 + rng.random() * (station.height - 20.0))
    return target, (12.0, 20.0, 40.0, 80.0)[int(rng.integers(0, 4))]


def _nearby(state: MouseState, station: Workstation, offset_x: float, offset_y: float) -> tuple[float, float]:
    return _clamp(state.x + offset_x, station.width - 1.0), _clamp(state.y + offset_y, station.height - 1.0)


def _click(
    t: float, button: int, profile: MouseProfile, state: MouseState, rng: np.random.Generator, out: _Builder
) -> float:
    hold = max(20.0, _lognormal(rng, profile.click_mu, profile.click_sigma))
    out.add(np.array([t, t + hold]), MouseKind.PRESS, np.array([state.x] * 2), np.array([state.y] * 2), button)
    out.kind[-1][1] = MouseKind.RELEASE
    return t + hold


def point(
    start_ms: float, profile: MouseProfile, station: Workstation, state: MouseState, rng: np.random.Generator
) -> MouseChunk:
    """Move to a control and click it (sometimes a double or a right click)."""
    out = _Builder()
    target, width = _pick_target(station, rng)
    arrival = _move_to(target, width, start_ms, profile, station, state, rng, out)
    t = arrival + _lognormal(rng, profile.dwell_mu, profile.dwell_sigma)
    button = Button.RIGHT if rng.random() < profile.right_click else Button.LEFT
    t = _click(t, button, profile, state, rng, out)
    if button == Button.LEFT and rng.random() < profile.double_click:
        t += max(20.0, _lognormal(rng, profile.double_gap_mu, 0.3))
        _click(t, button, profile, state, rng, out)
    return out.build()


def hover(
    start_ms: float, profile: MouseProfile, station: Workstation, state: MouseState, rng: np.random.Generator
) -> MouseChunk:
    """Move somewhere without clicking (reading along, pointing at something, moving out of the way)."""
    out = _Builder()
    if rng.random() < 0.5:
        target, width = _pick_target(station, rng)
    else:
        offset = rng.normal(0.0, 200.0, 2)
        target, width = _nearby(state, station, offset[0], offset[1]), 40.0
    _move_to(target, width, start_ms, profile, station, state, rng, out)
    return out.build()


def drag(
    start_ms: float, profile: MouseProfile, station: Workstation, state: MouseState, rng: np.random.Generator
) -> MouseChunk:
    """Press, move with the button held (a text selection or moving an item), release."""
    out = _Builder()
    t = start_ms + _lognormal(rng, profile.dwell_mu, profile.dwell_sigma)
    out.event(t, MouseKind.PRESS, state.x, state.y, Button.LEFT)
    t += _lognormal(rng, math.log(150.0), 0.4)
    if rng.random() < 0.6:  # select text along a line
        direction = 1.0 if rng.random() < 0.5 else -1.0
        target = _nearby(state, station, direction * rng.uniform(40.0, 500.0), rng.normal(0.0, 15.0))
        width = 10.0
    else:
        offset = rng.normal(0.0, 350.0, 2)
        target, width = _nearby(state, station, offset[0], offset[1]), 60.0
    t = _move_to(target, width, t, profile, station, state, rng, out, slowdown=profile.drag_slowdown)
    t += _lognormal(rng, math.log(100.0), 0.4)
    out.event(t, MouseKind.RELEASE, state.x, state.y, Button.LEFT)
    return out.build()


def scroll(
    start_ms: float, profile: MouseProfile, station: Workstation, state: MouseState, rng: np.random.Generator
) -> MouseChunk:
    """One to a few bursts of wheel notches (``button`` holds the signed amount: +1 up, -1 down)."""
    out = _Builder()
    t = start_ms
    for _ in range(int(rng.geometric(0.6))):
        notches = int(rng.geometric(1.0 / profile.scroll_notches))
        gaps = np.exp(profile.scroll_interval_mu + profile.scroll_interval_sigma * rng.standard_normal(notches))
        times = t + np.cumsum(np.maximum(gaps, 5.0))
        amount = 1 if rng.random() < profile.scroll_up else -1
        out.add(times, MouseKind.SCROLL, np.full(notches, state.x), np.full(notches, state.y), amount)
        t = float(times[-1]) + _lognormal(rng, math.log(400.0), 0.5)
    return out.build()


def wander(
    start_ms: float,
    duration_ms: float,
    profile: MouseProfile,
    station: Workstation,
    state: MouseState,
    rng: np.random.Generator,
) -> MouseChunk:
    """Slow, unaimed movements while reading (following the text, nudging the pointer aside)."""
    out = _Builder()
    t, stop = start_ms, start_ms + duration_ms
    while t < stop:
        size = math.exp(math.log(80.0) + 0.6 * rng.standard_normal())
        offset = rng.standard_normal(2)
        target = _nearby(state, station, offset[0] * size, offset[1] * size)
        t = _move_to(target, 80.0, t, profile, station, state, rng, out, slowdown=2.0)
        t += _lognormal(rng, math.log(150.0), 0.7)
    return out.build()
