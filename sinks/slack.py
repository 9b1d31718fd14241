"""Slack incoming webhook: one Block Kit message per incident step (open, escalate, resolve).

Incoming webhooks cannot edit a message they posted, so "one message with updates" means: a
burst of alerts of one session becomes one message (:mod:`touchstone.sinks.incidents`), and the
channel hears again only when the level rises or the incident resolves; each follow-up says
what changed and how many alerts it stands for.

Slack answers 200 ``ok``; 429 carries ``Retry-After`` (honoured by the delivery policy);
400 ``invalid_payload``, 403, 404 and 410 are permanent (the alert is dead-lettered at once).
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
    format_duration,
    reason_detail,
    siem_link,
    summary,
    top_reasons,
)
from touchstone.sinks.secrets import Secret

__all__ = ["slack_message", "SlackSink"]

_LEVEL_EMOJI = {
    Level.NONE: ":white_circle:",
    Level.LOW: ":large_blue_circle:",
    Level.MEDIUM: ":large_yellow_circle:",
    Level.HIGH: ":large_orange_circle:",
    Level.CRITICAL: ":red_circle:",
}
_HEADER_MAX = 150  # Slack's limit for a header block's text


def _escape(text: str) -> str:
    # Slack's mrkdwn control characters; everything else is shown as typed.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: str) -> str:
    return "`" + _escape(text).replace("`", "'") + "`"


def _header(step: Step) -> str:
    alert = step.alert
    if step.action == "resolve":
        text = f":white_check_mark: Resolved: {alert.user} on {alert.host}"
    elif step.action == "escalate":
        text = f":arrow_up: Escalated to {alert.level.label}: {alert.user} on {alert.host}"
    else:
        level = alert.level.label.capitalize()
        text = f"{_LEVEL_EMOJI[alert.level]} {level} risk: {alert.user} may not be at {alert.host}"
    return text if len(text) <= _HEADER_MAX else text[: _HEADER_MAX - 1] + "…"


def _context(step: Step, link: str | None) -> str:
    alert = step.alert
    parts = [f"alert {_code(alert.alert_id)}", f"model {_code(alert.model_version)}"]
    if step.previous is not None:
        parts.append(f"was {step.previous.label}")
    if step.coalesced > 1:
        parts.append(f"{step.coalesced} alerts in this update")
    if link:
        parts.append(f"<{link}|Open in SIEM>")
    return " · ".join(parts)


def slack_message(step: Step, *, link_template: str | None = None) -> dict[str, Any]:
    """The Block Kit payload of one incident step."""
    alert = step.alert
    link = siem_link(link_template, alert) if link_template else None
    fields = [
        ("User", _escape(alert.user)),
        ("Host", _escape(alert.host)),
        ("Session", _code(alert.session_id)),
        ("Risk", f"{alert.risk:.0f}/100 · {alert.level.label}"),
        ("Signal", _escape(MODALITY_NAMES.get(alert.modality, alert.modality))),
        ("Since session start", format_duration(alert.session_age_s)),
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _header(step), "emoji": True}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in fields]},
    ]
    reasons = top_reasons(alert)
    if reasons and step.action != "resolve":
        lines = "\n".join(f"• {_code(r.feature)} {_escape(reason_detail(r))}" for r in reasons)
        why = f"*Why* (most deviant features)\n{lines}"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": why}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _context(step, link)}]})
    return {"text": summary(alert), "blocks": blocks}


class SlackSink(IncidentSink):
    kind = "slack"

    def __init__(
        self,
        name: str,
        *,
        url: Secret,
        link_template: str | None = None,
        transport: Transport = post,
        **kwargs: Any,
    ) -> None:
        if link_template:
            check_link_template(link_template)
        super().__init__(name, **kwargs)
        self._url = url
        self.link_template = link_template
        self._transport = transport

    def send_step(self, step: Step, timeout: float) -> None:
        body = orjson.dumps(slack_message(step, link_template=self.link_template))
        check_response(self._transport(self._url.reveal(), body, {}, timeout), ok=(200,))
