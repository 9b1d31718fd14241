"""Publishing raw batches to Kafka through the durable spool.

Every batch is first appended to the :class:`~touchstone.collectors.spool.Spool`; a pump then
hands spool rows to an idempotent confluent-kafka producer in row order, at most ``window`` of
them un-acknowledged at a time, and deletes each row when its delivery callback reports success.
So during an outage at most ``window`` batches sit in librdkafka's memory and the rest wait on
disk; on reconnect the spool drains in order, before anything newer (newer rows have larger ids).

Messages never time out inside the producer (``message.timeout.ms=0``): librdkafka keeps retrying
them in order across the outage, which avoids the duplicates a timed-out-then-resent batch would
cause. Errors that do come back are handled by kind: a fatal producer error is raised, a
malformed-message error drops that batch (logged, counted), anything else rewinds the pump to the
oldest unacknowledged row once nothing is in flight, after a back-off. The key is the session id,
so a session's batches stay ordered in one partition; ``(session_id, seq)`` lets the pipeline drop
the rare duplicate (a batch acknowledged by the broker whose acknowledgement was lost).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from touchstone.collectors.batcher import WireBatch
from touchstone.collectors.metrics import CollectorMetrics
from touchstone.collectors.spool import Spool, SpooledBatch
from touchstone.config import Settings

if TYPE_CHECKING:
    from touchstone.contracts import RawBatch

__all__ = ["DEFAULT_WINDOW", "producer_config", "Publisher"]

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 64
_STALL_WARN_S = 10.0
_REWIND_BACKOFF_S = 1.0
# Errors about the message itself: resending the same bytes can never succeed.
_POISON = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_MSG,
        KafkaError.RECORD_LIST_TOO_LARGE,
    }
)


class _RepeatFilter(logging.Filter):
    """Lets a librdkafka message through once per ``interval_s``: while a broker is down it repeats the
    same connection failure at every reconnect back-off."""

    def __init__(self, interval_s: float = 60.0) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        shape = re.sub(r"\d+", "#", record.getMessage())
        now = time.monotonic()
        if now - self._last.get(shape, -self.interval_s) < self.interval_s:
            return False
        if len(self._last) > 256:
            self._last.clear()
        self._last[shape] = now
        return True


_librdkafka_log = logging.getLogger("touchstone.collectors.librdkafka")
_librdkafka_log.addFilter(_RepeatFilter())


def producer_config(settings: Settings, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Producer settings for collectors: idempotent, acks=all, lz4 (cheapest CPU on the workstation).

    ``murmur2_random`` is librdkafka's Java-compatible partitioner: a session id lands in the
    partition the Java client, aiokafka and Faust would pick for it (librdkafka's default, CRC32-based
    ``consistent_random``, would not), so any client can compute where a session's batches live.
    """
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "partitioner": "murmur2_random",
        "compression.type": "lz4",
        "linger.ms": 20,
        "message.timeout.ms": 0,  # retry forever, in order; the spool bounds what is held
        "reconnect.backoff.max.ms": 5000,
        "client.id": "touchstone-collector",
        "logger": _librdkafka_log,
    }
    config.update(overrides or {})
    return config


def _encode(batch: WireBatch | RawBatch) -> bytes:
    if isinstance(batch, WireBatch):
        return batch.encode()
    # Replays hand over RawBatches; the contracts package (and numpy) is loaded only then.
    from touchstone.contracts import encode_raw

    return encode_raw(batch)


