"""Topic administration with confluent-kafka: create topics, wait for their leaders, measure lag."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, TopicMetadata

from touchstone.config import Settings
from touchstone.errors import BrokerError
from touchstone.kafka.broker import admin_client, quiet_logger

__all__ = ["ensure_topics", "wait_for_topics", "consumer_lag"]

log = logging.getLogger(__name__)


def _existing(admin: AdminClient, timeout: float) -> set[str]:
    try:
        return set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise BrokerError(f"could not list topics: {exc}") from exc


def _create(admin: AdminClient, wanted: list[NewTopic], timeout: float) -> list[str]:
    created: list[str] = []
    failures: list[str] = []
    futures = admin.create_topics(wanted, operation_timeout=timeout, request_timeout=timeout)
    for name, future in futures.items():  # each on its own: one failure must not hide the others
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue  # someone created it concurrently: that is what we wanted
            failures.append(f"{name}: {exc}")
    if failures:
        raise BrokerError("could not create topic(s): " + "; ".join(failures))
    return created


def ensure_topics(
    settings: Settings,
    topics: Iterable[str] | None = None,
    partitions: int | None = None,
    *,
    timeout: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet (default: ``settings.all_topics()``).

    New topics get ``partitions`` (default ``settings.partitions``) and ``settings.replication``.
    Existing topics are left as they are, whatever their partition count. Idempotent; waits until
    every topic has a leader for each partition. Returns the names it created.
    """
    names = list(dict.fromkeys(settings.all_topics() if topics is None else topics))
    count = settings.partitions if partitions is None else partitions
    admin = admin_client(settings.bootstrap)
    missing = [name for name in names if name not in _existing(admin, timeout)]
    created: list[str] = []
    if missing:
        wanted = [NewTopic(name, num_partitions=count, replication_factor=settings.replication) for name in missing]
        created = _create(admin, wanted, timeout)
        log.info("created topic(s) %s with %d partition(s)", ", ".join(created) or "-", count)
    wait_for_topics(settings.bootstrap, names, timeout=timeout)
    return created


def _ready(topic: TopicMetadata | None) -> bool:
    if topic is None or topic.error is not None or not topic.partitions:
        return False
    return all(p.leader >= 0 and p.error is None for p in topic.partitions.values())


def _not_ready(admin: AdminClient, topics: list[str]) -> list[str]:
    metadata = admin.list_topics(timeout=5.0)
    return [name for name in topics if not _ready(metadata.topics.get(name))]


def wait_for_topics(bootstrap: str, topics: Iterable[str], *, timeout: float = 30.0) -> None:
    """Block until every topic is in the metadata with a leader for each partition."""
    names = list(topics)
    admin = admin_client(bootstrap)
    deadline = time.monotonic() + timeout
    pending = names
    while time.monotonic() < deadline:
        try:
            pending = _not_ready(admin, names)
        except KafkaException as exc:
            log.debug("metadata request failed while waiting for topics: %s", exc)
        if not pending:
            return
        time.sleep(0.2)
    raise BrokerError(f"topic(s) not ready on {bootstrap} after {timeout:.0f}s: {', '.join(pending)}")


def _partitions(client: AdminClient | Consumer, topic: str, timeout: float) -> list[TopicPartition]:
    metadata = client.list_topics(topic=topic, timeout=timeout).topics.get(topic)
    if metadata is None or metadata.error is not None:
        raise BrokerError(f"topic {topic!r} not found: {metadata.error if metadata else 'no metadata'}")
    return [TopicPartition(topic, p) for p in sorted(metadata.partitions)]


def _lag(consumer: Consumer, topic: str, timeout: float) -> int:
    lag = 0
    for tp in consumer.committed(_partitions(consumer, topic, timeout), timeout=timeout):
        if tp.error is not None:
            raise KafkaException(tp.error)
        low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
        lag += max(0, high - (tp.offset if tp.offset >= 0 else low))
    return lag


# Transient while a fresh broker creates __consumer_offsets or elects leaders; librdkafka does
# not flag all of them retriable.
_TRANSIENT = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
}


def _retriable(exc: KafkaException) -> bool:
    error = exc.args[0] if exc.args else None
    return isinstance(error, KafkaError) and (error.retriable() or error.code() in _TRANSIENT)


def consumer_lag(bootstrap: str, group: str, topic: str, *, timeout: float = 10.0) -> int:
    """Messages of ``topic`` not yet committed by consumer ``group``, summed over partitions.

    A partition the group never committed counts from its earliest retained offset. Reads the
    committed offsets through a Consumer that never joins the group: AdminClient's
    list_consumer_group_offsets crashes the process (librdkafka segfault, confluent-kafka 2.16)
    when the group coordinator is not ready yet, e.g. on a fresh broker. Retries retriable errors
    such as NOT_COORDINATOR until ``timeout``.
    """
    config = {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    consumer = Consumer({**config, "logger": quiet_logger()})
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                return _lag(consumer, topic, timeout)
            except KafkaException as exc:
                if not _retriable(exc) or time.monotonic() > deadline:
                    raise BrokerError(f"could not measure lag of {group!r} on {topic!r}: {exc}") from exc
                time.sleep(0.2)
    finally:
        consumer.close()
