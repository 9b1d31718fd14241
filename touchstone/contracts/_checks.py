"""Small field checks shared by the decoders; each raises ContractError with a precise reason."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from touchstone.errors import ContractError

# Capture times before 2001 or after 2100 are clock faults, not behaviour.
MIN_EPOCH_MS = 978_307_200_000.0
MAX_EPOCH_MS = 4_102_444_800_000.0
MAX_NAME_LEN = 200


def require_object(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise ContractError("not_an_object", f"top level must be a JSON object, got {type(doc).__name__}")
    return doc


def field_str(doc: dict[str, Any], name: str, *, allowed: frozenset[str] | None = None, empty: bool = False) -> str:
    value = doc.get(name)
    if value is None:
        raise ContractError("missing_field", f"field {name!r} is required")
    if not isinstance(value, str):
        raise ContractError("wrong_type", f"field {name!r} must be a string, got {type(value).__name__}")
    if not value and not empty:
        raise ContractError("bad_value", f"field {name!r} must not be empty")
    if len(value) > MAX_NAME_LEN:
        raise ContractError("bad_value", f"field {name!r} is longer than {MAX_NAME_LEN} characters")
    if allowed is not None and value not in allowed:
        raise ContractError("bad_value", f"field {name!r} must be one of {sorted(allowed)}, got {value!r}")
    return value


def field_int(doc: dict[str, Any], name: str, *, minimum: int = 0, default: int | None = None) -> int:
    value = doc.get(name, default)
    if value is None:
        raise ContractError("missing_field", f"field {name!r} is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContractError("wrong_type", f"field {name!r} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ContractError("bad_value", f"field {name!r} must be >= {minimum}, got {value}")
    return value


def field_float(
    doc: dict[str, Any],
    name: str,
    *,
    minimum: float = -math.inf,
    maximum: float = math.inf,
    default: float | None = None,
    reason: str = "bad_value",
) -> float:
    value = doc.get(name, default)
    if value is None:
        raise ContractError("missing_field", f"field {name!r} is required")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ContractError("wrong_type", f"field {name!r} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or not minimum <= value <= maximum:
        raise ContractError(reason, f"field {name!r} must be within [{minimum}, {maximum}], got {value}")
    return value


def field_bool(doc: dict[str, Any], name: str, *, default: bool = False) -> bool:
    value = doc.get(name, default)
    if not isinstance(value, bool):
        raise ContractError("wrong_type", f"field {name!r} must be true or false, got {type(value).__name__}")
    return value


def epoch_ms(doc: dict[str, Any], name: str) -> float:
    return field_float(doc, name, minimum=MIN_EPOCH_MS, maximum=MAX_EPOCH_MS, reason="absurd_timestamp")


def numeric_column(cols: dict[str, Any], stream: str, name: str, length: int | None) -> np.ndarray:
    """A list of finite numbers as float64, of the stream's common length."""
    values = cols.get(name)
    if values is None:
        raise ContractError("missing_field", f"column {stream}.{name} is required")
    if not isinstance(values, list):
        raise ContractError("wrong_type", f"column {stream}.{name} must be a list")
    if length is not None and len(values) != length:
        raise ContractError("ragged_columns", f"column {stream}.{name} has {len(values)} values, expected {length}")
    try:
        array = np.asarray(values)
    except (TypeError, ValueError):
        raise ContractError("wrong_type", f"column {stream}.{name} must be a flat list of numbers") from None
    # Inferring the dtype (rather than forcing float) keeps numeric strings, nulls and nested lists out.
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iuf"):
        raise ContractError("wrong_type", f"column {stream}.{name} must be a flat list of numbers")
    array = array.astype(np.float64, copy=False)
    if array.size and not np.isfinite(array).all():
        raise ContractError("bad_value", f"column {stream}.{name} holds a NaN or infinite value")
    return array


def numeric_columns(cols: dict[str, Any], stream: str, names: tuple[str, ...]) -> np.ndarray:
    """Several numeric columns of one length as the rows of one float64 array.

    One numpy conversion for all of them: per-column conversions cost more than the checks on a
    batch of a few dozen events. Anything unusual (a missing or ragged column, a non-number, a
    column of booleans, a NaN) is handed to :func:`numeric_column`, column by column, so the
    error names the column and reason exactly as the one-column path would.
    """
    columns = [cols.get(name) for name in names]
    first = columns[0]
    length = len(first) if isinstance(first, list) else -1
    plain = length >= 0 and all(
        isinstance(values, list) and len(values) == length and not (values and values[0].__class__ is bool)
        for values in columns
    )
    if plain:
        try:
            block = np.array(columns)  # empty columns give a (k, 0) float64 block
        except (TypeError, ValueError, OverflowError):
            block = None
        if block is not None and block.ndim == 2 and block.dtype.kind in "iuf":
            block = block.astype(np.float64, copy=False)
            if np.isfinite(block).all():
                return block
    rows = [numeric_column(cols, stream, names[0], None)]
    rows.extend(numeric_column(cols, stream, name, rows[0].size) for name in names[1:])
    # Only reached when the block path refused something the one-column checks accept (e.g. a
    # column mixing booleans with numbers): the result is the same, just slower.
    return np.vstack(rows)


def string_column(cols: dict[str, Any], stream: str, name: str, length: int) -> tuple[str, ...]:
    values = cols.get(name)
    if values is None:
        raise ContractError("missing_field", f"column {stream}.{name} is required")
    if not isinstance(values, list):
        raise ContractError("wrong_type", f"column {stream}.{name} must be a list")
    if len(values) != length:
        raise ContractError("ragged_columns", f"column {stream}.{name} has {len(values)} values, expected {length}")
    for value in values:
        if not isinstance(value, str) or len(value) > 64:
            raise ContractError("wrong_type", f"column {stream}.{name} must hold strings of at most 64 characters")
    return tuple(values)
