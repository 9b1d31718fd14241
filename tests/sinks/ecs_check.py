"""An ECS check for Touchstone's SIEM documents, shared by the unit and the SIEM-topic tests.

Allowed values are ECS's own (event.kind / event.category / event.type reference lists); the
per-category type pairs are the ones ECS lists as expected for those categories.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from touchstone.contracts import Alert

ECS_KINDS = {"alert", "asset", "enrichment", "event", "metric", "state", "pipeline_error", "signal"}
ECS_CATEGORIES = {
    "api", "authentication", "configuration", "database", "driver", "email", "file", "host", "iam",
    "intrusion_detection", "library", "malware", "network", "package", "process", "registry", "session",
    "threat", "vulnerability", "web",
}  # fmt: skip
ECS_TYPES = {
    "access", "admin", "allowed", "change", "connection", "creation", "deletion", "denied", "end", "error",
    "group", "indicator", "info", "installation", "protocol", "start", "user",
}  # fmt: skip
EXPECTED_TYPES = {"authentication": {"start", "end", "info"}, "session": {"start", "end", "info"}}
REQUIRED = [
    "@timestamp", "ecs.version", "event.kind", "event.category", "event.type", "event.severity",
    "event.risk_score", "user.name", "host.name", "rule.name", "rule.id", "message",
    "touchstone.scores", "touchstone.modality", "touchstone.windows_seen", "touchstone.top_features",
]  # fmt: skip


def get(doc: dict[str, Any], dotted: str) -> Any:
    node: Any = doc
    if dotted in doc:
        return doc[dotted]
    for part in dotted.split("."):
        assert isinstance(node, dict) and part in node, f"missing ECS field {dotted}"
        node = node[part]
    return node


def _time(text: str) -> datetime:
    assert isinstance(text, str) and text.endswith("Z"), f"timestamp not RFC 3339 UTC: {text!r}"
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def assert_ecs_alert(doc: dict[str, Any], alert: Alert | None = None) -> None:
    """Fail unless ``doc`` is a well-formed ECS alert document (and, given ``alert``, describes it)."""
    for name in REQUIRED:
        get(doc, name)
    _time(doc["@timestamp"])
    _time(get(doc, "event.created"))
    assert get(doc, "event.kind") == "alert"
    assert get(doc, "event.kind") in ECS_KINDS
    categories, types = get(doc, "event.category"), get(doc, "event.type")
    assert isinstance(categories, list) and categories and set(categories) <= ECS_CATEGORIES
    assert isinstance(types, list) and types and set(types) <= ECS_TYPES
    for category in categories:
        if category in EXPECTED_TYPES:
            assert set(types) <= EXPECTED_TYPES[category], f"event.type {types} unexpected for {category}"
    severity = get(doc, "event.severity")
    assert isinstance(severity, int) and not isinstance(severity, bool) and 0 <= severity <= 4
    risk = get(doc, "event.risk_score")
    assert isinstance(risk, float) and 0.0 <= risk <= 100.0
    for name in ("user.name", "host.name"):  # as the alert contract has them: non-empty, verbatim
        value = get(doc, name)
        assert isinstance(value, str) and value, f"{name} must be a non-empty string"
    for name in ("rule.name", "rule.id", "message"):
        value = get(doc, name)
        assert isinstance(value, str) and value.strip(), f"{name} must be a non-blank string"
    scores = get(doc, "touchstone.scores")
    assert isinstance(scores, dict) and all(isinstance(v, float) and math.isfinite(v) for v in scores.values())
    assert get(doc, "touchstone.modality") in {"keys", "mouse", "fused"}
    assert isinstance(get(doc, "touchstone.windows_seen"), int)
    features = get(doc, "touchstone.top_features")
    assert isinstance(features, list)
    for item in features:
        assert set(item) == {"feature", "value", "expected", "deviation"}
    deviations = [abs(item["deviation"]) for item in features]
    assert deviations == sorted(deviations, reverse=True), "top features must come most deviant first"
    if alert is not None:
        assert get(doc, "user.name") == alert.user
        assert get(doc, "host.name") == alert.host
        assert get(doc, "event.id") == alert.alert_id
        assert get(doc, "event.severity") == int(alert.level)
        assert get(doc, "event.risk_score") == alert.risk
        assert get(doc, "touchstone.session_id") == alert.session_id
        assert get(doc, "touchstone.scores") == alert.scores
        assert abs(_time(doc["@timestamp"]).timestamp() * 1000.0 - alert.event_time) < 1.0
