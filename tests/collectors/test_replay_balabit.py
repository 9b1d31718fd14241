"""Balabit session parsing and replay, on small CSV files written by the tests (never dataset files)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from touchstone.collectors.replay_balabit import (
    BALABIT_SESSION_START_MS,
    COLLECTOR,
    iter_balabit_batches,
    parse_balabit_session,
    read_balabit_session,
)
from touchstone.contracts import Button, MouseKind, decode_raw, encode_raw

HEADER = "record timestamp,client timestamp,button,state,x,y\n"

ROWS = [
    "0.0,0.0,NoButton,Move,100,200",
    "0.0,0.0160000000615,NoButton,Move,103,201",
    "0.0,0.0160000000615,NoButton,Move,104,201",  # duplicate client time: kept
    "0.1,0.047,Left,Pressed,104,201",
    "0.1,0.062,NoButton,Drag,120,210",
    "0.2,0.125,Left,Released,130,215",
    "0.3,0.250,Right,Pressed,130,215",
    "0.3,0.320,Right,Released,130,215",
    "0.4,0.400,Scroll,Down,130,215",
    "0.4,0.410,Scroll,Up,130,215",
    "0.5,0.500,NoButton,Move,65535,65535",  # RDP sentinel: skipped
    "0.5,0.510,NoButton,Move,131,216,extra",  # malformed: skipped
    "0.5,0.520,NoButton,Hover,131,216",  # unknown state: skipped
    "0.6,0.600,XButton,Pressed,131,216",
    "0.6,0.650,XButton,Released,131,216",
    "0.7,0.640,NoButton,Move,140,220",  # client time goes backwards: clamped
]


@pytest.fixture
def session_file(tmp_path):
    path = tmp_path / "session_0000000001"
    path.write_text(HEADER + "\n".join(ROWS) + "\n", encoding="utf-8")
    return path


def test_states_buttons_and_times_map_to_the_raw_contract(session_file):
    parsed = parse_balabit_session(session_file)
    ev = parsed.events
    assert parsed.rows == len(ROWS)
    assert parsed.skipped == {"coordinate_glitch": 1, "malformed": 1, "unknown_state": 1, "time_backwards_clamped": 1}
    assert len(ev) == len(ROWS) - 3
    k = MouseKind
    assert ev.kind.tolist() == [
        k.MOVE, k.MOVE, k.MOVE, k.PRESS, k.MOVE, k.RELEASE, k.PRESS, k.RELEASE, k.SCROLL, k.SCROLL,
        k.PRESS, k.RELEASE, k.MOVE,
    ]
    b = Button
    assert ev.button.tolist() == [0, 0, 0, b.LEFT, 0, b.LEFT, b.RIGHT, b.RIGHT, -1, 1, b.OTHER, b.OTHER, 0]
    # Client timestamps, seconds x 1000, to the microsecond (the wire contract's resolution).
    assert ev.t[1] == 16.0
    assert ev.t[3] == 47.0
    assert ev.t[1] == ev.t[2]
    assert ev.t[-1] == ev.t[-2] == 0.650 * 1000.0  # the backwards step clamped to the previous time
    assert ev.x.tolist()[:3] == [100.0, 103.0, 104.0]
    assert bool((np.diff(ev.t) >= 0).all())


def test_batches_cover_the_session_in_order_and_satisfy_the_contract(session_file):
    batches = list(iter_balabit_batches(session_file, "user7", "s-1", batch_events=4))
    events = read_balabit_session(session_file)
    assert [b.seq for b in batches] == list(range(len(batches)))
    assert [len(b.mouse) for b in batches] == [4, 4, 4, 1]
    assert [b.end for b in batches] == [False, False, False, True]
    assert np.array_equal(np.concatenate([b.mouse.t for b in batches]), events.t)
    assert np.array_equal(np.concatenate([b.mouse.kind for b in batches]), events.kind)
    for batch in batches:
        assert batch.user == "user7" and batch.session_id == "s-1" and batch.collector == COLLECTOR
        assert batch.mono == batch.mouse.t[-1]
        assert batch.wall == BALABIT_SESSION_START_MS + batch.mono
        decoded = decode_raw(encode_raw(batch))  # every replayed batch passes the wire contract, unchanged
        assert np.array_equal(decoded.mouse.t, batch.mouse.t)
        assert np.array_equal(decoded.mouse.x, batch.mouse.x)
        assert np.array_equal(decoded.mouse.button, batch.mouse.button)


def test_an_empty_file_replays_as_one_empty_end_batch(tmp_path):
    path = tmp_path / "session_empty"
    path.write_text(HEADER, encoding="utf-8")
    (batch,) = iter_balabit_batches(path, "user9", "s-empty")
    assert batch.end and len(batch.mouse) == 0 and batch.seq == 0
    decode_raw(encode_raw(batch))


def test_a_headerless_file_keeps_its_first_row(tmp_path):
    path = tmp_path / "session_noheader"
    path.write_text("\n".join(ROWS[:3]) + "\n", encoding="utf-8")
    assert len(read_balabit_session(path)) == 3


def test_batch_size_must_be_positive(session_file):
    with pytest.raises(ValueError):
        next(iter_balabit_batches(session_file, "u", "s", batch_events=0))


_cell = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-70000, 70000).map(str),
    st.sampled_from(["", "Move", "Drag", "Pressed", "Released", "Down", "Up", "Left", "NoButton", "x", "nan", "1e400"]),
)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.lists(_cell, min_size=4, max_size=8).map(",".join), max_size=30))
def test_arbitrary_rows_never_raise_and_yield_contract_valid_batches(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("fuzz") / "session_fuzz"
    path.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    parsed = parse_balabit_session(path)
    assert len(parsed.events) + sum(v for k, v in parsed.skipped.items() if k != "time_backwards_clamped") <= len(
        [r for r in rows if r.strip()]
    )
    for batch in iter_balabit_batches(path, "u", "s", batch_events=7):
        decode_raw(encode_raw(batch))
