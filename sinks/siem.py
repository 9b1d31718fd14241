"""SIEM formats of an alert, and the sink that publishes them to the SIEM topic.

- :func:`ecs_document` — Elastic Common Schema JSON (the default on ``Settings.topic_siem``);
- :func:`ocsf_finding` — OCSF Detection Finding (``class_uid`` 2004) JSON;
- :func:`cef_line` — an ArcSight CEF line for syslog collectors.

Mapping choices: ``@timestamp`` is when the behaviour was observed (``event_time``, the end of
the window that scored), ``event.created`` when the detector raised the alert. ``event.severity``
is the ordered level as a number (0 none … 4 critical) and ``event.risk_score`` the 0–100 risk.
Touchstone's own fields sit under ``touchstone.*``, outside the ECS namespace.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from touchstone import __version__
from touchstone.contracts import Alert, Level
from touchstone.sinks.base import AlertSink
from touchstone.sinks.render import MODALITY_NAMES, iso_time, reason_text, rule_id, rule_name, summary, top_reasons
from touchstone.sinks.topic import TopicWriter

__all__ = [
    "ECS_VERSION",
    "SIEM_FORMATS",
    "ecs_document",
    "ocsf_finding",
    "cef_line",
    "render_siem",
    "SiemSink",
]

ECS_VERSION = "8.11.0"
OCSF_VERSION = "1.1.0"
SIEM_FORMATS = ("ecs", "ocsf", "cef")
PRODUCT = "Touchstone"


def _touchstone_fields(alert: Alert) -> dict[str, Any]:
    return {
        "schema": "alert/1",
        "alert_id": alert.alert_id,
        "session_id": alert.session_id,
        "level": alert.level.label,
        "status": alert.status,
        "modality": alert.modality,
        "enrolment": alert.enrolment,
        "model_version": alert.model_version,
        "window_id": alert.window_id,
        "windows_seen": alert.windows_seen,
        "session_age_s": alert.session_age_s,
        "risk": alert.risk,
        "scores": dict(alert.scores),
        "top_features": [
            {"feature": r.feature, "value": r.value, "expected": r.expected, "deviation": r.deviation}
            for r in top_reasons(alert)
        ],
    }


# --- Elastic Common Schema ----------------------------------------------------------------------


def ecs_document(alert: Alert) -> dict[str, Any]:
    """The alert as an ECS document (``event.kind: alert``)."""
    session_start_ms = alert.event_time - alert.session_age_s * 1000.0
    return {
        "@timestamp": iso_time(alert.event_time),
        "ecs": {"version": ECS_VERSION},
        "message": summary(alert),
        "event": {
            "kind": "alert",
            # The person at the keyboard is not the one who authenticated: an authentication
            # finding about a session.
            "category": ["authentication", "session"],
            "type": ["end"] if alert.status == "resolved" else ["info"],
            "action": f"behaviour-mismatch-{alert.status}",
            "id": alert.alert_id,
            "created": iso_time(alert.created_at),
            "start": iso_time(session_start_ms),
            "severity": int(alert.level),
            "risk_score": alert.risk,
            "risk_score_norm": alert.risk,
            "module": "touchstone",
            "dataset": "touchstone.alert",
            "provider": "touchstone",
            "reason": "; ".join(reason_text(r) for r in top_reasons(alert, 3)) or "risk above threshold",
        },
        "user": {"name": alert.user},
        "host": {"name": alert.host, "hostname": alert.host},
        "rule": {
            "id": rule_id(alert),
            "name": rule_name(alert),
            "ruleset": "touchstone",
            "category": "behavioural authentication",
            "version": alert.model_version,
            "description": f"Continuous authentication from {MODALITY_NAMES.get(alert.modality, alert.modality)}.",
        },
        "observer": {"vendor": PRODUCT, "product": PRODUCT, "version": __version__},
        "labels": {"touchstone_session_id": alert.session_id},
        "tags": ["touchstone", f"level:{alert.level.label}", f"modality:{alert.modality}"],
        "touchstone": _touchstone_fields(alert),
    }


# --- OCSF Detection Finding -----------------------------------------------------------------------

_OCSF_ACTIVITY = {"open": (1, "Create"), "update": (2, "Update"), "resolved": (3, "Close")}
_OCSF_STATUS = {"open": (1, "New"), "update": (2, "In Progress"), "resolved": (4, "Resolved")}
_OCSF_SEVERITY = {
    Level.NONE: (1, "Informational"),
    Level.LOW: (2, "Low"),
    Level.MEDIUM: (3, "Medium"),
    Level.HIGH: (4, "High"),
    Level.CRITICAL: (5, "Critical"),
}
_OCSF_RISK_LEVEL = {
    Level.NONE: (0, "Info"),
    Level.LOW: (1, "Low"),
    Level.MEDIUM: (2, "Medium"),
    Level.HIGH: (3, "High"),
    Level.CRITICAL: (4, "Critical"),
}
OCSF_CLASS_UID = 2004
OCSF_CATEGORY_UID = 2


def ocsf_finding(alert: Alert) -> dict[str, Any]:
    """The alert as an OCSF Detection Finding."""
    activity_id, activity = _OCSF_ACTIVITY[alert.status]
    status_id, status = _OCSF_STATUS[alert.status]
    severity_id, severity = _OCSF_SEVERITY[alert.level]
    risk_level_id, risk_level = _OCSF_RISK_LEVEL[alert.level]
    return {
        "class_uid": OCSF_CLASS_UID,
        "class_name": "Detection Finding",
        "category_uid": OCSF_CATEGORY_UID,
        "category_name": "Findings",
        "activity_id": activity_id,
        "activity_name": activity,
        "type_uid": OCSF_CLASS_UID * 100 + activity_id,
        "type_name": f"Detection Finding: {activity}",
        "time": int(alert.event_time),
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": status,
        "message": summary(alert),
        "risk_score": round(alert.risk),
        "risk_level_id": risk_level_id,
        "risk_level": risk_level,
        "metadata": {
            "version": OCSF_VERSION,
            "uid": alert.alert_id,
            "correlation_uid": alert.session_id,
            "product": {"name": PRODUCT, "vendor_name": PRODUCT, "version": __version__},
        },
        "finding_info": {
            "uid": alert.alert_id,
            "title": rule_name(alert),
            "desc": summary(alert),
            "created_time": int(alert.created_at),
            "first_seen_time": int(alert.event_time - alert.session_age_s * 1000.0),
            "last_seen_time": int(alert.event_time),
            "types": ["Behavioural authentication"],
            "analytic": {
                "uid": rule_id(alert),
                "name": rule_name(alert),
                "type_id": 2,
                "type": "Behavioral",
                "version": alert.model_version,
            },
        },
        "actor": {"user": {"name": alert.user}},
        "device": {"hostname": alert.host, "name": alert.host, "type_id": 0, "type": "Unknown"},
        "unmapped": {"touchstone": _touchstone_fields(alert)},
    }


# --- ArcSight CEF -------------------------------------------------------------------------------

_CEF_SEVERITY = {Level.NONE: 0, Level.LOW: 3, Level.MEDIUM: 5, Level.HIGH: 8, Level.CRITICAL: 10}
_NEWLINES = re.compile(r"\r\n|\r|\n")


def cef_header_escape(text: str) -> str:
    r"""Escape a CEF header field: backslash and pipe; newlines are not allowed there.

    >>> cef_header_escape("a|b\\c\nd")
    'a\\|b\\\\c d'
    """
    return _NEWLINES.sub(" ", text.replace("\\", "\\\\").replace("|", "\\|"))


def cef_value_escape(text: str) -> str:
    r"""Escape a CEF extension value: backslash, equals sign, and newlines as ``\n``.

    >>> cef_value_escape("x=1\\y\r\nz|w")
    'x\\=1\\\\y\\nz|w'
    """
    escaped = text.replace("\\", "\\\\").replace("=", "\\=")
    return _NEWLINES.sub("\\\\n", escaped)


def cef_line(alert: Alert) -> str:
    """``CEF:0|Touchstone|Touchstone|version|class|name|severity|extension`` for one alert."""
    header = [
        "CEF:0",
        PRODUCT,
        PRODUCT,
        __version__,
        rule_id(alert),
        rule_name(alert),
        str(_CEF_SEVERITY[alert.level]),
    ]
    reasons = "; ".join(reason_text(r) for r in top_reasons(alert, 3))
    extension = [
        ("rt", str(int(alert.event_time))),
        ("start", str(int(alert.event_time - alert.session_age_s * 1000.0))),
        ("suser", alert.user),
        ("shost", alert.host),
        ("externalId", alert.alert_id),
        ("act", alert.status),
        ("cat", "behavioural-authentication"),
        ("cs1Label", "sessionId"),
        ("cs1", alert.session_id),
        ("cs2Label", "modality"),
        ("cs2", alert.modality),
        ("cs3Label", "reasons"),
        ("cs3", reasons),
        ("cs4Label", "modelVersion"),
        ("cs4", alert.model_version),
        ("cn1Label", "risk"),
        ("cn1", str(round(alert.risk))),
        ("cn2Label", "windowsSeen"),
        ("cn2", str(alert.windows_seen)),
        ("msg", summary(alert)),
    ]
    return (
        "|".join(cef_header_escape(field) if i else field for i, field in enumerate(header))
        + "|"
        + " ".join(f"{key}={cef_value_escape(value)}" for key, value in extension)
    )


def render_siem(alert: Alert, fmt: str = "ecs") -> bytes:
    """The alert in one SIEM format, as the bytes of one record."""
    if fmt == "ecs":
        return orjson.dumps(ecs_document(alert))
    if fmt == "ocsf":
        return orjson.dumps(ocsf_finding(alert))
    if fmt == "cef":
        return cef_line(alert).encode("utf-8")
    raise ValueError(f"SIEM format must be one of {SIEM_FORMATS}, got {fmt!r}")


class SiemSink(AlertSink):
    """Re-publishes every alert to a SIEM topic (keyed by session) in one SIEM format."""

    kind = "siem"

    def __init__(self, name: str, *, writer: TopicWriter, fmt: str = "ecs", **kwargs: Any) -> None:
        if fmt not in SIEM_FORMATS:
            raise ValueError(f"SIEM format must be one of {SIEM_FORMATS}, got {fmt!r}")
        super().__init__(name, **kwargs)
        self.writer = writer
        self.fmt = fmt

    def send(self, alert: Alert, timeout: float) -> None:
        self.writer.write(render_siem(alert, self.fmt), key=alert.session_id.encode(), timeout=timeout)
