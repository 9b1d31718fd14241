"""Synthetic mouse users for the mouse detector and Balabit-harness tests.

A :class:`MouseStyle` moves the pointer to random targets along minimum-jerk paths
(the classic model of human aiming), bowed sideways by a user-specific amount,
sampled at a user-specific rate, then clicks (with a user-specific hold), drags or
scrolls, and pauses. Two styles that differ in speed, curvature and click timing
play the owner and the impostor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from touchstone.contracts import FeatureWindow, MouseEvents, MouseKind
from touchstone.streams.mouse_features import MouseWindower

EPOCH_MS = 1_735_689_600_000.0


@dataclass(frozen=True)
class MouseStyle:
    fitts_ms_per_bit: float  # movement time per bit of index of difficulty
    bow: float  # sideways deviation as a share of the distance
    sample_ms: float
    hold_ms: float
    drag_share: float
    dwell_ms: float


BRISK = MouseStyle(fitts_ms_per_bit=90.0, bow=0.04, sample_ms=16.0, hold_ms=85.0, drag_share=0.05, dwell_ms=400.0)
GENTLE = MouseStyle(fitts_ms_per_bit=170.0, bow=0.22, sample_ms=16.0, hold_ms=150.0, drag_share=0.15, dwell_ms=700.0)
STEADY = MouseStyle(fitts_ms_per_bit=130.0, bow=0.12, sample_ms=16.0, hold_ms=115.0, drag_share=0.10, dwell_ms=550.0)


def session_events(style: MouseStyle, n_actions: int, rng: np.random.Generator) -> MouseEvents:
    t, x, y = 0.0, 640.0, 400.0
    rows: list[tuple[float, int, float, float, int]] = []
    for _ in range(n_actions):
        distance = rng.uniform(40.0, 700.0)
        angle = rng.uniform(-np.pi, np.pi)
        tx = float(np.clip(x + distance * np.cos(angle), 0, 1920))
        ty = float(np.clip(y + distance * np.sin(angle), 0, 1080))
        duration = 120.0 + style.fitts_ms_per_bit * np.log2(1.0 + distance / 20.0) * rng.lognormal(0.0, 0.15)
        dragging = rng.random() < style.drag_share
        if dragging:
            rows.append((t, MouseKind.PRESS, round(x), round(y), 1))
        steps = max(int(duration / style.sample_ms), 2)
        tau = np.linspace(0.0, 1.0, steps + 1)[1:]
        progress = 10 * tau**3 - 15 * tau**4 + 6 * tau**5
        bow = style.bow * distance * np.sin(np.pi * progress) * rng.normal(1.0, 0.3)
        nx, ny = -(ty - y) / max(distance, 1.0), (tx - x) / max(distance, 1.0)
        px = x + (tx - x) * progress + nx * bow
        py = y + (ty - y) * progress + ny * bow
        times = t + tau * duration + rng.normal(0.0, 1.0, tau.size).clip(-3, 3)
        times = np.maximum.accumulate(np.maximum(times, t))
        path = zip(times, np.round(px), np.round(py), strict=True)
        rows += [(float(a), MouseKind.MOVE, float(b), float(c), 0) for a, b, c in path]
        t, x, y = float(times[-1]), float(round(px[-1])), float(round(py[-1]))
        if dragging or rng.random() < 0.6:
            if not dragging:
                t += rng.uniform(40.0, 120.0)
                rows.append((t, MouseKind.PRESS, x, y, 1))
            t += max(style.hold_ms * rng.lognormal(0.0, 0.2), 10.0)
            rows.append((t, MouseKind.RELEASE, x, y, 1))
        elif rng.random() < 0.1:
            t += 50.0
            rows.append((t, MouseKind.SCROLL, x, y, -1))
        t += style.dwell_ms * rng.exponential(1.0)
    t_, k_, x_, y_, b_ = (np.asarray(c) for c in zip(*rows, strict=True))
    return MouseEvents(t=t_.astype(float), kind=k_.astype(np.int8), x=x_.astype(float), y=y_.astype(float),
                       button=b_.astype(np.int16))


def session_windows(user: str, session_id: str, events: MouseEvents, window_actions: int = 10) -> list[FeatureWindow]:
    """The session's feature windows, as the stream worker would produce them (batches of 100 events)."""
    windower = MouseWindower(window_actions=window_actions)
    closed = []
    for start in range(0, len(events), 100):
        s = slice(start, start + 100)
        closed += windower.push(MouseEvents(t=events.t[s], kind=events.kind[s], x=events.x[s], y=events.y[s],
                                            button=events.button[s]))
    closed += windower.flush("session_end")
    return [
        FeatureWindow(
            user=user, host=f"host-{user}", session_id=session_id, modality="mouse", index=w.index, privacy="timing",
            session_start=EPOCH_MS, start=EPOCH_MS + w.start_t, end=EPOCH_MS + w.end_t, n_events=w.n_events,
            closed_by=w.closed_by, features=w.features, actions=w.actions, action_fields=w.action_fields,
        )
        for w in closed
    ]


def write_balabit_session(path, events: MouseEvents) -> None:
    """Write events as a Balabit-format CSV (client timestamp in seconds), for harness tests."""
    names = {MouseKind.MOVE: "Move", MouseKind.PRESS: "Pressed", MouseKind.RELEASE: "Released"}
    lines = ["record timestamp,client timestamp,button,state,x,y"]
    held = False
    for t, k, x, y in zip(events.t, events.kind, events.x, events.y, strict=True):
        k = int(k)
        if k == MouseKind.SCROLL:
            button, state = "Scroll", "Down"
        else:
            state = "Drag" if (k == MouseKind.MOVE and held) else names[MouseKind(k)]
            button = "Left" if k in (MouseKind.PRESS, MouseKind.RELEASE) else "NoButton"
            held = k == MouseKind.PRESS or (held and k != MouseKind.RELEASE)
        lines.append(f"{t / 1000.0:.3f},{t / 1000.0:.3f},{button},{state},{int(x)},{int(y)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
