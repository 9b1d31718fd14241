"""The Faust application: topics, tables, agents, timers — read top to bottom.

Stage ``streams``: raw batches (key = session id) → :class:`RawProcessor` → feature
windows (key = user) and dead letters. Stage ``detect`` (``touchstone.detectors.agent``):
feature windows → detector engine → alerts. One worker runs both by default; more
workers with the same app id share the partitions.

Design choices around reported faust-streaming pitfalls: plain tables (no windowed
tables), at-least-once processing with deterministic window and alert ids so
downstream consumers de-duplicate, agent concurrency 1 so a partition's order holds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import faust

from touchstone.config import Settings
from touchstone.contracts import encode_window
from touchstone.contracts.deadletter import DeadLetter, encode_deadletter
from touchstone.streams import metrics
from touchstone.streams.processor import RawProcessor, flush_control_message, idle_control_message
from touchstone.streams.session import WindowerKit

__all__ = ["STAGES", "create_app", "faust_broker_urls"]

log = logging.getLogger(__name__)

STAGES = ("streams", "detect")
IDLE_SWEEP_S = 5.0
# Session state reaches the table (and its changelog) at most this often per partition, or after
# this many messages: a crash replays at most that much raw input, which sequence numbers de-duplicate.
STATE_FLUSH_S = 2.0
STATE_FLUSH_MESSAGES = 5000


def faust_broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{hostport.strip()}" for hostport in bootstrap.split(",") if hostport.strip()]


def _store_url(settings: Settings) -> str:
    if settings.store.startswith("rocksdb"):
        try:
            import rocksdict  # noqa: F401
        except ImportError:
            log.warning("rocksdict is not installed; falling back to the in-memory table store")
            return "memory://"
    return settings.store


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else repr(value).encode()


def create_app(
    settings: Settings,
    *,
    app_id: str = "touchstone",
    stages: Iterable[str] = STAGES,
    kit: WindowerKit | None = None,
    **faust_options: Any,
) -> faust.App:
    """A Faust app for the given stages; ``faust_options`` override Faust settings (tests use this)."""
    stages = tuple(stages)
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise ValueError(f"unknown stage(s) {sorted(unknown)}; choose from {STAGES}")
    options: dict[str, Any] = {
        "broker": faust_broker_urls(settings.bootstrap),
        "store": _store_url(settings),
        "datadir": str(settings.state_path / "faust" / app_id),
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication,
        "web_enabled": False,
        "broker_commit_interval": 1.0,
        "broker_session_timeout": settings.group_session_timeout_s,
        "broker_heartbeat_interval": min(3.0, settings.group_session_timeout_s / 4),
        "processing_guarantee": "at_least_once",
        "producer_linger_ms": 5,
        "stream_buffer_maxsize": 4096,
        # Held (un-acked) detector events are redelivered after a restart by design; waiting for them
        # at shutdown would only stall the stop.
        "stream_wait_empty": False,
    }
    options.update(faust_options)
    Path(options["datadir"]).mkdir(parents=True, exist_ok=True)
    app = faust.App(app_id, **options)
    raw_topic = app.topic(settings.topic_raw, key_type=bytes, value_type=bytes, value_serializer="raw")
    features_topic = app.topic(settings.topic_features, key_type=bytes, value_type=bytes, value_serializer="raw")
    dead_letters = app.topic(settings.topic_dead_letter, key_type=bytes, value_type=bytes, value_serializer="raw")
    app.touchstone_settings = settings  # type: ignore[attr-defined]

    async def dead_letter(stage: str, reason: str, detail: str, message: Any, *, redact: bool = False) -> None:
        letter = DeadLetter(
            stage=stage,
            reason=reason,
            detail=detail,
            source_topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key if isinstance(message.key, bytes) else None,
            value=b"" if redact else _as_bytes(message.value),
        )
        await dead_letters.send(key=letter.key, value=encode_deadletter(letter))

    app.touchstone_dead_letter = dead_letter  # type: ignore[attr-defined]

    if "streams" in stages:
        _add_streams_stage(app, settings, raw_topic, features_topic, dead_letter, kit)
    if "detect" in stages:
        from touchstone.detectors.agent import add_detect_stage

        add_detect_stage(app, settings, features_topic, dead_letter)
    return app


def _add_streams_stage(
    app: faust.App,
    settings: Settings,
    raw_topic: faust.TopicT,
    features_topic: faust.TopicT,
    dead_letter: Any,
    kit: WindowerKit | None,
) -> None:
    sessions = app.Table(
        "sessions",
        default=None,
        key_type=str,
        value_type=bytes,  # Faust picks the raw codec for bytes: we store orjson ourselves
        partitions=settings.partitions,
    )
    processor = RawProcessor(settings, sessions, kit, write_behind=True)
    # Partition of each session's last batch, so the idle timer can reach it in-stream.
    session_partition: dict[str, int] = {}
    # Write-behind per raw partition: messages held unacknowledged, the sessions they changed, and
    # when the partition last flushed. Table writes must happen while handling a message of the same
    # partition (Faust routes a changelog record by the current event), so each partition flushes
    # on its own messages.
    held: dict[int, list[Any]] = {}
    changed: dict[int, set[str]] = {}
    flushed_at: dict[int, float] = {}
    flush_requested: set[int] = set()
    # Bumped on every revocation. A message whose handling spans one (it awaits a send) may have
    # changed a session whose in-memory state was just discarded, in a partition that may be
    # another worker's by now: its effect is dropped, not flushed or acknowledged, and Kafka
    # redelivers it from the committed offset to whoever owns the partition.
    revocations = [0]

    @app.on_partitions_revoked.connect
    async def drop_revoked_sessions(app: faust.App, revoked: set[Any], **kwargs: Any) -> None:
        # The next owner restores the flushed state and Kafka redelivers the held messages to it.
        revocations[0] += 1
        for tp in revoked:
            if tp.topic not in (settings.topic_raw, settings.topic_raw_full):
                continue
            held.pop(tp.partition, None)
            changed.pop(tp.partition, None)
            flushed_at.pop(tp.partition, None)
            flush_requested.discard(tp.partition)
            gone = [sid for sid, part in session_partition.items() if part == tp.partition]
            processor.discard(gone)
            for sid in gone:
                session_partition.pop(sid, None)

    # The restricted full-capture topic joins only where an organisation enabled it; both topics have
    # the same partition count, so a session's state stays in one table partition either way.
    source = (
        app.topic(settings.topic_raw, settings.topic_raw_full, key_type=bytes, value_type=bytes, value_serializer="raw")
        if settings.consume_full_capture
        else raw_topic
    )

    async def handle(message: Any, value: Any) -> str | None:
        """Process one raw message; returns the session it changed, if any."""
        if not isinstance(value, bytes):
            await dead_letter("streams", "wrong_type", "message value is not bytes", message)
            return None
        result = processor.process(value, restricted=message.topic == settings.topic_raw_full)
        if result.reason is not None:
            await dead_letter("streams", result.reason, result.detail, message, redact=result.redact)
            return None
        if result.session_id is not None:
            changed.setdefault(message.partition, set()).add(result.session_id)
            if result.session_id in processor.last_seen:
                session_partition[result.session_id] = message.partition
            else:
                session_partition.pop(result.session_id, None)
        for window in result.windows:
            await features_topic.send(key=window.user.encode(), value=encode_window(window))
            metrics.WINDOWS_OUT.labels(window.modality).inc()
        return result.session_id

    @app.agent(source, concurrency=1)
    async def windows_from_raw(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.noack().events():
            partition = event.message.partition
            before = revocations[0]
            session_id = await handle(event.message, event.value)
            if revocations[0] != before:
                if session_id is not None:
                    processor.discard([session_id])
                    session_partition.pop(session_id, None)
                continue
            pending = held.setdefault(partition, [])
            pending.append(event)
            now = time.monotonic()
            last = flushed_at.setdefault(partition, now)
            if now - last >= STATE_FLUSH_S or len(pending) >= STATE_FLUSH_MESSAGES:
                processor.flush(changed.pop(partition, ()))
                metrics.STATE_BYTES.set(processor.state_bytes)
                metrics.OPEN_SESSIONS.set(len(processor.last_seen))
                flushed_at[partition] = now
                flush_requested.discard(partition)
                for done in held.pop(partition, []):
                    await stream.ack(done)

    @app.timer(STATE_FLUSH_S)
    async def flush_quiet_partitions() -> None:
        # A partition with no new message would hold its last messages (and their offsets) forever;
        # a control message into it lets the agent flush and acknowledge them in-stream.
        now = time.monotonic()
        for partition, pending in list(held.items()):
            if pending and partition not in flush_requested and now - flushed_at.get(partition, now) >= STATE_FLUSH_S:
                flush_requested.add(partition)
                await raw_topic.send(value=flush_control_message(), partition=partition)

    @app.timer(IDLE_SWEEP_S)
    async def sweep_idle_sessions() -> None:
        now_ms = time.time() * 1000.0
        for session_id in processor.idle_sessions(now_ms):
            partition = session_partition.get(session_id)
            if partition is None:
                processor.last_seen.pop(session_id, None)
                continue
            # Bump the clock so a session is nominated once per sweep horizon, not every tick.
            processor.last_seen[session_id] = now_ms
            await raw_topic.send(key=session_id.encode(), value=idle_control_message(session_id), partition=partition)

    app.touchstone_raw_processor = processor  # type: ignore[attr-defined]
