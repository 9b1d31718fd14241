"""Local Apache Kafka for Touchstone: the broker's lifecycle and topic administration."""

from __future__ import annotations

from touchstone.kafka.broker import (
    DEFAULT_DATA_DIR,
    KAFKA_DIR,
    BrokerStatus,
    LocalBroker,
    free_port,
    is_reachable,
    kafka_version,
    resolve_jars,
)
from touchstone.kafka.topics import consumer_lag, ensure_topics, wait_for_topics

__all__ = [
    "DEFAULT_DATA_DIR",
    "KAFKA_DIR",
    "BrokerStatus",
    "LocalBroker",
    "consumer_lag",
    "ensure_topics",
    "free_port",
    "is_reachable",
    "kafka_version",
    "resolve_jars",
    "wait_for_topics",
]
