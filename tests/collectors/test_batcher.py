from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import touchstone.collectors.batcher as batcher_module
from touchstone.collectors.batcher import COLLECTOR_VERSION, Batcher, BatchPolicy, WireBatch
from touchstone.contracts import PRIVACY_MODES, Button, MouseKind, decode_raw, encode_raw

MS = 1_000_000
WALL0_NS = 1_700_000_000_000 * MS


class FakeClock:
    """Monotonic and wall clocks that move only when told."""

    def __init__(self) -> None:
        self.mono = 5_000 * MS  # arbitrary non-zero boot offset

    def mono_ns(self) -> int:
        return self.mono

    def wall_ns(self) -> float:
        return WALL0_NS + self.mono

    def advance_ms(self, ms: float) -> None:
        self.mono += int(ms * MS)


def make(clock: FakeClock, **policy: float) -> Batcher:
    return Batcher(
        user="ann", host="ws-1", privacy="timing", policy=BatchPolicy(**policy), mono_ns=clock.mono_ns,
        wall_ns=clock.wall_ns,
    )  # fmt: skip


def test_batch_identity_and_anchor_map_events_to_wall_time():
    clock = FakeClock()
    batcher = make(clock)
    clock.advance_ms(12.5)
    batcher.add_key(clock.mono, True, "L.home")
    clock.advance_ms(80.25)
    batcher.add_mouse(clock.mono, MouseKind.MOVE, 10.0, 20.0)
    clock.advance_ms(5)
    batch = decode_raw(batcher.flush().encode())
    assert (batch.user, batch.host, batch.privacy, batch.collector, batch.seq) == (
        "ann", "ws-1", "timing", COLLECTOR_VERSION, 0,
    )  # fmt: skip
    assert batch.session_id == batcher.session.session_id
    assert batch.keys.t.tolist() == [12.5]
    assert batch.mouse.t.tolist() == [92.75]
    # capture_time() must give back the wall clock at the instant of capture
    assert batch.capture_time(12.5) == pytest.approx((WALL0_NS + 5_000 * MS) / MS + 12.5)
    assert batch.session_start == pytest.approx((WALL0_NS + 5_000 * MS) / MS)


def test_count_bound_cuts_exactly_at_max_events():
    clock = FakeClock()
    batcher = make(clock, max_events=3)
    results = []
    for i in range(7):
        clock.advance_ms(1)
        results.append(batcher.add_mouse(clock.mono, MouseKind.MOVE, float(i), 0.0))
    cut = [r for r in results if r is not None]
    assert [i for i, r in enumerate(results) if r is not None] == [2, 5]
    assert [b.seq for b in cut] == [0, 1]
    assert [b.mouse_x for b in cut] == [[0, 1, 2], [3, 4, 5]]
    assert batcher.pending == 1


def test_time_bound_is_measured_from_the_oldest_pending_event():
    clock = FakeClock()
    batcher = make(clock, max_interval_s=0.25)
    batcher.add_key(clock.mono, True, "space")
    clock.advance_ms(249)
    assert batcher.poll() is None
    clock.advance_ms(1)
    batch = batcher.poll()
    assert batch is not None and len(batch.key_t) == 1 and not batch.heartbeat
    assert batcher.poll() is None  # nothing pending, heartbeat not due


def test_heartbeat_only_when_idle_for_the_heartbeat_interval():
    clock = FakeClock()
    batcher = make(clock, heartbeat_s=5.0)
    clock.advance_ms(4_999)
    assert batcher.poll() is None
    clock.advance_ms(1)
    beat = batcher.poll()
    assert beat is not None and beat.heartbeat and beat.n_events == 0 and beat.seq == 0
    clock.advance_ms(4_000)
    assert batcher.poll() is None
    clock.advance_ms(1_000)
    assert batcher.poll().seq == 1


def test_switch_user_ends_the_session_and_starts_a_fresh_one():
    clock = FakeClock()
    batcher = make(clock)
    first = batcher.session
    clock.advance_ms(3)
    batcher.add_key(clock.mono, True, "enter")
    final = batcher.switch_user("bob")
    assert final.end and final.session_id == first.session_id and len(final.key_t) == 1
    assert batcher.session.user == "bob" and batcher.session.session_id != first.session_id
    clock.advance_ms(1)
    batcher.add_key(clock.mono, False, "enter")
    nxt = batcher.flush()
    assert nxt.seq == 0 and nxt.user == "bob"
    assert nxt.key_t == [1.0]  # times restart at the new session's start


def test_out_of_order_capture_times_are_clamped_and_counted():
    clock = FakeClock()
    batcher = make(clock)
    clock.advance_ms(10)
    batcher.add_key(clock.mono, True, "L.top")
    batcher.add_key(clock.mono - 2 * MS, False, "L.top")
    batch = decode_raw(batcher.flush().encode())
    assert batch.keys.t.tolist() == [10.0, 10.0]
    assert batcher.reordered == 1


