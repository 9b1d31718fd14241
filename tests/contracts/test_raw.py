"""raw/1 decoder: valid batches round-trip; every bad message gets a ContractError with a precise reason."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from touchstone.contracts import KeyEvents, Limits, MouseEvents, RawBatch, decode_raw, encode_raw
from touchstone.contracts._checks import numeric_column, numeric_columns
from touchstone.errors import ContractError

START = 1.75e12


def make_batch(n_keys: int = 4, n_mouse: int = 6, **changes) -> RawBatch:
    kt = np.arange(n_keys, dtype=float) * 50.0
    mt = np.arange(n_mouse, dtype=float) * 8.013
    fields = dict(
        session_id="s-1",
        user="alice",
        host="ws-1",
        seq=3,
        collector="touchstone-collector/0.1.0",
        privacy="timing",
        session_start=START,
        wall=START + 1000.0,
        mono=1000.0,
        keys=KeyEvents(t=kt, down=np.arange(n_keys) % 2 == 0, key=tuple("L1" for _ in range(n_keys))),
        mouse=MouseEvents(
            t=mt,
            kind=np.zeros(n_mouse, dtype=np.int8),
            x=np.round(np.linspace(0, 1900, n_mouse)),
            y=np.round(np.linspace(5, 1000, n_mouse)),
            button=np.zeros(n_mouse, dtype=np.int16),
        ),
    )
    fields.update(changes)
    return RawBatch(**fields)


def doc_of(batch: RawBatch) -> dict:
    return orjson.loads(encode_raw(batch))


def reason_of(doc: dict, limits: Limits | None = None) -> str:
    with pytest.raises(ContractError) as err:
        decode_raw(orjson.dumps(doc), limits if limits is not None else Limits())
    return err.value.reason


def test_round_trip_preserves_every_field():
    batch = make_batch()
    back = decode_raw(encode_raw(batch))
    assert (back.session_id, back.user, back.host, back.seq, back.privacy) == ("s-1", "alice", "ws-1", 3, "timing")
    np.testing.assert_array_equal(back.keys.t, batch.keys.t)
    np.testing.assert_array_equal(back.keys.down, batch.keys.down)
    assert back.keys.key == batch.keys.key
    np.testing.assert_array_equal(back.mouse.x, batch.mouse.x)
    assert back.capture_time(500.0) == pytest.approx(START + 500.0)


def test_empty_heartbeat_round_trips():
    batch = make_batch(0, 0, heartbeat=True)
    back = decode_raw(encode_raw(batch))
    assert back.heartbeat and back.n_events == 0


def test_moves_are_compact():
    # Columnar encoding: a mouse move (time at µs resolution, integer pixels) costs under 30 bytes on the wire.
    batch = make_batch(0, 200, mono=2000.0, wall=START + 2000.0)
    assert len(encode_raw(batch)) / 200 < 30


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.pop("user"), "missing_field"),
        (lambda d: d.update(seq="3"), "wrong_type"),
        (lambda d: d.update(seq=-1), "bad_value"),
        (lambda d: d.update(schema="raw/2"), "unknown_version"),
        (lambda d: d.pop("schema"), "unknown_version"),
        (lambda d: d.update(privacy="plaintext"), "bad_value"),
        (lambda d: d.update(session_start=12.0), "absurd_timestamp"),
        (lambda d: d.update(wall=9e15), "absurd_timestamp"),
        (lambda d: d["mouse"].update(t=[0, 8, 4, 24, 32, 40]), "non_monotonic"),
        (lambda d: d["mouse"].update(t=["0", 8, 16, 24, 32, 40]), "wrong_type"),
        (lambda d: d["keys"].update(t=[-5, 50, 100, 150]), "absurd_timestamp"),
        (lambda d: d["mouse"].update(x=[0, 1, 2]), "ragged_columns"),
        (lambda d: d["mouse"].update(x=[0, 1, 2, "3", 4, 5]), "wrong_type"),
        (lambda d: d["mouse"].update(x=[0, 1, 2, None, 4, 5]), "wrong_type"),
        (lambda d: d["mouse"].update(x=[0, 1, 2, [3], 4, 5]), "wrong_type"),
        (lambda d: d["mouse"].update(x=[0, 1, 2, 1e300 * 10, 4, 5]), "bad_value"),
        (lambda d: d["mouse"].update(e=[0, 0, 7, 0, 0, 0]), "bad_value"),
        (lambda d: d["keys"].update(d=[1, 0, 2, 0]), "bad_value"),
        (lambda d: d["keys"].update(k=["L1", 5, "L1", "L1"]), "wrong_type"),
        (lambda d: d.update(keys=[1, 2]), "wrong_type"),
        (lambda d: d["keys"].update(t=[0, 50, 100, 5000]), "future_event"),
        (lambda d: d.update(heartbeat="yes"), "wrong_type"),
    ],
)
def test_bad_fields_get_precise_reasons(mutate, reason):
    doc = doc_of(make_batch())
    mutate(doc)
    assert reason_of(doc) == reason


def test_oversize_batches_and_messages_are_rejected():
    doc = doc_of(make_batch(0, 300))
    assert reason_of(doc, Limits(max_events=200)) == "oversize"
    with pytest.raises(ContractError) as err:
        decode_raw(b" " * 2000, Limits(max_bytes=1000))
    assert err.value.reason == "oversize"


@pytest.mark.parametrize("data", [b"", b"{", b"null", b"[]", b'"x"', b"\xff\xfe", b'{"schema": "raw/1"}'])
def test_garbage_is_a_contract_error(data):
    with pytest.raises(ContractError):
        decode_raw(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_escape_as_other_exceptions(data):
    try:
        decode_raw(data)
    except ContractError as err:
        assert err.reason and err.detail


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=6), children, max_size=5),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(list(doc_of(make_batch()))), json_values, max_size=12))
def test_random_documents_with_real_field_names_decode_or_fail_cleanly(fields):
    doc = doc_of(make_batch())
    doc.update(fields)
    try:
        batch = decode_raw(orjson.dumps(doc))
    except ContractError as err:
        assert err.reason
    else:
        assert all(math.isfinite(v) for v in batch.mouse.t) and batch.seq >= 0


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(0, 1e6, allow_nan=False), max_size=50).map(sorted),
    st.integers(0, 2**40),
)
def test_any_valid_timeline_round_trips(times, seq):
    n = len(times)
    t = np.asarray(times, dtype=float)
    mono = float(t[-1]) if n else 0.0
    batch = make_batch(
        0,
        0,
        seq=seq,
        mono=mono,
        wall=START + mono,
        mouse=MouseEvents(t=t, kind=np.zeros(n, np.int8), x=np.zeros(n), y=np.zeros(n), button=np.zeros(n, np.int16)),
    )
    back = decode_raw(encode_raw(batch))
    np.testing.assert_allclose(back.mouse.t, t, rtol=0, atol=0.0005)  # microsecond resolution on the wire
    assert back.seq == seq


def _column_by_column(cols: dict, names: tuple[str, ...]) -> np.ndarray | str:
    """The reference: each column through the one-column check; the error reason on failure."""
    try:
        rows = [numeric_column(cols, "mouse", names[0], None)]
        rows.extend(numeric_column(cols, "mouse", name, rows[0].size) for name in names[1:])
    except ContractError as err:
        return err.reason
    return np.vstack(rows)


cell_values = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(-(2**63), 2**63 - 1)
    | st.booleans()
    | st.none()
    | st.text(max_size=3)
    | st.lists(st.integers(0, 3), max_size=2)
)
numeric_cells = st.floats(-1e9, 1e9, allow_nan=False) | st.integers(-(2**31), 2**31)


@settings(max_examples=400, deadline=None)
@given(
    st.integers(0, 6).flatmap(
        lambda n: st.lists(
            st.lists(numeric_cells, min_size=n, max_size=n)
            | st.lists(cell_values, min_size=n, max_size=n)
            | st.lists(cell_values, max_size=7)
            | st.none()
            | st.integers(),
            min_size=3,
            max_size=3,
        )
    )
)
def test_column_block_decodes_exactly_as_column_by_column(columns):
    names = ("t", "x", "y")
    cols = {name: values for name, values in zip(names, columns, strict=True) if values is not None}
    expected = _column_by_column(cols, names)
    try:
        got: np.ndarray | str = numeric_columns(cols, "mouse", names)
    except ContractError as err:
        got = err.reason
    if isinstance(expected, str):
        assert got == expected
    else:
        assert isinstance(got, np.ndarray) and got.dtype == np.float64
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("column", ["t", "x", "b"])
@pytest.mark.parametrize("huge", [b"9223372036854775808", b"18446744073709551615", b"-9223372036854775808"])
def test_integers_at_the_64_bit_edge_are_refused(column, huge):
    # orjson hands these over as Python ints; whichever path converts them, a range check refuses them.
    doc = doc_of(make_batch())
    doc["mouse"][column] = [0, 8, 16, 24, 32, 777_777]
    data = orjson.dumps(doc).replace(b"777777", huge)
    with pytest.raises(ContractError) as err:
        decode_raw(data)
    assert err.value.reason in {"wrong_type", "bad_value", "absurd_timestamp", "non_monotonic"}
