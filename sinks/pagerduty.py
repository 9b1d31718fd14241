"""PagerDuty Events API v2: one incident per session, paged for high-risk sessions only.

``dedup_key`` is the session id, so every event of a session lands on one PagerDuty alert;
``trigger`` on open and escalation, ``resolve`` when the alert status is ``resolved``. Which
sessions page is routing's business (``min_level: high`` in the routes file). PagerDuty answers
202 ``{"status": "success", "dedup_key": ...}``; 400 is permanent, 429 and 5xx are retried.
"""

from __future__ import annotations

from typing import Any

import orjson

from touchstone.contracts import Level
from touchstone.sinks.base import IncidentSink
from touchstone.sinks.http import Transport, check_response, post
from touchstone.sinks.incidents import Step
from touchstone.sinks.render import (
    MODALITY_NAMES,
    check_link_template,
    iso_time,
    reason_text,
    siem_link,
    summary,
    top_reasons,
)
from touchstone.sinks.secrets import Secret

__all__ = ["EVENTS_URL", "PD_SEVERITY", "pagerduty_event", "PagerDutySink"]

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
PD_SEVERITY = {
    Level.CRITICAL: "critical",
    Level.HIGH: "error",
    Level.MEDIUM: "warning",
    Level.LOW: "info",
    Level.NONE: "info",
}
_SUMMARY_MAX = 1024  # PagerDuty truncates beyond this


def pagerduty_event(
    step: Step,
    routing_key: str,
    *,
    component: str = "touchstone",
    group: str | None = None,
    link_template: str | None = None,
) -> dict[str, Any]:
    """The Events API v2 body of one incident step."""
    alert = step.alert
    if step.action == "resolve":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": alert.session_id}
    text = summary(alert)
    payload: dict[str, Any] = {
        "summary": text if len(text) <= _SUMMARY_MAX else text[: _SUMMARY_MAX - 1] + "…",
        "source": alert.host,
        "severity": PD_SEVERITY[alert.level],
        "timestamp": iso_time(alert.event_time),
        "component": component,
        "class": f"behavioural authentication ({MODALITY_NAMES.get(alert.modality, alert.modality)})",
        "custom_details": {
            "user": alert.user,
            "host": alert.host,
            "session_id": alert.session_id,
            "risk": alert.risk,
            "level": alert.level.label,
            "modality": alert.modality,
            "session_age_s": alert.session_age_s,
            "windows_seen": alert.windows_seen,
            "why": [reason_text(r) for r in top_reasons(alert)],
            "scores": dict(alert.scores),
            "alert_id": alert.alert_id,
            "model_version": alert.model_version,
            "alerts_in_update": step.coalesced,
            "previous_level": step.previous.label if step.previous is not None else None,
        },
    }
    if group:
        payload["group"] = group
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": alert.session_id,
        "payload": payload,
        "client": "Touchstone",
    }
    if link_template:
        link = siem_link(link_template, alert)
        event["client_url"] = link
        event["links"] = [{"href": link, "text": "Session in the SIEM"}]
    return event


class PagerDutySink(IncidentSink):
    kind = "pagerduty"

    def __init__(
        self,
        name: str,
        *,
        routing_key: Secret,
        url: str = EVENTS_URL,
        component: str = "touchstone",
        group: str | None = None,
        link_template: str | None = None,
        transport: Transport = post,
        **kwargs: Any,
    ) -> None:
        if link_template:
            check_link_template(link_template)
        super().__init__(name, **kwargs)
        self._routing_key = routing_key
        self.url = url
        self.component = component
        self.group = group
        self.link_template = link_template
        self._transport = transport

    def send_step(self, step: Step, timeout: float) -> None:
        event = pagerduty_event(
            step, self._routing_key.reveal(), component=self.component, group=self.group,
            link_template=self.link_template,
        )  # fmt: skip
        check_response(self._transport(self.url, orjson.dumps(event), {}, timeout), ok=(200, 202))
