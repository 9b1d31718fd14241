"""The sink contract: every output takes the normalised :class:`~touchstone.contracts.Alert` only.

A sink is a pure payload builder (a module-level function per output, tested without network)
plus a thin :meth:`Sink.send` that makes one attempt. The base class adds the rest, the same for
every output:

- idempotency by alert id: an alert this sink already settled is skipped (``duplicate``);
- the delivery discipline of :mod:`touchstone.sinks.delivery` around every send;
- ok/error metrics labelled with the sink's name and type.

The worker calls :meth:`Sink.add` per routed alert and :meth:`Sink.flush` before committing its
offsets; :meth:`Sink.deliver` does both for one alert. A :class:`Result` with outcome ``failed``
is the caller's to dead-letter: a sink never drops an alert silently.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from touchstone.contracts import Alert
from touchstone.sinks.delivery import Delivery, DeliveryFailed, DeliveryPolicy
from touchstone.sinks.incidents import Step, plan_steps
from touchstone.sinks.metrics import SinkMetrics
from touchstone.sinks.store import DeliveryStore

__all__ = ["Outcome", "Result", "Sink", "AlertSink", "IncidentSink"]

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    DELIVERED = "delivered"  # sent, and the receiver accepted it
    COALESCED = "coalesced"  # covered by another message about the same incident
    DUPLICATE = "duplicate"  # this sink settled the alert id before
    FAILED = "failed"  # delivery gave up: dead-letter it


@dataclass(frozen=True, slots=True)
class Result:
    sink: str
    alert: Alert
    outcome: Outcome
    attempts: int = 0
    error: DeliveryFailed | None = None


class Sink(ABC):
    """One configured output: :class:`AlertSink` (one send per alert) or :class:`IncidentSink`
    (one message per incident). Subclasses set ``kind``."""

    kind: ClassVar[str]

    def __init__(
        self,
        name: str,
        *,
        policy: DeliveryPolicy | None = None,
        store: DeliveryStore | None = None,
        metrics: SinkMetrics | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not name:
            raise ValueError("a sink needs a name")
        self.name = name
        self.metrics = metrics or SinkMetrics()
        self.store = store or DeliveryStore()
        self.delivery = Delivery(name, self.kind, policy, metrics=self.metrics, sleep=sleep)
        self._clock = clock
        self._pending: list[Alert] = []

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    # --- the contract ---

    def add(self, alert: Alert) -> None:
        self.metrics.alerts_in.labels(self.name, self.kind).inc()
        self._pending.append(alert)

    def flush(self) -> list[Result]:
        """Deliver everything added since the last flush; one Result per added alert."""
        pending, self._pending = self._pending, []
        fresh: list[Alert] = []
        results: list[Result] = []
        seen_now: set[str] = set()
        for alert in pending:
            if alert.alert_id in seen_now or self.store.seen(self.name, alert.alert_id):
                results.append(Result(self.name, alert, Outcome.DUPLICATE))
            else:
                seen_now.add(alert.alert_id)
                fresh.append(alert)
        if fresh:
            results.extend(self._deliver_fresh(fresh))
        for result in results:
            self._count(result)
        return results

    def deliver(self, alert: Alert) -> Result:
        """Add and flush one alert (other pending alerts are flushed too)."""
        self.add(alert)
        return [r for r in self.flush() if r.alert is alert][-1]

    def discard_pending(self) -> int:
        """Drop alerts added but not flushed (a batch abandoned before its commit); return how many."""
        dropped, self._pending = len(self._pending), []
        return dropped

    def close(self) -> None:  # noqa: B027 - optional hook, most sinks hold nothing
        """Release resources (files, connections). Pending alerts are not flushed."""

    # --- shared machinery ---

    @abstractmethod
    def _deliver_fresh(self, alerts: list[Alert]) -> list[Result]:
        """Deliver alerts this sink has not settled before; one Result each."""

    def _count(self, result: Result) -> None:
        labels = (self.name, self.kind)
        if result.outcome is Outcome.DELIVERED:
            self.metrics.delivered.labels(*labels).inc()
            age = self._clock() - result.alert.created_at / 1000.0
            self.metrics.alert_age_seconds.labels(*labels).observe(max(age, 0.0))
        elif result.outcome is Outcome.FAILED:
            reason = result.error.reason if result.error is not None else "unknown"
            self.metrics.failed.labels(*labels, reason).inc()
            log.error("sink %s gave up on alert %s: %s", self.name, result.alert.alert_id, result.error)
        else:
            self.metrics.skipped.labels(*labels, result.outcome.value).inc()


class AlertSink(Sink):
    """A sink that sends every alert on its own (SIEM topic, webhook, JSONL)."""

    @abstractmethod
    def send(self, alert: Alert, timeout: float) -> None:
        """Make one attempt to deliver ``alert``; raise DeliveryError on failure."""

    def _deliver_fresh(self, alerts: list[Alert]) -> list[Result]:
        results = []
        for alert in alerts:
            try:
                attempts = self.delivery.run(lambda timeout, alert=alert: self.send(alert, timeout))
            except DeliveryFailed as exc:
                results.append(Result(self.name, alert, Outcome.FAILED, exc.attempts, exc))
                continue
            self.store.mark(self.name, [alert.alert_id], Outcome.DELIVERED.value)
            results.append(Result(self.name, alert, Outcome.DELIVERED, attempts))
        return results


class IncidentSink(Sink):
    """A sink that tells people about incidents, not alerts: one thread of messages per session.

    Alerts of one flush are grouped per session and folded by
    :func:`~touchstone.sinks.incidents.plan_steps` against the stored incident state, so a burst
    becomes one message and the receiver hears again only when the level rises or the incident
    resolves. Subclasses implement :meth:`send_step`.
    """

    @abstractmethod
    def send_step(self, step: Step, timeout: float) -> None:
        """Make one attempt to send the message of ``step``."""

    def _deliver_fresh(self, alerts: list[Alert]) -> list[Result]:
        sessions: dict[str, list[Alert]] = {}
        for alert in alerts:
            sessions.setdefault(alert.session_id, []).append(alert)
        results: list[Result] = []
        for session_id, group in sessions.items():
            results.extend(self._deliver_session(session_id, group))
        return results

    def _deliver_session(self, session_id: str, group: list[Alert]) -> list[Result]:
        steps = plan_steps(group, self.store.incident(self.name, session_id), now=self._clock())
        shown: dict[str, int] = {}
        for step in steps:
            try:
                attempts = self.delivery.run(lambda timeout, step=step: self.send_step(step, timeout))
            except DeliveryFailed as exc:
                # Earlier steps reached the receiver and are stored; the group is dead-lettered so
                # a replay re-plans from the stored state and sends only what is still missing.
                return [Result(self.name, alert, Outcome.FAILED, exc.attempts, exc) for alert in group]
            self.store.save_incident(self.name, session_id, step.state_after)
            shown[step.alert.alert_id] = attempts
        results = [
            Result(self.name, alert, Outcome.DELIVERED, shown[alert.alert_id])
            if alert.alert_id in shown
            else Result(self.name, alert, Outcome.COALESCED)
            for alert in group
        ]
        for outcome in (Outcome.DELIVERED, Outcome.COALESCED):
            ids = [r.alert.alert_id for r in results if r.outcome is outcome]
            if ids:
                self.store.mark(self.name, ids, outcome.value)
        return results
