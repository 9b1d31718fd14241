"""Feature window, schema ``features/1``: the behaviour of one session over N keystrokes or K mouse actions.

Produced by stream workers keyed by user, so a user's detector state stays in one
partition. ``window_id`` is deterministic (session, modality, index): a replayed or
re-processed window has the same id and downstream consumers drop it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import orjson

from touchstone.contracts._checks import (
    epoch_ms,
    field_int,
    field_str,
    require_object,
)
from touchstone.contracts.raw import PRIVACY_MODES
from touchstone.errors import ContractError

__all__ = ["FEATURES_SCHEMA", "MODALITIES", "CLOSE_REASONS", "FeatureWindow", "encode_window", "decode_window"]

FEATURES_SCHEMA = "features/1"
MODALITIES = frozenset({"keys", "mouse"})
CLOSE_REASONS = frozenset({"count", "pause", "session_end", "idle"})


def window_id(session_id: str, modality: str, index: int) -> str:
    return f"{session_id}/{modality}/{index}"


@dataclass(frozen=True, slots=True)
class FeatureWindow:
    """Summary features of one window; every value finite.

    ``features``: named summary statistics (e.g. ``hold.median``).
    ``grams``: keystrokes only, mean latency (ms) per key-token digraph ``"a>b"``.
    ``actions``: mouse only, one feature vector per action, ordered as ``action_fields``.
    """

    user: str
    host: str
    session_id: str
    modality: str
    index: int
    privacy: str
    session_start: float
    start: float
    end: float
    n_events: int
    closed_by: str
    features: dict[str, float]
    grams: dict[str, float] = field(default_factory=dict)
    actions: list[list[float]] = field(default_factory=list)
    action_fields: list[str] = field(default_factory=list)
    produced_at: float = 0.0

    @property
    def window_id(self) -> str:
        return window_id(self.session_id, self.modality, self.index)


def encode_window(window: FeatureWindow) -> bytes:
    return orjson.dumps(
        {
            "schema": FEATURES_SCHEMA,
            "window_id": window.window_id,
            "user": window.user,
            "host": window.host,
            "session_id": window.session_id,
            "modality": window.modality,
            "index": window.index,
            "privacy": window.privacy,
            "session_start": window.session_start,
            "start": window.start,
            "end": window.end,
            "n_events": window.n_events,
            "closed_by": window.closed_by,
            "features": window.features,
            "grams": window.grams,
            "actions": window.actions,
            "action_fields": window.action_fields,
            "produced_at": window.produced_at,
        }
    )


def _finite_map(doc: dict[str, Any], name: str) -> dict[str, float]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise ContractError("wrong_type", f"field {name!r} must be an object of numbers")
    for key, number in value.items():
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise ContractError("bad_value", f"{name}[{key!r}] must be a finite number")
    return {k: float(v) for k, v in value.items()}


def _actions(doc: dict[str, Any]) -> tuple[list[list[float]], list[str]]:
    actions = doc.get("actions", [])
    names = doc.get("action_fields", [])
    if not isinstance(actions, list) or not isinstance(names, list):
        raise ContractError("wrong_type", "fields 'actions' and 'action_fields' must be lists")
    if not all(isinstance(n, str) for n in names):
        raise ContractError("wrong_type", "field 'action_fields' must hold strings")
    for row in actions:
        if not isinstance(row, list) or len(row) != len(names):
            raise ContractError("ragged_columns", "each action must be a list as long as 'action_fields'")
        for number in row:
            if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
                raise ContractError("bad_value", "action vectors must hold finite numbers")
    return [[float(v) for v in row] for row in actions], list(names)


def decode_window(data: bytes) -> FeatureWindow:
    """Decode and validate one feature window; raises ContractError only."""
    try:
        doc = require_object(orjson.loads(data))
    except orjson.JSONDecodeError as exc:
        raise ContractError("not_json", str(exc)) from None
    if doc.get("schema") != FEATURES_SCHEMA:
        raise ContractError("unknown_version", f"schema must be {FEATURES_SCHEMA!r}, got {doc.get('schema')!r}")
    actions, names = _actions(doc)
    produced = doc.get("produced_at", 0.0)
    return FeatureWindow(
        user=field_str(doc, "user"),
        host=field_str(doc, "host"),
        session_id=field_str(doc, "session_id"),
        modality=field_str(doc, "modality", allowed=MODALITIES),
        index=field_int(doc, "index"),
        privacy=field_str(doc, "privacy", allowed=PRIVACY_MODES),
        session_start=epoch_ms(doc, "session_start"),
        start=epoch_ms(doc, "start"),
        end=epoch_ms(doc, "end"),
        n_events=field_int(doc, "n_events"),
        closed_by=field_str(doc, "closed_by", allowed=CLOSE_REASONS),
        features=_finite_map(doc, "features"),
        grams=_finite_map(doc, "grams"),
        actions=actions,
        action_fields=names,
        produced_at=float(produced) if isinstance(produced, (int, float)) else 0.0,
    )
