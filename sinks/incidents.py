"""Burst grouping for incident sinks (Slack, PagerDuty): one incident per session, told once.

:func:`plan_steps` folds a batch of one session's alerts into the few messages worth sending,
given what the sink already told its receiver (:class:`~touchstone.sinks.store.IncidentState`):

- ``open`` — the first alert of an incident (or the first after it was resolved);
- ``escalate`` — the level rose above the level last told;
- ``resolve`` — the incident ended (a ``resolved`` alert) after it was told.

Everything else (repeats and updates at or below the told level) is coalesced into the step
that covers it. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from touchstone.contracts import Alert, Level
from touchstone.sinks.store import IncidentState

__all__ = ["Step", "plan_steps"]


@dataclass(frozen=True, slots=True)
class Step:
    """One message to send about a session's incident."""

    action: str  # "open" | "escalate" | "resolve"
    alert: Alert  # the alert the message shows
    previous: Level | None  # level told before (escalate, resolve)
    coalesced: int  # alerts this message stands for, its own included
    state_after: IncidentState  # what the receiver knows once the step is delivered


def _episodes(alerts: Sequence[Alert]) -> list[tuple[list[Alert], Alert | None]]:
    """Split at resolved alerts: (alerts before the resolve, the resolve or None)."""
    out: list[tuple[list[Alert], Alert | None]] = []
    current: list[Alert] = []
    for alert in alerts:
        if alert.status == "resolved":
            out.append((current, alert))
            current = []
        else:
            current.append(alert)
    if current:
        out.append((current, None))
    return out


def plan_steps(alerts: Sequence[Alert], state: IncidentState | None, now: float) -> list[Step]:
    """Steps to send for ``alerts`` (one session, arrival order) given the receiver's ``state``.

    ``now`` (epoch seconds) stamps ``updated_at`` of the resulting states.

    >>> from touchstone.sinks.testing import make_alert
    >>> burst = [make_alert(level=Level.MEDIUM, alert_id=f"a{i}") for i in range(50)]
    >>> [(s.action, s.coalesced) for s in plan_steps(burst, None, now=0.0)]
    [('open', 50)]
    """
    steps: list[Step] = []
    told = state
    for active, resolve in _episodes(alerts):
        open_level = told.level if told is not None and not told.resolved else None
        pending = 0  # alerts since the last step, folded into the next one
        if active:
            # The highest level wins; among equals the latest, whose risk and reasons are freshest.
            top = max(alert.level for alert in active)
            peak = [alert for alert in active if alert.level == top][-1]
            pending = len(active)
            if told is None or open_level is None:
                told = IncidentState(peak.level, False, peak.created_at / 1000.0, now, 1)
                steps.append(Step("open", peak, None, pending, told))
                pending, open_level = 0, peak.level
            elif peak.level > open_level:
                told = IncidentState(peak.level, False, told.opened_at, now, told.messages + 1)
                steps.append(Step("escalate", peak, open_level, pending, told))
                pending, open_level = 0, peak.level
        if resolve is not None:
            pending += 1
            if told is not None and open_level is not None:
                told = IncidentState(told.level, True, told.opened_at, now, told.messages + 1)
                steps.append(Step("resolve", resolve, open_level, pending, told))
    return steps