def test_scroll_amount_is_clamped_to_the_contract_range():
    clock = FakeClock()
    batcher = make(clock)
    batcher.add_mouse(clock.mono, MouseKind.SCROLL, 1.0, 1.0, -50_000)
    assert decode_raw(batcher.flush().encode()).mouse.button.tolist() == [-10_000]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        BatchPolicy(max_events=0)
    with pytest.raises(ValueError):
        Batcher(user="", host="h", privacy="timing")
    with pytest.raises(ValueError):
        Batcher(user="u", host="h", privacy="verbose")


events = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=400.0),  # ms since the previous event
        st.booleans(),  # key or mouse
        st.integers(min_value=0, max_value=3),
        st.floats(min_value=-5000, max_value=5000, allow_nan=False),
    ),
    max_size=300,
)


@settings(max_examples=60, deadline=None)
@given(events=events, max_events=st.integers(min_value=1, max_value=50))
def test_batches_carry_every_event_once_in_order(events, max_events):
    clock = FakeClock()
    batcher = make(clock, max_events=max_events, max_interval_s=0.25)
    batches = []
    sent_keys, sent_mouse = [], []
    for gap, is_key, kind, coord in events:
        clock.advance_ms(gap)
        if is_key:
            batches.append(batcher.add_key(clock.mono, bool(kind % 2), f"k{kind}"))
            sent_keys.append((clock.mono - 5_000 * MS) / MS)
        else:
            batches.append(batcher.add_mouse(clock.mono, kind, coord, -coord, kind))
            sent_mouse.append((clock.mono - 5_000 * MS) / MS)
        batches.append(batcher.poll())
    batches.append(batcher.end())
    decoded = [decode_raw(b.encode()) for b in batches if b is not None]
    assert [b.seq for b in decoded] == list(range(len(decoded)))
    assert all(b.n_events <= max_events for b in decoded)
    assert decoded[-1].end and not any(b.end for b in decoded[:-1])
    keys_t = np.concatenate([b.keys.t for b in decoded])
    mouse_t = np.concatenate([b.mouse.t for b in decoded])
    # the wire format keeps microseconds (3 decimals of ms)
    np.testing.assert_allclose(keys_t, sent_keys, rtol=0, atol=5.01e-4)
    np.testing.assert_allclose(mouse_t, sent_mouse, rtol=0, atol=5.01e-4)


# --- the numpy-free wire encoding ---

coordinate = st.one_of(
    st.integers(min_value=-4000, max_value=4000),
    st.floats(min_value=-1e5, max_value=1e5, allow_nan=False),
    st.sampled_from([0.0005, 0.0015, 2.675, -0.0005, 1e-7, 1234.5678905]),  # rounding edge cases
)
times = st.lists(st.floats(min_value=0.0, max_value=1e9, allow_nan=False), max_size=40)


@settings(max_examples=200, deadline=None)
@given(
    key_t=times,
    mouse=st.lists(st.tuples(st.floats(min_value=0, max_value=1e9), st.integers(0, 3), coordinate, coordinate,
                             st.integers(-10_000, 10_000)), max_size=40),
    mono=st.floats(min_value=0, max_value=1e9),
    flags=st.tuples(st.booleans(), st.booleans()),
)  # fmt: skip
def test_wire_batches_encode_byte_for_byte_like_encode_raw(key_t, mouse, mono, flags):
    wire = WireBatch(
        session_id="s", user="ann", host="ws", seq=3, collector=COLLECTOR_VERSION, privacy="timing",
        session_start=1.7e12 + 0.25, wall=1.7e12 + mono, mono=mono,
        key_t=sorted(key_t), key_down=[i % 2 == 0 for i in range(len(key_t))], key_token=["L.home"] * len(key_t),
        mouse_t=sorted(m[0] for m in mouse), mouse_kind=[m[1] for m in mouse], mouse_x=[m[2] for m in mouse],
        mouse_y=[m[3] for m in mouse], mouse_button=[m[4] for m in mouse], heartbeat=flags[0], end=flags[1],
    )  # fmt: skip
    assert wire.encode() == encode_raw(wire.to_raw())


def test_restated_contract_vocabulary_agrees_with_the_contract():
    from touchstone.collectors import capture

    assert batcher_module.PRIVACY_MODES == PRIVACY_MODES
    kinds = (batcher_module.MOVE, batcher_module.PRESS, batcher_module.RELEASE, batcher_module.SCROLL)
    assert kinds == (MouseKind.MOVE, MouseKind.PRESS, MouseKind.RELEASE, MouseKind.SCROLL)
    assert capture._BUTTON_CODES == {"left": Button.LEFT, "right": Button.RIGHT, "middle": Button.MIDDLE}
    assert capture._OTHER_BUTTON == Button.OTHER


def test_the_live_collector_does_not_load_numpy():
    # numpy is ~20 MB of resident memory, a third of the collector's budget (bench/collector_cost.py).
    import subprocess
    import sys

    code = "import sys, touchstone.collectors.collect, touchstone.collectors.xrecord; print(sorted(sys.modules))"
    modules = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "'numpy'" not in modules and "'touchstone.contracts'" not in modules
