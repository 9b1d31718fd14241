"""Balabit Mouse Dynamics Challenge session files as Touchstone mouse events and raw batches.

A session file is CSV ``record timestamp,client timestamp,button,state,x,y`` (seconds
since the session start). Event times are taken from the **client** timestamp: it is
the capture time on the user's machine, the analogue of a Touchstone collector's
monotonic clock, whereas the record timestamp is when the network monitor saw the
RDP packet and carries network batching (in these files about three times as many
events share a record timestamp as share a client timestamp). Times are the source
seconds times 1000, rounded to the microsecond: that is the raw wire contract's
resolution, so the in-process evaluation and the Kafka pipeline see identical times,
and the digits dropped are the source's float noise (``0.0160000000615`` s → 16 ms).

Mapping: state ``Move``/``Drag`` → MOVE, ``Pressed`` → PRESS, ``Released`` → RELEASE,
``Down``/``Up`` (wheel) → SCROLL with ``button`` = -1/+1 (the contract's signed scroll
amount); buttons ``Left``/``Right``/``Middle`` map to :class:`Button`, ``XButton`` and
other named buttons to ``OTHER``, ``NoButton``/``Scroll`` to ``NONE``.

Quirks handled and counted in :class:`BalabitSession.skipped`: malformed rows,
unknown states, coordinate glitches (65535 = the RDP "no position" sentinel, or any
coordinate outside 0..MAX_COORD), and client times that go backwards (clamped to the
previous time, so the stream stays non-decreasing as the raw contract requires).
Duplicate timestamps are kept: they are real (timer resolution) and the mouse
feature extractor handles them.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from touchstone.contracts import Button, MouseEvents, MouseKind, RawBatch

__all__ = [
    "BALABIT_SESSION_START_MS",
    "COLLECTOR",
    "MAX_COORD",
    "BalabitSession",
    "parse_balabit_session",
    "read_balabit_session",
    "iter_balabit_batches",
]

log = logging.getLogger(__name__)

COLLECTOR = "replay-balabit/1"
# Replayed sessions are anchored at a fixed wall-clock instant (2016-01-01, the challenge's year),
# so batches are deterministic; only session-relative times carry behaviour.
BALABIT_SESSION_START_MS = 1_451_606_400_000.0
# Larger than any real screen; 65535 is the recorder's sentinel for an unknown position.
MAX_COORD = 30_000.0

_STATES: dict[str, int] = {
    "Move": MouseKind.MOVE,
    "Drag": MouseKind.MOVE,
    "Pressed": MouseKind.PRESS,
    "Released": MouseKind.RELEASE,
    "Down": MouseKind.SCROLL,
    "Up": MouseKind.SCROLL,
}
_BUTTONS: dict[str, int] = {
    "NoButton": Button.NONE,
    "Scroll": Button.NONE,
    "Left": Button.LEFT,
    "Right": Button.RIGHT,
    "Middle": Button.MIDDLE,
}
_SCROLL_AMOUNT = {"Down": -1, "Up": 1}


@dataclass(frozen=True, slots=True)
class BalabitSession:
    """One parsed session file: its events and how many rows were dropped or repaired, by reason."""

    events: MouseEvents
    rows: int
    skipped: dict[str, int] = field(default_factory=dict)


def _parse_row(line: str) -> tuple[float, int, float, float, int] | str:
    """(t ms, kind, x, y, button) or the reason the row is unusable."""
    parts = line.rstrip("\r\n").split(",")
    if len(parts) != 6:
        return "malformed"
    _, client, button_name, state, x_text, y_text = parts
    kind = _STATES.get(state)
    if kind is None:
        return "unknown_state"
    try:
        t = float(client) * 1000.0
        x = float(x_text)
        y = float(y_text)
    except ValueError:
        return "malformed"
    if not (math.isfinite(t) and t >= 0.0):
        return "bad_time"
    if not (0.0 <= x <= MAX_COORD and 0.0 <= y <= MAX_COORD):
        return "coordinate_glitch"
    if kind == MouseKind.SCROLL:
        button = _SCROLL_AMOUNT[state]
    elif kind == MouseKind.MOVE:
        button = Button.NONE  # as a live collector reports moves: the windower tracks held buttons itself
    else:
        button = _BUTTONS.get(button_name, Button.OTHER)
    return t, kind, x, y, button


def parse_balabit_session(path: str | Path) -> BalabitSession:
    """Parse one session file defensively; never raises on bad rows, counts them instead."""
    path = Path(path)
    rows: list[tuple[float, int, float, float, int]] = []
    skipped: Counter[str] = Counter()
    n_rows = 0
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        header = handle.readline()
        if header and not header.lower().startswith("record timestamp"):
            handle.seek(0)  # headerless file: the first line is data
        for line in handle:
            if not line.strip():
                continue
            n_rows += 1
            parsed = _parse_row(line)
            if isinstance(parsed, str):
                skipped[parsed] += 1
            else:
                rows.append(parsed)
    if not rows:
        return BalabitSession(events=MouseEvents(), rows=n_rows, skipped=dict(skipped))
    t, kind, x, y, button = (np.asarray(column) for column in zip(*rows, strict=True))
    t = np.round(t.astype(np.float64), 3)
    monotone = np.maximum.accumulate(t)
    backwards = int(np.count_nonzero(monotone != t))
    if backwards:
        skipped["time_backwards_clamped"] += backwards
    events = MouseEvents(
        t=monotone,
        kind=kind.astype(np.int8),
        x=x.astype(np.float64),
        y=y.astype(np.float64),
        button=button.astype(np.int16),
    )
    if skipped:
        log.debug("%s: %d rows, skipped/repaired %s", path.name, n_rows, dict(skipped))
    return BalabitSession(events=events, rows=n_rows, skipped=dict(skipped))


def read_balabit_session(path: str | Path) -> MouseEvents:
    """The mouse events of one Balabit session file, times in ms from the session start."""
    return parse_balabit_session(path).events


def _slice(events: MouseEvents, start: int, stop: int) -> MouseEvents:
    return MouseEvents(
        t=events.t[start:stop],
        kind=events.kind[start:stop],
        x=events.x[start:stop],
        y=events.y[start:stop],
        button=events.button[start:stop],
    )


def iter_balabit_batches(
    path: str | Path,
    user: str,
    session_id: str,
    batch_events: int = 200,
    *,
    host: str | None = None,
    privacy: str = "timing",
    session_start: float = BALABIT_SESSION_START_MS,
) -> Iterator[RawBatch]:
    """Replay one session file as raw batches of at most ``batch_events`` mouse events.

    Each batch's monotonic anchor ``mono`` is the time of its last event (the moment a
    live collector would have flushed it); the last batch carries ``end=True``. An empty
    file yields a single empty end batch.
    """
    if batch_events < 1:
        raise ValueError(f"batch_events must be at least 1, not {batch_events}")
    events = read_balabit_session(path)
    host = host if host is not None else f"balabit-{user}"
    n = len(events)
    starts = list(range(0, n, batch_events)) or [0]
    mono = 0.0
    for seq, start in enumerate(starts):
        chunk = _slice(events, start, min(start + batch_events, n))
        if len(chunk):
            mono = float(chunk.t[-1])
        yield RawBatch(
            session_id=session_id,
            user=user,
            host=host,
            seq=seq,
            collector=COLLECTOR,
            privacy=privacy,
            session_start=session_start,
            wall=session_start + mono,
            mono=mono,
            mouse=chunk,
            end=seq == len(starts) - 1,
        )
