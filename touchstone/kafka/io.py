"""Small confluent-kafka helpers shared by the demo, the benchmarks and the integration tests."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

from touchstone.contracts import RawBatch, encode_raw

__all__ = ["Record", "consume", "make_producer", "produce_batches", "produce_values"]

log = logging.getLogger(__name__)


def make_producer(bootstrap: str, **overrides: object) -> Producer:
    config: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        # Same key → partition mapping as the Java client and aiokafka (Faust), so a session's
        # control messages from a worker land where its batches do.
        "partitioner": "murmur2_random",
    }
    config.update(overrides)
    return Producer(config)


def _check(err: KafkaError | None, _msg: object) -> None:
    if err is not None:
        raise KafkaException(err)


def produce_values(producer: Producer, topic: str, items: Iterable[tuple[bytes | None, bytes]]) -> int:
    """Produce (key, value) pairs, waiting on a full local queue instead of failing; returns the count."""
    count = 0
    for key, value in items:
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=_check)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        count += 1
    return count


def produce_batches(producer: Producer, topic: str, batches: Iterable[RawBatch]) -> int:
    return produce_values(producer, topic, ((b.session_id.encode(), encode_raw(b)) for b in batches))


@dataclass(frozen=True, slots=True)
class Record:
    key: bytes | None
    value: bytes
    partition: int
    offset: int
    timestamp_ms: int


def consume(
    bootstrap: str,
    topics: list[str],
    *,
    until: Callable[[list[Record]], bool] | None = None,
    timeout_s: float = 60.0,
    idle_s: float | None = None,
    group: str | None = None,
    abort: Callable[[], bool] | None = None,
) -> list[Record]:
    """Read from the beginning until ``until(records)`` holds, ``idle_s`` passes without news, or timeout.

    ``abort`` is checked every poll: a reader waiting on a process that died stops at once.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group or f"touchstone-reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    records: list[Record] = []
    try:
        consumer.subscribe(topics)
        deadline = time.monotonic() + timeout_s
        last_news = time.monotonic()
        while time.monotonic() < deadline:
            for msg in _poll(consumer):
                records.append(
                    Record(msg.key(), msg.value(), msg.partition(), msg.offset(), msg.timestamp()[1])
                )
                last_news = time.monotonic()
            if until is not None and until(records):
                break
            if abort is not None and abort():
                break
            if idle_s is not None and records and time.monotonic() - last_news > idle_s:
                break
    finally:
        consumer.close()
    return records


def _poll(consumer: Consumer) -> Iterator[object]:
    for msg in consumer.consume(num_messages=500, timeout=0.2):
        err = msg.error()
        if err is None:
            yield msg
        elif err.code() != KafkaError._PARTITION_EOF:
            if err.fatal():
                raise KafkaException(err)
            log.warning("consumer error: %s", err)
