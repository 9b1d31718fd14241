"""Alert delivery: SIEM topic, Slack, PagerDuty, webhooks, JSONL.

Every sink takes the normalised :class:`touchstone.contracts.Alert` only. Routing is data (a
routes file, :func:`load_routes`); the worker (:func:`run_sinks`, ``touchstone sinks``) reads
the alerts topic at-least-once and each sink is idempotent by alert id. See ``docs/sinks.md``.
"""

from touchstone.sinks.base import AlertSink, IncidentSink, Outcome, Result, Sink
from touchstone.sinks.delivery import CircuitBreaker, Delivery, DeliveryFailed, DeliveryPolicy, RateLimited
from touchstone.sinks.routing import SINK_TYPES, Route, RoutesConfig, load_routes
from touchstone.sinks.secrets import Secret
from touchstone.sinks.store import DeliveryStore
from touchstone.sinks.worker import SinkWorker, run_sinks

__all__ = [
    "SINK_TYPES",
    "AlertSink",
    "CircuitBreaker",
    "Delivery",
    "DeliveryFailed",
    "DeliveryPolicy",
    "DeliveryStore",
    "IncidentSink",
    "Outcome",
    "RateLimited",
    "Result",
    "Route",
    "RoutesConfig",
    "Secret",
    "Sink",
    "SinkWorker",
    "load_routes",
    "run_sinks",
]
