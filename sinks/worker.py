"""The sinks worker: a confluent-kafka consumer group on the alerts topic, at-least-once.

Each loop gathers up to ``worker.max_batch`` alerts for up to ``worker.batch_s`` seconds (the
burst window incident sinks coalesce over), hands every alert to the sinks its routes name,
flushes them, dead-letters what failed, and only then commits the batch's offsets. Auto-commit
and auto offset store are off, so nothing is committed that was not delivered or dead-lettered;
after a crash the uncommitted tail is read again and each sink skips the alert ids its durable
store already holds (:mod:`touchstone.sinks.store`) — a restart never double-pages.

If the dead-letter write itself fails the worker stops without committing: it is safer to
read the batch again after a restart than to lose an alert.

Fault injection (tests only): with ``TOUCHSTONE_SINKS_CRASH_AFTER_DELIVERY`` set, the first
batch that delivered something is not committed; ``kill`` (or ``1``) makes the worker SIGKILL
itself, ``pause`` makes it log ``fault injection: paused`` and wait to be killed.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from prometheus_client import start_http_server

from touchstone.config import Settings
from touchstone.contracts import Alert, decode_alert
from touchstone.errors import ContractError, DeliveryError
from touchstone.sinks.base import Outcome, Result, Sink
from touchstone.sinks.deadletter import dead_letter_record, encode_dead_letter
from touchstone.sinks.metrics import SinkMetrics
from touchstone.sinks.routing import BuildContext, RoutesConfig, build_sinks, load_routes
from touchstone.sinks.store import DeliveryStore, store_path
from touchstone.sinks.topic import KafkaTopicWriter, TopicWriter, make_producer

__all__ = ["CRASH_ENV", "Record", "BatchReport", "SinkWorker", "consumer_config", "run_sinks"]

log = logging.getLogger(__name__)

CRASH_ENV = "TOUCHSTONE_SINKS_CRASH_AFTER_DELIVERY"
DEAD_LETTER_TIMEOUT_S = 30.0
# Commit failures that only mean "this partition moved to another member": it re-reads the tail.
_REBALANCE_CODES = {
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError._NO_OFFSET,
}


class Record(Protocol):
    """What the worker reads of a consumed message (confluent_kafka.Message has it)."""

    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...


@dataclass
class BatchReport:
    alerts: int = 0
    invalid: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)  # outcome -> count over all sinks
    dead_lettered: int = 0

    @property
    def delivered(self) -> int:
        return self.outcomes.get(Outcome.DELIVERED.value, 0)

    def add(self, other: BatchReport) -> None:
        self.alerts += other.alerts
        self.invalid += other.invalid
        self.dead_lettered += other.dead_lettered
        for key, count in other.outcomes.items():
            self.outcomes[key] = self.outcomes.get(key, 0) + count


class SinkWorker:
    """One batch at a time: decode, route, deliver, dead-letter. Knows nothing of offsets."""

    def __init__(
        self,
        config: RoutesConfig,
        sinks: Mapping[str, Sink],
        *,
        dead_letter: TopicWriter,
        store: DeliveryStore,
        metrics: SinkMetrics,
    ) -> None:
        missing = {name for route in config.routes for name in route.sinks} - set(sinks)
        if missing:
            raise ValueError(f"routes name sinks that were not built: {sorted(missing)}")
        self.config = config
        self.sinks = dict(sinks)
        self.dead_letter = dead_letter
        self.store = store
        self.metrics = metrics

    def process(self, records: Sequence[Record]) -> BatchReport:
        """Deliver a batch; return once every routed sink delivered or dead-lettered each alert.

        Raises DeliveryError when a dead-letter write fails (the batch must not be committed).
        """
        report = BatchReport()
        used: set[str] = set()
        origin: dict[str, Record] = {}  # alert id -> the message it came in, for dead-letter records
        for record in records:
            alert = self._decode(record, report)
            if alert is None:
                continue
            origin.setdefault(alert.alert_id, record)
            report.alerts += 1
            targets = self.config.targets(alert)
            if not targets:
                log.debug("alert %s matches no route", alert.alert_id)
            for name in targets:
                self.sinks[name].add(alert)
                used.add(name)
        try:
            for name in sorted(used):
                for result in self.sinks[name].flush():
                    report.outcomes[result.outcome.value] = report.outcomes.get(result.outcome.value, 0) + 1
                    if result.outcome is Outcome.FAILED:
                        self._dead_letter(self.sinks[name], result, origin[result.alert.alert_id])
                        report.dead_lettered += 1
        finally:
            # An abandoned batch is read again from Kafka; nothing of it may linger in a sink.
            for name in used:
                self.sinks[name].discard_pending()
        return report

    def _decode(self, record: Record, report: BatchReport) -> Alert | None:
        payload = record.value()
        try:
            if payload is None:
                raise ContractError("empty", "message has no value")
            alert = decode_alert(payload)
        except ContractError as exc:
            report.invalid += 1
            self.metrics.consumed.labels("invalid").inc()
            log.warning("undecodable alert at %s[%s]@%s: %s", record.topic(), record.partition(), record.offset(), exc)
            entry = dead_letter_record(record, reason=exc.reason, detail=exc.detail)
            self.dead_letter.write(encode_dead_letter(entry), key=record.key(), timeout=DEAD_LETTER_TIMEOUT_S)
            return None
        self.metrics.consumed.labels("alert").inc()
        return alert

    def _dead_letter(self, sink: Sink, result: Result, record: Record) -> None:
        error = result.error
        entry = dead_letter_record(
            record, reason=error.reason if error else "unknown", detail=str(error) if error else "unknown",
            sink=sink.name, sink_type=sink.kind, attempts=result.attempts, alert_id=result.alert.alert_id,
        )  # fmt: skip
        self.dead_letter.write(encode_dead_letter(entry), key=record.key(), timeout=DEAD_LETTER_TIMEOUT_S)
        self.store.mark(sink.name, [result.alert.alert_id], "dead_lettered")
        self.metrics.dead_lettered.labels(sink.name, sink.kind).inc()
        log.error("alert %s dead-lettered for sink %s: %s", result.alert.alert_id, sink.name, error)


# --- the Kafka loop ----------------------------------------------------------------------------------


def consumer_config(settings: Settings, config: RoutesConfig, **overrides: Any) -> dict[str, Any]:
    opts = config.worker
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap,
        "group.id": opts.group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": opts.session_timeout_ms,
        "logger": logging.getLogger("touchstone.sinks.librdkafka"),
    }
    if opts.instance_id:
        conf["group.instance.id"] = opts.instance_id
    conf.update(overrides)
    return conf


def _commit(consumer: Consumer, records: Sequence[Record]) -> None:
    ends: dict[tuple[str, int], int] = {}
    for record in records:
        key = (record.topic() or "", record.partition() or 0)
        ends[key] = max(ends.get(key, -1), (record.offset() or 0) + 1)
    offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in ends.items()]
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError) and error.code() in _REBALANCE_CODES:
            log.warning("commit lost to a rebalance (%s); the new owner re-reads and skips what was sent", error)
            return
        raise


def _fault_mode() -> str:
    mode = os.environ.get(CRASH_ENV, "").strip().lower()
    if mode in {"", "0", "false", "no", "off"}:
        return ""
    if mode not in {"1", "kill", "pause"}:
        log.warning("ignoring %s=%r: use kill or pause", CRASH_ENV, mode)
        return ""
    log.warning("fault injection armed: %s=%s", CRASH_ENV, mode)
    return mode


def _inject_fault(mode: str) -> None:
    if mode == "pause":
        log.critical("fault injection: paused after delivery, before commit (%s=pause)", CRASH_ENV)
        while True:
            time.sleep(3600)
    log.critical("fault injection: killing the worker after delivery, before commit (%s)", CRASH_ENV)
    logging.shutdown()
    os.kill(os.getpid(), signal.SIGKILL)


def _on_assign(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
    log.info("assigned %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing")


def run_sinks(
    settings: Settings,
    routes_config: RoutesConfig | str | Path | Mapping[str, Any],
    *,
    stop_event: threading.Event | None = None,
    dead_letter: TopicWriter | None = None,
    metrics: SinkMetrics | None = None,
    consumer_overrides: Mapping[str, Any] | None = None,
    create_topics: bool = True,
) -> BatchReport:
    """Run the sinks until ``stop_event`` is set; return the totals.

    ``routes_config`` is a loaded :class:`RoutesConfig`, a routes file, or its mapping. The
    dead-letter destination defaults to ``Settings.topic_dead_letter``.
    """
    config = routes_config if isinstance(routes_config, RoutesConfig) else load_routes(routes_config)
    stop = stop_event or threading.Event()
    metrics = metrics or SinkMetrics.default()
    fault = _fault_mode()
    if create_topics:
        from touchstone.kafka.topics import ensure_topics  # the broker admin is only needed here

        ensure_topics(settings, topics=[settings.topic_alerts, settings.topic_siem, settings.topic_dead_letter])
    if settings.metrics_port:
        start_http_server(settings.metrics_port, registry=metrics.registry)
    opts = config.worker
    store = DeliveryStore(store_path(settings), ttl_s=opts.dedup_ttl_s, max_entries=opts.dedup_max_entries)
    producer = make_producer(settings.bootstrap)
    writers: dict[str, KafkaTopicWriter] = {}

    def writer_for(topic: str) -> KafkaTopicWriter:
        return writers.setdefault(topic, KafkaTopicWriter(producer, topic))

    sinks = build_sinks(config, BuildContext(store, metrics, writer_for, settings.topic_siem))
    worker = SinkWorker(
        config, sinks, dead_letter=dead_letter or writer_for(settings.topic_dead_letter), store=store, metrics=metrics
    )
    consumer = Consumer(consumer_config(settings, config, **dict(consumer_overrides or {})))
    totals = BatchReport()
    log.info(
        "sinks worker: group %s on %s, sinks %s, store %s",
        opts.group_id, settings.topic_alerts, ", ".join(f"{n} ({s.kind})" for n, s in sinks.items()), store.path,
    )  # fmt: skip
    try:
        consumer.subscribe([settings.topic_alerts], on_assign=_on_assign)
        while not stop.is_set():
            messages = consumer.consume(num_messages=opts.max_batch, timeout=opts.batch_s)
            records = []
            for message in messages:
                error = message.error()
                if error is None:
                    records.append(message)
                elif error.fatal():
                    raise KafkaException(error)
                else:
                    log.warning("consumer: %s", error)
            if not records:
                continue
            report = worker.process(records)
            totals.add(report)
            if fault and report.delivered:
                _inject_fault(fault)
            _commit(consumer, records)
    except DeliveryError:
        log.critical("a dead-letter write failed; stopping without committing the batch")
        raise
    finally:
        consumer.close()
        producer.flush(10.0)
        for sink in sinks.values():
            sink.close()
        store.close()
    return totals
