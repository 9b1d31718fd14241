"""The detect stage: a Faust agent from feature windows (key = user) to alerts (key = session).

One :class:`~touchstone.detectors.engine.DetectorEngine` per features partition. Its
whole state is checkpointed into a plain table (co-partitioned with the features topic)
and offsets are acknowledged only up to the last checkpoint, so after a crash or a
rebalance the new owner restores the checkpoint and Kafka redelivers exactly the windows
after it: a restarted worker scores identically to one that never stopped (see
``touchstone.detectors.state``). Alerts re-emitted by that replay carry the same
``alert_id``; sinks deliver them once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson

from touchstone.config import Settings
from touchstone.contracts import Alert, FeatureWindow, decode_window, encode_alert
from touchstone.detectors import metrics
from touchstone.detectors.engine import DetectorEngine, EngineConfig
from touchstone.detectors.factory import build_scorers
from touchstone.detectors.snapshot import load_snapshot_key
from touchstone.detectors.state import (
    CheckpointPolicy,
    Manifest,
    chunk_key,
    join_snapshot,
    manifest_key,
    split_snapshot,
)
from touchstone.errors import ContractError

__all__ = ["RISK_SCHEMA", "add_detect_stage", "risk_update"]

log = logging.getLogger(__name__)

RISK_SCHEMA = "risk/1"


def risk_update(engine: DetectorEngine, window: FeatureWindow) -> bytes | None:
    """The session's risk after this window, for live views (``risk/1``; not an alert)."""
    view = engine.view(window.session_id)
    if view is None:
        return None
    status = engine.status(window.user)
    return orjson.dumps(
        {
            "schema": RISK_SCHEMA,
            "session_id": view.session_id,
            "user": view.user,
            "host": view.host,
            "risk": view.risk,
            "score": view.last_score,
            "level": view.level.label,
            "modality": window.modality,
            "window_id": window.window_id,
            "windows_seen": view.windows_seen,
            "session_age_s": view.session_age_s,
            "event_time": window.end,
            "enrolment": status.state,
            "enrolment_progress": status.progress,
        }
    )


@dataclass
class PartitionEngine:
    """The engine of one features partition, with the events it holds until the next checkpoint."""

    engine: DetectorEngine
    generation: int = 0
    held: list[Any] = field(default_factory=list)
    last_checkpoint: float = field(default_factory=time.monotonic)


def add_detect_stage(app: faust.App, settings: Settings, features_topic: faust.TopicT, dead_letter: Any) -> None:
    alerts_topic = app.topic(settings.topic_alerts, key_type=bytes, value_type=bytes, value_serializer="raw")
    risk_topic = app.topic(settings.topic_risk, key_type=bytes, value_type=bytes, value_serializer="raw")
    checkpoints = app.Table(
        "detector-checkpoints", default=None, key_type=str, value_type=bytes, partitions=settings.partitions
    )
    snapshot_key = load_snapshot_key(settings)
    policy = CheckpointPolicy()
    engines: dict[int, PartitionEngine] = {}

    def engine_for(partition: int) -> PartitionEngine:
        current = engines.get(partition)
        if current is not None:
            return current
        engine = DetectorEngine(
            build_scorers(settings), EngineConfig.from_settings(settings), snapshot_key=snapshot_key
        )
        stored = checkpoints.get(manifest_key(partition))
        generation = 0
        if stored is not None:
            manifest = Manifest.from_dict(orjson.loads(stored))
            chunks = [checkpoints.get(chunk_key(partition, manifest.generation, i)) for i in range(manifest.chunks)]
            engine.restore(join_snapshot(manifest, chunks))
            generation = manifest.generation
            log.info("partition %d: detector state restored (generation %d)", partition, generation)
        current = engines[partition] = PartitionEngine(engine, generation)
        return current

    def checkpoint(partition: int, state: PartitionEngine, offset: int) -> None:
        data = state.engine.checkpoint(position={"partition": partition, "offset": offset})
        manifest, chunks = split_snapshot(data, state.generation + 1)
        for index, chunk in enumerate(chunks):
            checkpoints[chunk_key(partition, manifest.generation, index)] = chunk
        # The manifest last: a crash mid-write leaves the previous generation in force.
        checkpoints[manifest_key(partition)] = orjson.dumps(manifest.to_dict())
        previous = state.generation
        if previous:
            for index in range(1024):
                key = chunk_key(partition, previous, index)
                if key not in checkpoints:
                    break
                del checkpoints[key]
        state.generation = manifest.generation
        state.last_checkpoint = time.monotonic()
        metrics.CHECKPOINT_BYTES.set(len(data))

    # Bumped on every revocation: a window whose handling spans one (it awaits its alerts) belongs
    # to an engine that was just dropped, so it must not checkpoint or acknowledge anything (that
    # checkpoint would land in a partition another worker may own by now).
    revocations = [0]

    @app.on_partitions_revoked.connect
    async def forget_revoked(app: faust.App, revoked: set[Any], **kwargs: Any) -> None:
        # The next owner restores from the table; events we held will be redelivered to it.
        revocations[0] += 1
        for tp in revoked:
            if tp.topic == settings.topic_features and engines.pop(tp.partition, None) is not None:
                log.info("partition %d revoked: detector state handed over", tp.partition)

    async def publish(alerts: list[Alert]) -> None:
        for alert in alerts:
            delivered = await alerts_topic.send(key=alert.session_id.encode(), value=encode_alert(alert))
            await delivered  # the checkpoint that acks this window must not run ahead of its alerts
            metrics.ALERTS.labels(alert.level.label, alert.status).inc()

    @app.agent(features_topic, concurrency=1)
    async def alerts_from_windows(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.noack().events():
            message = event.message
            before = revocations[0]
            state = engine_for(message.partition)
            state.held.append(event)
            started = time.perf_counter()
            try:
                window = decode_window(event.value)
                duplicates_before = state.engine.counters.duplicates
                alerts = state.engine.process(window, now_ms=time.time() * 1000.0)
            except ContractError as err:
                metrics.DEAD_LETTERS.labels("detectors", err.reason).inc()
                await dead_letter("detectors", err.reason, err.detail, message)
                continue
            except Exception as exc:  # a model bug must not stop the worker: keep the window for replay
                log.exception("scoring failed for a window")
                metrics.DEAD_LETTERS.labels("detectors", "processing_error").inc()
                await dead_letter("detectors", "processing_error", f"{type(exc).__name__}: {exc}", message)
                continue
            metrics.WINDOW_SECONDS.observe(time.perf_counter() - started)
            metrics.WINDOWS.labels(window.modality).inc()
            await publish(alerts)
            # A replayed window (after a restart) changed nothing: a risk update would repeat an old id.
            replayed = state.engine.counters.duplicates > duplicates_before
            update = None if replayed else risk_update(state.engine, window)
            if update is not None:
                await risk_topic.send(key=window.session_id.encode(), value=update)
            if revocations[0] != before:
                continue  # redelivered from the committed offset to the partition's owner
            since_ms = (time.monotonic() - state.last_checkpoint) * 1000.0
            if policy.due(len(state.held), since_ms):
                checkpoint(message.partition, state, message.offset)
                for held in state.held:
                    await stream.ack(held)
                state.held.clear()
