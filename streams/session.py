"""Per-session stream state: ordering, de-duplication, windowing. Transport-free.

The Faust agent keeps one :class:`SessionState` per session id in a table; the
evaluation harness and benchmarks drive the same object directly. Everything the
state holds round-trips through :meth:`SessionState.to_state` as JSON-able data.

Ordering: batches carry a per-session sequence number. A batch already seen is
dropped; a batch that arrives ahead of a missing one waits in a small reorder
buffer (bounded by ``reorder_batches``), so a late batch within that bound still
lands in its window; past the bound the gap is counted and skipped.
Time: windows close on event (capture) time. Events that go back in time relative
to what this session already processed are dropped and counted, never raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from touchstone.contracts import FeatureWindow, KeyEvents, MouseEvents, RawBatch
from touchstone.streams.base import ClosedWindow, Windower

__all__ = ["SessionCounters", "SessionState", "WindowerKit", "to_feature_window"]


@dataclass(slots=True)
class SessionCounters:
    batches: int = 0
    events: int = 0
    duplicates: int = 0
    gaps: int = 0
    late_reordered: int = 0
    regressions: int = 0  # events dropped because their time went backwards

    def as_dict(self) -> dict[str, int]:
        return {
            "batches": self.batches,
            "events": self.events,
            "duplicates": self.duplicates,
            "gaps": self.gaps,
            "late_reordered": self.late_reordered,
            "regressions": self.regressions,
        }


@dataclass(frozen=True, slots=True)
class WindowerKit:
    """How to build and reload the two windowers; injected so tests and evaluation can choose."""

    new_keys: Callable[[], Windower]
    new_mouse: Callable[[], Windower]
    load_keys: Callable[[dict[str, Any]], Windower]
    load_mouse: Callable[[dict[str, Any]], Windower]

    @classmethod
    def default(cls, key_window: int = 50, mouse_window: int = 10) -> WindowerKit:
        from touchstone.streams.keystroke_features import KeystrokeWindower
        from touchstone.streams.mouse_features import MouseWindower

        return cls(
            new_keys=lambda: KeystrokeWindower(window=key_window),
            new_mouse=lambda: MouseWindower(window_actions=mouse_window),
            load_keys=KeystrokeWindower.from_state,
            load_mouse=MouseWindower.from_state,
        )


def _after(events: KeyEvents | MouseEvents, last_t: float) -> tuple[KeyEvents | MouseEvents, int]:
    """The events strictly usable after ``last_t`` (equal times are kept), and how many were dropped."""
    t = events.t
    if not t.size or t[0] >= last_t:
        return events, 0
    keep = t >= last_t
    dropped = int(t.size - keep.sum())
    if isinstance(events, KeyEvents):
        keys = tuple(k for k, kept in zip(events.key, keep, strict=True) if kept)
        return KeyEvents(t=t[keep], down=events.down[keep], key=keys), dropped
    return (
        MouseEvents(t=t[keep], kind=events.kind[keep], x=events.x[keep], y=events.y[keep], button=events.button[keep]),
        dropped,
    )


def to_feature_window(closed: ClosedWindow, state: SessionState, produced_at: float) -> FeatureWindow:
    return FeatureWindow(
        user=state.user,
        host=state.host,
        session_id=state.session_id,
        modality=closed.modality,
        index=closed.index,
        privacy=state.privacy,
        session_start=state.session_start,
        start=state.capture_time(closed.start_t),
        end=state.capture_time(closed.end_t),
        n_events=closed.n_events,
        closed_by=closed.closed_by,
        features=closed.features,
        grams=closed.grams,
        actions=closed.actions,
        action_fields=closed.action_fields,
        produced_at=produced_at,
    )


@dataclass
class SessionState:
    session_id: str
    user: str
    host: str
    privacy: str
    session_start: float
    kit: WindowerKit
    reorder_batches: int = 8
    next_seq: int = 0
    anchor_wall: float = 0.0
    anchor_mono: float = 0.0
    last_key_t: float = 0.0
    last_mouse_t: float = 0.0
    last_seen_wall: float = 0.0  # wall clock of the newest batch anchor, for idle detection
    ended: bool = False
    counters: SessionCounters = field(default_factory=SessionCounters)
    pending: dict[int, RawBatch] = field(default_factory=dict)
    keys: Windower | None = None
    mouse: Windower | None = None

    @classmethod
    def open(cls, batch: RawBatch, kit: WindowerKit, reorder_batches: int = 8) -> SessionState:
        return cls(
            session_id=batch.session_id,
            user=batch.user,
            host=batch.host,
            privacy=batch.privacy,
            session_start=batch.session_start,
            kit=kit,
            reorder_batches=reorder_batches,
            keys=kit.new_keys(),
            mouse=kit.new_mouse(),
        )

    def capture_time(self, t_ms: float) -> float:
        return self.anchor_wall - (self.anchor_mono - t_ms)

    # -- ingestion ---------------------------------------------------------------------------

    def accept(self, batch: RawBatch, now_ms: float | None = None) -> list[FeatureWindow]:
        """Take one batch (any order); return the feature windows it closed, in order."""
        produced_at = time.time() * 1000.0 if now_ms is None else now_ms
        if self.ended or batch.seq < self.next_seq or batch.seq in self.pending:
            self.counters.duplicates += 1
            return []
        self.last_seen_wall = max(self.last_seen_wall, batch.wall)
        self.pending[batch.seq] = batch
        if batch.seq > self.next_seq:
            if len(self.pending) <= self.reorder_batches:
                return []
            # Waited long enough for the missing batch: count the gap and move on.
            skip_to = min(self.pending)
            self.counters.gaps += skip_to - self.next_seq
            self.next_seq = skip_to
        closed: list[ClosedWindow] = []
        while self.next_seq in self.pending:
            current = self.pending.pop(self.next_seq)
            if current is not batch:
                self.counters.late_reordered += 1
            closed.extend(self._apply(current))
            self.next_seq += 1
            if self.ended:
                break
        return [to_feature_window(c, self, produced_at) for c in closed]

    def _apply(self, batch: RawBatch) -> list[ClosedWindow]:
        assert self.keys is not None and self.mouse is not None
        self.counters.batches += 1
        self.anchor_wall, self.anchor_mono = batch.wall, batch.mono
        closed: list[ClosedWindow] = []
        if len(batch.keys):
            keys, dropped = _after(batch.keys, self.last_key_t)
            self.counters.regressions += dropped
            if len(keys):
                self.last_key_t = float(keys.t[-1])
                self.counters.events += len(keys)
                closed.extend(self.keys.push(keys))
        if len(batch.mouse):
            mouse, dropped = _after(batch.mouse, self.last_mouse_t)
            self.counters.regressions += dropped
            if len(mouse):
                self.last_mouse_t = float(mouse.t[-1])
                self.counters.events += len(mouse)
                closed.extend(self.mouse.push(mouse))
        # The anchor says no mouse event happened until then: a resting pointer's move can end now.
        advance = getattr(self.mouse, "advance", None)
        if advance is not None and not batch.end:
            closed.extend(advance(batch.mono))
        if batch.end:
            closed.extend(self.close("session_end"))
        if len(closed) > 1:
            closed.sort(key=lambda c: (c.end_t, c.modality, c.index))
        return closed

    def close(self, reason: str) -> list[ClosedWindow]:
        """Flush both windowers (session end or idle timeout) and refuse further batches."""
        assert self.keys is not None and self.mouse is not None
        self.ended = True
        self.pending.clear()
        return [*self.keys.flush(reason), *self.mouse.flush(reason)]

    def close_idle(self, now_ms: float | None = None) -> list[FeatureWindow]:
        produced_at = time.time() * 1000.0 if now_ms is None else now_ms
        # Batches held for a missing predecessor are applied rather than lost.
        closed: list[ClosedWindow] = []
        for seq in sorted(self.pending):
            if seq > self.next_seq:
                self.counters.gaps += seq - self.next_seq
            closed.extend(self._apply(self.pending.pop(seq)))
            self.next_seq = seq + 1
        if not self.ended:
            closed.extend(self.close("idle"))
        return [to_feature_window(c, self, produced_at) for c in closed]

    # -- persistence -------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        assert self.keys is not None and self.mouse is not None
        from touchstone.contracts.raw import encode_raw

        return {
            "session_id": self.session_id,
            "user": self.user,
            "host": self.host,
            "privacy": self.privacy,
            "session_start": self.session_start,
            "reorder_batches": self.reorder_batches,
            "next_seq": self.next_seq,
            "anchor": [self.anchor_wall, self.anchor_mono],
            "last_t": [self.last_key_t, self.last_mouse_t],
            "last_seen_wall": self.last_seen_wall,
            "ended": self.ended,
            "counters": self.counters.as_dict(),
            # Held batches are kept in wire form: they were valid on arrival and decode again.
            "pending": [encode_raw(b).decode() for b in self.pending.values()],
            "keys": self.keys.to_state(),
            "mouse": self.mouse.to_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], kit: WindowerKit) -> SessionState:
        from touchstone.contracts.raw import decode_raw

        pending = [decode_raw(p.encode()) for p in state.get("pending", [])]
        return cls(
            session_id=state["session_id"],
            user=state["user"],
            host=state["host"],
            privacy=state["privacy"],
            session_start=state["session_start"],
            kit=kit,
            reorder_batches=state["reorder_batches"],
            next_seq=state["next_seq"],
            anchor_wall=state["anchor"][0],
            anchor_mono=state["anchor"][1],
            last_key_t=state["last_t"][0],
            last_mouse_t=state["last_t"][1],
            last_seen_wall=state["last_seen_wall"],
            ended=state["ended"],
            counters=SessionCounters(**state["counters"]),
            pending={b.seq: b for b in pending},
            keys=kit.load_keys(state["keys"]),
            mouse=kit.load_mouse(state["mouse"]),
        )
