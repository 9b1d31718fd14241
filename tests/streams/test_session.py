"""Session state: duplicates dropped, late batches reordered within a bound, gaps counted, state round-trips."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from touchstone.config import Settings
from touchstone.contracts import KeyEvents, MouseEvents, RawBatch, encode_raw
from touchstone.streams.base import ClosedWindow
from touchstone.streams.processor import RawProcessor, idle_control_message
from touchstone.streams.session import SessionState, WindowerKit

START = 1.75e12


class CountingWindower:
    """Closes a window every `size` events; its features are the times it saw (so tests can check order)."""

    def __init__(self, modality: str, size: int = 4, seen: list[float] | None = None, index: int = 0) -> None:
        self.modality, self.size, self.seen, self.index = modality, size, seen or [], index

    def push(self, events: Any) -> list[ClosedWindow]:
        out = []
        for t in events.t:
            self.seen.append(float(t))
            if len(self.seen) == self.size:
                out.append(self._close("count"))
        return out

    def _close(self, reason: str) -> ClosedWindow:
        window = ClosedWindow(
            modality=self.modality,
            index=self.index,
            start_t=self.seen[0],
            end_t=self.seen[-1],
            n_events=len(self.seen),
            closed_by=reason,
            features={f"t{i}": t for i, t in enumerate(self.seen)},
        )
        self.index += 1
        self.seen = []
        return window

    def flush(self, reason: str) -> list[ClosedWindow]:
        return [self._close(reason)] if self.seen else []

    def to_state(self) -> dict[str, Any]:
        return {"modality": self.modality, "size": self.size, "seen": self.seen, "index": self.index}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CountingWindower:
        return cls(**state)


KIT = WindowerKit(
    new_keys=lambda: CountingWindower("keys"),
    new_mouse=lambda: CountingWindower("mouse"),
    load_keys=CountingWindower.from_state,
    load_mouse=CountingWindower.from_state,
)


def batch(seq: int, times: list[float], *, end: bool = False, user: str = "alice") -> RawBatch:
    t = np.asarray(times, dtype=float)
    n = t.size
    mono = float(t[-1]) if n else seq * 250.0
    return RawBatch(
        session_id="s-1",
        user=user,
        host="ws",
        seq=seq,
        collector="test",
        privacy="timing",
        session_start=START,
        wall=START + mono,
        mono=mono,
        mouse=MouseEvents(t=t, kind=np.zeros(n, np.int8), x=t, y=t, button=np.zeros(n, np.int16)),
        keys=KeyEvents(),
        end=end,
    )


def timeline(n_batches: int, per_batch: int = 3) -> list[RawBatch]:
    return [batch(i, [10.0 * (i * per_batch + j) for j in range(per_batch)]) for i in range(n_batches)]


def run(batches: list[RawBatch], reorder: int = 8) -> tuple[list[tuple[str, int, float]], SessionState]:
    state = SessionState.open(batches[0], KIT, reorder_batches=reorder)
    out = []
    for b in batches:
        out += [(w.modality, w.index, w.end) for w in state.accept(b, now_ms=0.0)]
    return out, state


def test_duplicates_are_dropped():
    batches = timeline(6)
    clean, _ = run(batches)
    dup, state = run([batches[0], batches[1], batches[1], batches[2], batches[0], *batches[3:]])
    assert dup == clean
    assert state.counters.duplicates == 2


def test_late_batch_within_bound_lands_in_its_window():
    batches = timeline(6)
    clean, _ = run(batches)
    late, state = run([batches[0], batches[2], batches[3], batches[1], batches[4], batches[5]])
    assert late == clean
    assert state.counters.late_reordered >= 2 and state.counters.gaps == 0


def test_gap_beyond_bound_is_counted_and_skipped():
    batches = timeline(8)
    out, state = run([b for b in batches if b.seq != 1], reorder=2)
    assert state.counters.gaps == 1
    assert out  # the rest still produced windows


def test_time_going_backwards_is_dropped_and_counted():
    state = SessionState.open(batch(0, [0.0]), KIT)
    state.accept(batch(0, [0.0, 10.0, 20.0]))
    state.accept(batch(1, [15.0, 30.0, 40.0]))
    assert state.counters.regressions == 1
    assert state.mouse.seen == [40.0]  # 0,10,20,30 closed a window; 40 is open
    assert state.counters.events == 5


@settings(max_examples=60, deadline=None)
@given(st.permutations(list(range(7))), st.integers(1, 6))
def test_state_round_trip_mid_stream_changes_nothing(order, cut):
    batches = timeline(7)
    arrival = [batches[i] for i in order]
    reference, _ = run(arrival, reorder=8)
    state = SessionState.open(arrival[0], KIT, reorder_batches=8)
    out = []
    for i, b in enumerate(arrival):
        if i == cut:
            state = SessionState.from_state(orjson.loads(orjson.dumps(state.to_state())), KIT)
        out += [(w.modality, w.index, w.end) for w in state.accept(b, now_ms=0.0)]
    assert out == reference


def test_session_end_flushes_and_refuses_more():
    out, state = run([batch(0, [0.0, 1.0]), batch(1, [2.0], end=True)])
    assert [(m, i) for m, i, _ in out] == [("mouse", 0)]
    assert state.ended
    assert state.accept(batch(2, [3.0])) == []


def make_processor(**overrides: Any) -> RawProcessor:
    return RawProcessor(Settings(**overrides), {}, KIT)


def test_processor_dead_letters_bad_input_and_keeps_going():
    processor = make_processor()
    assert processor.process(b"\x00garbage").reason == "not_json"
    result = processor.process(encode_raw(batch(0, [0.0, 1.0, 2.0, 3.0])))
    assert result.reason is None and len(result.windows) == 1
    assert result.windows[0].end == pytest.approx(START + 3.0)


def test_processor_rejects_a_session_claimed_by_another_user():
    processor = make_processor()
    processor.process(encode_raw(batch(0, [0.0])))
    assert processor.process(encode_raw(batch(1, [1.0], user="mallory"))).reason == "identity_mismatch"


def test_idle_control_closes_a_silent_session():
    processor = make_processor(session_idle_s=1.0)
    processor.process(encode_raw(batch(0, [0.0, 1.0])))
    assert processor.idle_sessions() == []
    assert processor.idle_sessions(now_ms=time.time() * 1000.0 + 2000.0) == ["s-1"]
    result = processor.process(idle_control_message("s-1"), now_ms=START + 10_000.0)
    assert [w.closed_by for w in result.windows] == ["idle"]
    assert "s-1" not in processor.states


def test_full_capture_batch_is_refused_off_the_restricted_topic_and_its_text_not_kept():
    processor = make_processor()
    full = dataclasses.replace(batch(0, [0.0, 1.0, 2.0, 3.0]), privacy="full")
    shared = processor.process(encode_raw(full))
    assert shared.reason == "full_capture_on_shared_topic" and shared.redact
    assert "s-1" not in processor.states
    restricted = processor.process(encode_raw(full), restricted=True)
    assert restricted.reason is None and len(restricted.windows) == 1


def test_write_behind_stores_on_flush_and_a_crash_replays_to_the_same_windows():
    batches = timeline(12)
    steady = make_processor()
    expected = [w.window_id for b in batches for w in steady.process(encode_raw(b), now_ms=0.0).windows]

    table: dict[str, bytes] = {}
    first = RawProcessor(Settings(), table, KIT, write_behind=True)
    got = [w.window_id for b in batches[:5] for w in first.process(encode_raw(b), now_ms=0.0).windows]
    assert table == {}  # nothing written before a flush
    assert first.flush() == 1 and "s-1" in table
    got += [w.window_id for b in batches[5:8] for w in first.process(encode_raw(b), now_ms=0.0).windows]
    # Crash: batches 5-7 were never flushed (nor acknowledged), so they are delivered again.
    second = RawProcessor(Settings(), table, KIT, write_behind=True)
    replay = [w.window_id for b in batches[5:] for w in second.process(encode_raw(b), now_ms=0.0).windows]
    prefix = make_processor()
    flushed_windows = [w.window_id for b in batches[:5] for w in prefix.process(encode_raw(b), now_ms=0.0).windows]
    assert replay == expected[len(flushed_windows):]  # the replay resumes exactly after the flushed state
    assert list(dict.fromkeys(got + replay)) == expected
