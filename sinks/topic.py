"""Writing to a Kafka topic and waiting for the broker's acknowledgement (SIEM and dead-letter topics).

A write returns only once the broker acknowledged the record (``acks=all``, idempotent
producer), so a sink can report it delivered before the worker commits its input offsets.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from confluent_kafka import KafkaError, Message, Producer

from touchstone.errors import DeliveryError

__all__ = ["TopicWriter", "KafkaTopicWriter", "MemoryTopicWriter", "make_producer"]

log = logging.getLogger(__name__)


class TopicWriter(Protocol):
    topic: str

    def write(self, value: bytes, *, key: bytes | None, timeout: float) -> None:
        """Write one record, raising DeliveryError unless the destination acknowledged it."""


def make_producer(bootstrap: str, **overrides: object) -> Producer:
    """A producer for acknowledged single writes: idempotent, acks from all in-sync replicas."""
    config: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 0,  # writes wait for their ack one by one: batching delay would only add latency
        "message.timeout.ms": 30_000,
        "logger": logging.getLogger("touchstone.sinks.librdkafka"),
    }
    config.update(overrides)
    return Producer(config)


class KafkaTopicWriter:
    """Acknowledged writes of single records to one topic through a shared producer."""

    def __init__(self, producer: Producer, topic: str) -> None:
        self.producer = producer
        self.topic = topic

    def write(self, value: bytes, *, key: bytes | None, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        report: list[KafkaError | None] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            report.append(err)

        while True:
            try:
                self.producer.produce(self.topic, value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:  # local queue full: serve callbacks to make room, within the timeout
                if time.monotonic() >= deadline:
                    raise DeliveryError(f"producer queue full writing to {self.topic}") from None
                self.producer.poll(0.05)
        while not report and time.monotonic() < deadline:
            self.producer.poll(min(0.05, max(deadline - time.monotonic(), 0.0)))
        if not report:
            # The record may still land later: at-least-once, a SIEM sees a duplicate at worst.
            raise DeliveryError(f"no acknowledgement from {self.topic} within {timeout:.1f}s")
        err = report[0]
        if err is not None:
            if err.fatal():
                raise DeliveryError(f"fatal producer error on {self.topic}: {err}", permanent=True)
            raise DeliveryError(f"write to {self.topic} failed: {err}", permanent=not err.retriable())


class MemoryTopicWriter:
    """An in-memory stand-in (tests, the one-shot CLI): records (key, value) pairs."""

    def __init__(self, topic: str = "memory") -> None:
        self.topic = topic
        self.records: list[tuple[bytes | None, bytes]] = []

    def write(self, value: bytes, *, key: bytes | None, timeout: float) -> None:
        self.records.append((key, value))