class Publisher:
    """Spool-backed, ordered, at-least-once publisher of raw batches (used from one thread)."""

    def __init__(
        self,
        settings: Settings,
        spool: Spool,
        *,
        metrics: CollectorMetrics | None = None,
        window: int = DEFAULT_WINDOW,
        producer_overrides: Mapping[str, Any] | None = None,
        producer: Producer | None = None,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self.settings = settings
        self.spool = spool
        self.metrics = metrics or CollectorMetrics()
        self.window = window
        self._fatal: KafkaError | None = None
        if producer is None:
            config = producer_config(settings, producer_overrides)
            config.setdefault("error_cb", self._on_client_error)
            producer = Producer(config)
        self._producer = producer
        self._cursor = 0  # highest spool id handed to the producer
        self._newest = spool.newest_id() or 0  # highest spool id written: nothing to read beyond it
        self._in_flight: dict[int, str] = {}
        self._rewind_at: float | None = None  # set after a retriable failure: when to resend
        self._last_ack = time.monotonic()
        self._stall_warned = False
        self._failing = False
        self.delivered = 0
        self.poisoned = 0
        self._dropped_counted = spool.dropped
        self._update_gauges()

    def topic_for(self, privacy: str) -> str:
        # Raw key names never share a topic with the privacy-preserving modes.
        return self.settings.topic_raw_full if privacy == "full" else self.settings.topic_raw

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    # --- input ---

    def submit(self, batch: WireBatch | RawBatch) -> int:
        """Spool one batch durably, then let the pump send it; returns its spool id."""
        row_id = self.spool.append(
            self.topic_for(batch.privacy),
            batch.session_id.encode(),
            _encode(batch),
            session_id=batch.session_id,
            seq=batch.seq,
            protect_through=self._cursor,
        )
        self._newest = row_id
        if self.spool.dropped > self._dropped_counted:
            self.metrics.spool_dropped.inc(self.spool.dropped - self._dropped_counted)
            self._dropped_counted = self.spool.dropped
        self._update_gauges()
        self.service()
        return row_id

    # --- pump ---

    def service(self, timeout: float = 0.0) -> None:
        """Serve delivery callbacks (waiting up to ``timeout`` s for one) and hand waiting spool rows
        to the producer; call often."""
        self._producer.poll(timeout)
        if self._fatal is not None:
            raise KafkaException(self._fatal)
        now = time.monotonic()
        if self._rewind_at is not None:
            if self._in_flight or now < self._rewind_at:
                return
            oldest = self.spool.oldest_id()
            self._cursor = 0 if oldest is None else oldest - 1
            self._rewind_at = None
            log.info("resending from spool row %s", oldest)
        self._pump()
        self._watch_stall(now)

    def _pump(self) -> None:
        room = self.window - len(self._in_flight)
        if room <= 0 or self._cursor >= self._newest:
            return
        for row in self.spool.read(self._cursor, room):
            if not self._produce(row):
                break
            self._cursor = row.id

    def _produce(self, row: SpooledBatch) -> bool:
        try:
            self._producer.produce(
                row.topic,
                value=row.value,
                key=row.key,
                on_delivery=lambda err, msg, row_id=row.id: self._on_delivery(row_id, err, msg),
            )
        except BufferError:
            # librdkafka's local queue is full: serve callbacks and try the rest on the next round.
            self._producer.poll(0.05)
            return False
        self._in_flight[row.id] = row.topic
        return True

    def _on_delivery(self, row_id: int, err: KafkaError | None, msg: Message) -> None:
        topic = self._in_flight.pop(row_id, msg.topic() or "")
        if err is not None:
            self._on_failure(row_id, err)
            return
        self.spool.delete(row_id)
        self.delivered += 1
        self.metrics.delivered(topic)
        self._last_ack = time.monotonic()
        if self._failing or self._stall_warned:
            log.info("Kafka delivery recovered; %d batches still in the spool", self.spool.depth)
        self._failing = False
        self._stall_warned = False
        self._update_gauges()

    def _on_client_error(self, err: KafkaError) -> None:
        # Served from poll() on the sender thread. With message.timeout.ms=0 an outage shows up here,
        # not as failed deliveries.
        self.metrics.kafka_errors.labels(code=err.name()).inc()
        if err.fatal():
            self._fatal = err  # raised from service(): the producer cannot go on (e.g. fenced idempotence)
            return
        _librdkafka_log.warning("Kafka client error: %s", err)

    def _on_failure(self, row_id: int, err: KafkaError) -> None:
        self.metrics.delivery_errors.labels(code=err.name()).inc()
        if err.fatal():
            raise KafkaException(err)
        if err.code() in _POISON:
            self.spool.delete(row_id)
            self.poisoned += 1
            self._update_gauges()
            log.error("Kafka refused spool row %d for good (%s); dropped it", row_id, err)
            return
        if not self._failing:
            log.warning("Kafka delivery failed (%s); batches stay in the spool and will be resent in order", err)
        self._failing = True
        if self._rewind_at is None:
            self._rewind_at = time.monotonic() + _REWIND_BACKOFF_S

    def _watch_stall(self, now: float) -> None:
        if self._in_flight and not self._stall_warned and now - self._last_ack > _STALL_WARN_S:
            self._stall_warned = True
            log.warning(
                "no acknowledgement from Kafka (%s) for %.0fs; %d batches in the spool",
                self.settings.bootstrap,
                now - self._last_ack,
                self.spool.depth,
            )
        elif not self._in_flight:
            self._last_ack = now

    def _update_gauges(self) -> None:
        self.metrics.spool_depth.set(self.spool.depth)
        self.metrics.spool_bytes.set(self.spool.bytes)

    # --- shutdown ---

    def flush(self, timeout: float = 10.0) -> int:
        """Send until the spool is empty or ``timeout`` passes; returns the batches left in the spool
        (they are sent first by the next run)."""
        deadline = time.monotonic() + timeout
        while self.spool.depth and time.monotonic() < deadline:
            self.service(0.05)
        self._producer.flush(max(0.0, min(1.0, deadline - time.monotonic())))
        self._producer.poll(0)
        return self.spool.depth
