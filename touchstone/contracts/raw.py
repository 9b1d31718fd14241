"""Raw input batch, schema ``raw/1``: one session's keyboard and mouse events since the last flush.

Events are columnar (one list per attribute) because mouse moves are most of the
volume and columns keep the JSON small and decode straight into numpy arrays.
Event times ``t`` are milliseconds on the collector's monotonic clock, counted from
the session start, at microsecond resolution; ``wall``/``mono`` anchor each batch to the wall clock, so the
capture time of an event is ``wall - (mono - t)`` in epoch milliseconds.
See ``docs/contracts.md`` for examples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np
import orjson

from touchstone.contracts._checks import (
    epoch_ms,
    field_bool,
    field_float,
    field_int,
    field_str,
    numeric_columns,
    require_object,
    string_column,
)
from touchstone.errors import ContractError

__all__ = [
    "RAW_SCHEMA",
    "PRIVACY_MODES",
    "MouseKind",
    "Button",
    "KeyEvents",
    "MouseEvents",
    "RawBatch",
    "Limits",
    "encode_raw",
    "decode_raw",
]

RAW_SCHEMA = "raw/1"
PRIVACY_MODES = frozenset({"timing", "keyed", "full"})
# A session running longer than a year is a clock fault.
MAX_SESSION_MS = 366 * 24 * 3600 * 1000.0
# Events may precede the flush anchor by any amount but follow it only by clock jitter.
ANCHOR_SLACK_MS = 1000.0
_EMPTY = np.zeros(0, dtype=np.float64)


class MouseKind(IntEnum):
    MOVE = 0
    PRESS = 1
    RELEASE = 2
    SCROLL = 3


class Button(IntEnum):
    NONE = 0
    LEFT = 1
    RIGHT = 2
    MIDDLE = 3
    OTHER = 4


@dataclass(frozen=True, slots=True)
class KeyEvents:
    """Key presses and releases: time (ms), pressed (True) or released, key token.

    The token depends on the privacy mode: a coarse class (``timing``), a keyed
    hash (``keyed``) or the key name (``full``).
    """

    t: np.ndarray = field(default_factory=lambda: _EMPTY)
    down: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    key: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.key)


@dataclass(frozen=True, slots=True)
class MouseEvents:
    """Mouse events: time (ms), :class:`MouseKind`, position (px) and button.

    For ``SCROLL`` events ``button`` holds the signed vertical scroll amount.
    """

    t: np.ndarray = field(default_factory=lambda: _EMPTY)
    kind: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int8))
    x: np.ndarray = field(default_factory=lambda: _EMPTY)
    y: np.ndarray = field(default_factory=lambda: _EMPTY)
    button: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int16))

    def __len__(self) -> int:
        return int(self.t.shape[0])


@dataclass(frozen=True, slots=True)
class RawBatch:
    session_id: str
    user: str
    host: str
    seq: int
    collector: str
    privacy: str
    session_start: float
    wall: float
    mono: float
    keys: KeyEvents = field(default_factory=KeyEvents)
    mouse: MouseEvents = field(default_factory=MouseEvents)
    heartbeat: bool = False
    end: bool = False

    @property
    def n_events(self) -> int:
        return len(self.keys) + len(self.mouse)

    def capture_time(self, t_ms: float) -> float:
        """Epoch milliseconds at which an event with session time ``t_ms`` was captured."""
        return self.wall - (self.mono - t_ms)


@dataclass(frozen=True, slots=True)
class Limits:
    max_events: int = 5000
    max_bytes: int = 1_000_000


def _compact(values: np.ndarray) -> np.ndarray:
    """Whole numbers as integers, others to microseconds/micropixels: shorter JSON, same behaviour."""
    rounded = np.round(values, 3)
    if rounded.size and np.abs(rounded).max() < 2**53 and (rounded == np.floor(rounded)).all():
        return rounded.astype(np.int64)
    return rounded


def _key_columns(batch: RawBatch) -> dict[str, Any]:
    return {"t": _compact(batch.keys.t), "d": batch.keys.down.astype(np.int8), "k": list(batch.keys.key)}


def _mouse_columns(batch: RawBatch) -> dict[str, Any]:
    m = batch.mouse
    return {
        "t": _compact(m.t),
        "e": m.kind.astype(np.int8),
        "x": _compact(m.x),
        "y": _compact(m.y),
        "b": m.button.astype(np.int16),
    }


def encode_raw(batch: RawBatch) -> bytes:
    doc: dict[str, Any] = {
        "schema": RAW_SCHEMA,
        "session_id": batch.session_id,
        "user": batch.user,
        "host": batch.host,
        "seq": batch.seq,
        "collector": batch.collector,
        "privacy": batch.privacy,
        "session_start": batch.session_start,
        "wall": batch.wall,
        "mono": batch.mono,
    }
    if len(batch.keys):
        doc["keys"] = _key_columns(batch)
    if len(batch.mouse):
        doc["mouse"] = _mouse_columns(batch)
    if batch.heartbeat:
        doc["heartbeat"] = True
    if batch.end:
        doc["end"] = True
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


def _check_times(t: np.ndarray, stream: str, mono: float) -> None:
    if not t.size:
        return
    first, last = float(t[0]), float(t[-1])
    if first < 0 or last > MAX_SESSION_MS:
        raise ContractError("absurd_timestamp", f"{stream}.t must lie within [0, {MAX_SESSION_MS:.0f}] ms")
    if t.size > 1 and not (t[1:] >= t[:-1]).all():
        index = int(np.argmax(np.diff(t) < 0)) + 1
        raise ContractError("non_monotonic", f"{stream}.t goes backwards at index {index}")
    if last > mono + ANCHOR_SLACK_MS:
        raise ContractError("future_event", f"{stream}.t ends at {last:.1f} ms, after the batch anchor mono={mono:.1f}")


def _decode_keys(cols: Any, mono: float) -> KeyEvents:
    if not isinstance(cols, dict):
        raise ContractError("wrong_type", "field 'keys' must be an object of columns")
    t, down = numeric_columns(cols, "keys", ("t", "d"))
    # Plain comparisons: np.isin costs tens of microseconds on the few values of one batch.
    if down.size and not ((down == 0.0) | (down == 1.0)).all():
        raise ContractError("bad_value", "column keys.d must hold 1 (press) or 0 (release)")
    key = string_column(cols, "keys", "k", t.size)
    _check_times(t, "keys", mono)
    return KeyEvents(t=t, down=down.astype(bool), key=key)


# Inclusive bounds of the mouse columns e, x, y, b (rows 1-4 of the block); e and b are integers.
_MOUSE_LOW = (0.0, -1e6, -1e6, -10_000.0)
_MOUSE_HIGH = (3.0, 1e6, 1e6, 10_000.0)
_MOUSE_BOUND_ERRORS = (
    "column mouse.e must hold 0 move, 1 press, 2 release or 3 scroll",
    "mouse coordinates must lie within +-1e6 px",
    "mouse coordinates must lie within +-1e6 px",
    "column mouse.b must hold small integers",
)


def _decode_mouse(cols: Any, mono: float) -> MouseEvents:
    if not isinstance(cols, dict):
        raise ContractError("wrong_type", "field 'mouse' must be an object of columns")
    # Whole-block reductions: a few numpy calls per batch instead of a few per column.
    block = numeric_columns(cols, "mouse", ("t", "e", "x", "y", "b"))
    t, kind, x, y, button = block
    if t.size:
        lows = block[1:].min(axis=1).tolist()
        highs = block[1:].max(axis=1).tolist()
        for row, (low, high) in enumerate(zip(lows, highs, strict=True)):
            if low < _MOUSE_LOW[row] or high > _MOUSE_HIGH[row]:
                raise ContractError("bad_value", _MOUSE_BOUND_ERRORS[row])
        codes = block[1::3]  # e and b
        if not (codes == np.rint(codes)).all():
            which = 0 if not (kind == np.rint(kind)).all() else 3
            raise ContractError("bad_value", _MOUSE_BOUND_ERRORS[which])
    _check_times(t, "mouse", mono)
    # Rows of one C-ordered block are contiguous views; nothing writes to them.
    return MouseEvents(t=t, kind=kind.astype(np.int8), x=x, y=y, button=button.astype(np.int16))


def decode_raw(data: bytes, limits: Limits = Limits()) -> RawBatch:
    """Decode and validate one raw batch; raises ContractError, never anything else.

    >>> b = RawBatch(session_id="s1", user="u", host="h", seq=0, collector="c/1", privacy="timing",
    ...              session_start=1.7e12, wall=1.7e12 + 500, mono=500.0)
    >>> decode_raw(encode_raw(b)).session_id
    's1'
    >>> decode_raw(b"{").__class__
    Traceback (most recent call last):
    ...
    touchstone.errors.ContractError: not_json: unexpected end of data: line 1 column 2 (char 1)
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ContractError("wrong_type", f"message value must be bytes, got {type(data).__name__}")
    if len(data) > limits.max_bytes:
        raise ContractError("oversize", f"message is {len(data)} bytes, limit {limits.max_bytes}")
    try:
        doc = require_object(orjson.loads(data))
    except orjson.JSONDecodeError as exc:
        raise ContractError("not_json", str(exc)) from None
    schema = doc.get("schema")
    if schema != RAW_SCHEMA:
        raise ContractError("unknown_version", f"schema must be {RAW_SCHEMA!r}, got {schema!r}")
    try:
        return _decode_fields(doc, limits)
    except ContractError:
        raise
    except (TypeError, ValueError, OverflowError, AttributeError) as exc:  # a shape no check foresaw
        raise ContractError("malformed", f"{type(exc).__name__}: {exc}") from None


