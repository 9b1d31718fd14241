"""Alert, schema ``alert/1``: the one normalised alert every sink takes.

``alert_id`` is deterministic for a (session, level, episode), so a detector that
re-processes a window after a restart re-emits the same id and sinks drop it.
``status`` is ``open`` for a new incident level, ``update`` when the risk of an open
incident moves, ``resolved`` when the session ends or the risk falls back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import orjson

from touchstone.contracts._checks import epoch_ms, field_float, field_int, field_str, require_object
from touchstone.errors import ContractError

__all__ = ["ALERT_SCHEMA", "Level", "Reason", "Alert", "encode_alert", "decode_alert"]

ALERT_SCHEMA = "alert/1"
ALERT_MODALITIES = frozenset({"keys", "mouse", "fused"})
ENROLMENT_STATES = frozenset({"enrolling", "enrolled"})
ALERT_STATUSES = frozenset({"open", "update", "resolved"})


class Level(IntEnum):
    """Ordered severity; compare levels with < and >=."""

    NONE = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Level:
        try:
            return cls[text.upper()]
        except KeyError:
            raise ContractError("bad_value", f"level must be one of {[lv.label for lv in cls]}, got {text!r}") from None


@dataclass(frozen=True, slots=True)
class Reason:
    """A feature that deviated: observed value, the user's typical value, and how far (robust z)."""

    feature: str
    value: float
    expected: float
    deviation: float


@dataclass(frozen=True, slots=True)
class Alert:
    alert_id: str
    created_at: float
    user: str
    host: str
    session_id: str
    risk: float
    level: Level
    modality: str
    windows_seen: int
    session_age_s: float
    event_time: float
    window_id: str
    model_version: str
    enrolment: str = "enrolled"
    status: str = "open"
    reasons: tuple[Reason, ...] = ()
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": ALERT_SCHEMA,
            "alert_id": self.alert_id,
            "created_at": self.created_at,
            "user": self.user,
            "host": self.host,
            "session_id": self.session_id,
            "risk": self.risk,
            "level": self.level.label,
            "modality": self.modality,
            "windows_seen": self.windows_seen,
            "session_age_s": self.session_age_s,
            "event_time": self.event_time,
            "window_id": self.window_id,
            "model_version": self.model_version,
            "enrolment": self.enrolment,
            "status": self.status,
            "reasons": [
                {"feature": r.feature, "value": r.value, "expected": r.expected, "deviation": r.deviation}
                for r in self.reasons
            ],
            "scores": self.scores,
        }


def encode_alert(alert: Alert) -> bytes:
    return orjson.dumps(alert.to_dict())


def _reasons(doc: dict[str, Any]) -> tuple[Reason, ...]:
    raw = doc.get("reasons", [])
    if not isinstance(raw, list):
        raise ContractError("wrong_type", "field 'reasons' must be a list")
    reasons = []
    for item in raw:
        item = require_object(item)
        reasons.append(
            Reason(
                feature=field_str(item, "feature"),
                value=field_float(item, "value"),
                expected=field_float(item, "expected"),
                deviation=field_float(item, "deviation"),
            )
        )
    return tuple(reasons)


def _scores(doc: dict[str, Any]) -> dict[str, float]:
    raw = doc.get("scores", {})
    if not isinstance(raw, dict):
        raise ContractError("wrong_type", "field 'scores' must be an object")
    out = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ContractError("bad_value", f"scores[{key!r}] must be a finite number")
        out[key] = float(value)
    return out


def decode_alert(data: bytes) -> Alert:
    """Decode and validate one alert; raises ContractError only."""
    try:
        doc = require_object(orjson.loads(data))
    except orjson.JSONDecodeError as exc:
        raise ContractError("not_json", str(exc)) from None
    if doc.get("schema") != ALERT_SCHEMA:
        raise ContractError("unknown_version", f"schema must be {ALERT_SCHEMA!r}, got {doc.get('schema')!r}")
    return Alert(
        alert_id=field_str(doc, "alert_id"),
        created_at=epoch_ms(doc, "created_at"),
        user=field_str(doc, "user"),
        host=field_str(doc, "host"),
        session_id=field_str(doc, "session_id"),
        risk=field_float(doc, "risk", minimum=0.0, maximum=100.0),
        level=Level.parse(field_str(doc, "level")),
        modality=field_str(doc, "modality", allowed=ALERT_MODALITIES),
        windows_seen=field_int(doc, "windows_seen"),
        session_age_s=field_float(doc, "session_age_s", minimum=0.0),
        event_time=epoch_ms(doc, "event_time"),
        window_id=field_str(doc, "window_id"),
        model_version=field_str(doc, "model_version"),
        enrolment=field_str(doc, "enrolment", allowed=ENROLMENT_STATES),
        status=field_str(doc, "status", allowed=ALERT_STATUSES),
        reasons=_reasons(doc),
        scores=_scores(doc),
    )
