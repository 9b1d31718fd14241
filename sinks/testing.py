"""Synthetic alerts for tests, doctests and the demo (never used on the delivery path)."""

from __future__ import annotations

import dataclasses
from typing import Any

from touchstone.contracts import Alert, Level, Reason

__all__ = ["make_alert", "alert_sequence"]

BASE_TIME_MS = 1_767_225_600_000.0  # 2026-01-01T00:00:00Z

_REASONS = (
    Reason("hold_mean", 212.0, 95.0, 4.1),
    Reason("flight_p90", 380.0, 240.0, 2.7),
    Reason("digraph_th_ms", 41.0, 88.0, -3.3),
)


def make_alert(**changes: Any) -> Alert:
    """An alert with plausible values; keyword arguments replace fields.

    >>> make_alert(level=Level.HIGH).level.label
    'high'
    """
    base = Alert(
        alert_id="alert-s1-high-1",
        created_at=BASE_TIME_MS + 1500.0,
        user="alice",
        host="ws-12",
        session_id="s1",
        risk=82.0,
        level=Level.HIGH,
        modality="keys",
        windows_seen=14,
        session_age_s=750.0,
        event_time=BASE_TIME_MS,
        window_id="s1:keys:14",
        model_version="test-1",
        reasons=_REASONS,
        scores={"keys": 0.91, "fused": 0.88},
    )
    return dataclasses.replace(base, **changes)


def alert_sequence(sessions: int, per_session: int, *, start_ms: float = BASE_TIME_MS) -> list[Alert]:
    """A simulated run: per session, alerts climbing from low to critical, then a resolve that
    carries the episode's peak level (as the detector engine emits it).

    >>> [a.status for a in alert_sequence(1, 3)]
    ['open', 'update', 'update', 'resolved']
    """
    alerts: list[Alert] = []
    levels = [Level.LOW, Level.MEDIUM, Level.HIGH, Level.CRITICAL]
    for s in range(sessions):
        session = f"sess-{s}"
        for i in range(per_session):
            level = levels[min(i * len(levels) // max(per_session, 1), len(levels) - 1)]
            t = start_ms + (s * 1000 + i) * 5000.0
            alerts.append(
                make_alert(
                    alert_id=f"{session}-{i}",
                    session_id=session,
                    user=f"agent{s % 7}",
                    host=f"ws-{s:03d}",
                    level=level,
                    risk=min(25.0 + 20.0 * int(level) + i % 5, 100.0),
                    status="open" if i == 0 else "update",
                    modality=("keys", "mouse", "fused")[s % 3],
                    windows_seen=i + 1,
                    session_age_s=60.0 + 5.0 * i,
                    event_time=t,
                    created_at=t + 250.0,
                    window_id=f"{session}:w{i}",
                )
            )
        last = alerts[-1]
        alerts.append(
            dataclasses.replace(
                last, alert_id=f"{session}-resolved", status="resolved", risk=5.0,
                event_time=last.event_time + 5000.0, created_at=last.created_at + 5000.0,
            )
        )  # fmt: skip
    return alerts
