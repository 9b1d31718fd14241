"""Prometheus metrics of the sinks, every per-sink series labelled ``sink`` (configured name) and
``type`` (slack, pagerduty, ...), so ok and error counts of one output line up on a dashboard.

Per sink, ``alerts_in = delivered + skipped + failed``; ``dead_lettered`` counts the failed alerts
written to the dead-letter topic (equal to ``failed`` unless that write itself failed).
"""

from __future__ import annotations

import threading

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["SinkMetrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_AGE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
_SINK = ("sink", "type")


class SinkMetrics:
    """The sinks' metrics on one registry (a private one unless given)."""

    _default: SinkMetrics | None = None
    _default_lock = threading.Lock()

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        self.consumed = Counter(
            "touchstone_sinks_messages", "Messages read from the alerts topic, by outcome (alert, invalid).",
            ["outcome"], registry=reg,
        )  # fmt: skip
        self.alerts_in = Counter("touchstone_sink_alerts_in", "Alerts routed to a sink.", _SINK, registry=reg)
        self.delivered = Counter("touchstone_sink_delivered", "Alerts a sink delivered itself.", _SINK, registry=reg)
        self.skipped = Counter(
            "touchstone_sink_skipped",
            "Alerts a sink did not send: duplicate (already delivered) or coalesced (incident already told).",
            [*_SINK, "reason"],
            registry=reg,
        )
        self.retried = Counter(
            "touchstone_sink_retried", "Retry attempts (attempts after the first).", _SINK, registry=reg
        )
        self.failed = Counter(
            "touchstone_sink_failed", "Alerts a sink gave up on, by reason.", [*_SINK, "reason"], registry=reg
        )
        self.dead_lettered = Counter(
            "touchstone_sink_dead_lettered", "Alerts written to the dead-letter topic.", _SINK, registry=reg
        )
        self.requests = Counter(
            "touchstone_sink_requests", "Send attempts by status (ok, error).", [*_SINK, "status"], registry=reg
        )
        self.delivery_seconds = Histogram(
            "touchstone_sink_delivery_seconds", "Time to deliver, from the first attempt to success, retries included.",
            _SINK, buckets=_LATENCY_BUCKETS, registry=reg,
        )  # fmt: skip
        self.alert_age_seconds = Histogram(
            "touchstone_sink_alert_age_seconds", "Alert age at delivery (now - created_at).",
            _SINK, buckets=_AGE_BUCKETS, registry=reg,
        )  # fmt: skip
        self.breaker_state = Gauge(
            "touchstone_sink_circuit_state", "Circuit breaker: 0 closed, 1 half-open, 2 open.", _SINK, registry=reg
        )

    @classmethod
    def default(cls) -> SinkMetrics:
        """The process-wide instance on prometheus_client's global REGISTRY (created once)."""
        with cls._default_lock:
            if cls._default is None:
                cls._default = cls(REGISTRY)
            return cls._default

    def value(self, name: str, **labels: str) -> float:
        """Current value of one sample (0 when never set); for tests and the CLI summary."""
        sample = self.registry.get_sample_value(name, labels)
        return 0.0 if sample is None else sample
