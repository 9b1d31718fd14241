"""Text shared by the payload builders: times, durations, the one-line summary, the reasons."""

from __future__ import annotations

import math
import string
import urllib.parse
from datetime import UTC, datetime

from touchstone.contracts import Alert, Reason

__all__ = [
    "MODALITY_NAMES",
    "iso_time",
    "format_duration",
    "top_reasons",
    "reason_detail",
    "reason_text",
    "summary",
    "rule_id",
    "rule_name",
    "LINK_FIELDS",
    "check_link_template",
    "siem_link",
]

LINK_FIELDS = ("alert_id", "session_id", "user", "host")
MODALITY_NAMES = {
    "keys": "keystroke dynamics",
    "mouse": "mouse dynamics",
    "fused": "keystroke and mouse dynamics",
}


def iso_time(epoch_ms: float) -> str:
    """RFC 3339 UTC with milliseconds.

    >>> iso_time(1767225600123.0)
    '2026-01-01T00:00:00.123Z'
    """
    moment = datetime.fromtimestamp(epoch_ms / 1000.0, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def format_duration(seconds: float) -> str:
    """A short human duration.

    >>> [format_duration(s) for s in (0, 42.4, 750, 3725, 90061)]
    ['0s', '42s', '12m 30s', '1h 02m', '1d 01h']
    """
    total = int(max(seconds, 0.0))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def top_reasons(alert: Alert, limit: int = 5) -> tuple[Reason, ...]:
    """The reasons that deviated most (largest absolute robust z first)."""
    return tuple(sorted(alert.reasons, key=lambda r: -abs(r.deviation))[:limit])


def _num(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else str(value)


def reason_detail(reason: Reason) -> str:
    """``212 vs typical 95 (+4.1σ)``"""
    return f"{_num(reason.value)} vs typical {_num(reason.expected)} ({reason.deviation:+.1f}σ)"


def reason_text(reason: Reason) -> str:
    """``hold_mean 212 vs typical 95 (+4.1σ)``"""
    return f"{reason.feature} {reason_detail(reason)}"


def rule_id(alert: Alert) -> str:
    return f"touchstone-{alert.modality}"


def rule_name(alert: Alert) -> str:
    return f"Touchstone: {MODALITY_NAMES.get(alert.modality, alert.modality)} do not match the logged-in agent"


def summary(alert: Alert) -> str:
    """One line a person can act on."""
    if alert.status == "resolved":
        head = f"Resolved: session {alert.session_id} of {alert.user} on {alert.host}"
        return f"{head} (risk now {alert.risk:.0f}/100)"
    what = MODALITY_NAMES.get(alert.modality, alert.modality)
    head = (
        f"{alert.level.label.capitalize()} risk {alert.risk:.0f}/100: the {what} in session {alert.session_id} "
        f"on {alert.host} do not match {alert.user}"
    )
    reasons = top_reasons(alert, 3)
    if reasons:
        head += "; most deviant: " + ", ".join(reason_text(r) for r in reasons)
    return head


def check_link_template(template: str) -> None:
    """Raise ValueError unless ``template`` only uses ``{alert_id}``, ``{session_id}``, ``{user}``, ``{host}``."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ValueError(f"bad link template: {exc}") from None
    unknown = names - set(LINK_FIELDS)
    if unknown:
        allowed = ", ".join("{" + name + "}" for name in LINK_FIELDS)
        raise ValueError(f"unknown placeholder(s) {sorted(unknown)}; use {allowed}")


def siem_link(template: str, alert: Alert) -> str:
    """Fill a link template with the alert's URL-quoted identifiers.

    >>> from touchstone.sinks.testing import make_alert
    >>> siem_link("https://siem.example/s?q=session:{session_id}&u={user}", make_alert(user="a b"))
    'https://siem.example/s?q=session:s1&u=a%20b'
    """
    values = {name: urllib.parse.quote(str(getattr(alert, name)), safe="") for name in LINK_FIELDS}
    return template.format_map(values)