def _declared_events(doc: dict[str, Any]) -> int:
    total = 0
    for stream in ("keys", "mouse"):
        cols = doc.get(stream)
        if isinstance(cols, dict) and isinstance(cols.get("t"), list):
            total += len(cols["t"])
    return total


# Shared empty streams for batches without keys or without mouse events: both are immutable.
_NO_KEYS = KeyEvents()
_NO_MOUSE = MouseEvents()


def _decode_fields(doc: dict[str, Any], limits: Limits) -> RawBatch:
    # Size first: an oversize batch is refused before any per-event work.
    n_events = _declared_events(doc)
    if n_events > limits.max_events:
        raise ContractError("oversize", f"batch holds {n_events} events, limit {limits.max_events}")
    mono = field_float(doc, "mono", minimum=0.0, maximum=MAX_SESSION_MS, reason="absurd_timestamp")
    keys = _decode_keys(doc["keys"], mono) if "keys" in doc else _NO_KEYS
    mouse = _decode_mouse(doc["mouse"], mono) if "mouse" in doc else _NO_MOUSE
    return RawBatch(
        session_id=field_str(doc, "session_id"),
        user=field_str(doc, "user"),
        host=field_str(doc, "host"),
        seq=field_int(doc, "seq"),
        collector=field_str(doc, "collector"),
        privacy=field_str(doc, "privacy", allowed=PRIVACY_MODES),
        session_start=epoch_ms(doc, "session_start"),
        wall=epoch_ms(doc, "wall"),
        mono=mono,
        keys=keys,
        mouse=mouse,
        heartbeat=field_bool(doc, "heartbeat"),
        end=field_bool(doc, "end"),
    )
