"""Prometheus metrics of one collector process, on a registry of its own.

A private :class:`~prometheus_client.CollectorRegistry` per :class:`CollectorMetrics` keeps several
collectors in one process (tests, replay next to capture) from colliding on metric names.
"""

from __future__ import annotations

import logging
import time
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

__all__ = ["EVENT_TYPES", "CollectorMetrics"]

log = logging.getLogger(__name__)

EVENT_TYPES = ("key_press", "key_release", "mouse_move", "mouse_press", "mouse_release", "mouse_scroll")


class CollectorMetrics:
    """Counters and gauges the collector updates; read them back with :meth:`value` in tests."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events_captured = Counter(
            "touchstone_collector_events_captured", "Input events captured, by type.", ["type"], registry=r
        )
        self.listener_dropped = Counter(
            "touchstone_collector_listener_dropped",
            "Input events dropped because the listener queue was full (should stay 0).",
            registry=r,
        )
        self.batches_built = Counter(
            "touchstone_collector_batches_built",
            "Raw batches built, by kind (data, heartbeat, end).",
            ["kind"],
            registry=r,
        )
        self.batches_sent = Counter(
            "touchstone_collector_batches_sent", "Raw batches acknowledged by Kafka, by topic.", ["topic"], registry=r
        )
        self.delivery_errors = Counter(
            "touchstone_collector_delivery_errors",
            "Failed deliveries reported by the producer, by error code.",
            ["code"],
            registry=r,
        )
        self.kafka_errors = Counter(
            "touchstone_collector_kafka_errors",
            "Client-level Kafka errors (broker unreachable, all brokers down...), by error code. Deliveries are "
            "retried in order meanwhile, so these, spool depth and the last delivery time show an outage.",
            ["code"],
            registry=r,
        )
        self.spool_depth = Gauge(
            "touchstone_collector_spool_depth", "Batches in the local spool not yet acknowledged.", registry=r
        )
        self.spool_bytes = Gauge(
            "touchstone_collector_spool_bytes", "Payload bytes in the local spool not yet acknowledged.", registry=r
        )
        self.spool_dropped = Counter(
            "touchstone_collector_spool_dropped",
            "Batches discarded, oldest first, because the spool reached its size bound.",
            registry=r,
        )
        self.last_delivery = Gauge(
            "touchstone_collector_last_delivery_timestamp_seconds",
            "Unix time of the last batch Kafka acknowledged (0 = none yet).",
            registry=r,
        )
        for kind in EVENT_TYPES:
            self.events_captured.labels(type=kind)  # expose zeros from the start

    def delivered(self, topic: str) -> None:
        self.batches_sent.labels(topic=topic).inc()
        self.last_delivery.set(time.time())

    def value(self, name: str, **labels: str) -> float:
        """Current value of a sample, 0.0 when it has not been observed yet."""
        found = self.registry.get_sample_value(name, labels or None)
        return 0.0 if found is None else float(found)

    def serve(self, port: int, addr: str = "127.0.0.1") -> WSGIServer:
        """Expose ``/metrics`` on ``addr:port`` from a daemon thread; ``shutdown()`` the returned server to stop."""
        server, _ = start_http_server(port, addr=addr, registry=self.registry)
        log.info("collector metrics on http://%s:%d/metrics", addr, port)
        return server
