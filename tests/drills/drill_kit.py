"""Shared pieces of the fault drills: waiting on conditions, fresh topic sets, workers, readers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import fields
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from touchstone.config import Settings
from touchstone.contracts import RawBatch, decode_window, encode_raw
from touchstone.kafka import ensure_topics
from touchstone.kafka.io import Record, consume
from touchstone.procs import ManagedProcess, start_touchstone
from touchstone.streams.processor import RawProcessor


def wait_for(condition: Callable[[], bool], timeout: float, what: str, *, every: float = 0.1) -> float:
    """Poll ``condition`` until it holds; return the seconds waited, or fail saying what never happened."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def fresh_topics(settings: Settings, *, partitions: int | None = None, **changes: object) -> Settings:
    """``settings`` with every topic renamed to one no test has used, created with ``partitions``."""
    suffix = uuid.uuid4().hex[:8]
    topics = {f.name: f"drill.{f.name[6:]}.{suffix}" for f in fields(Settings) if f.name.startswith("topic_")}
    result = settings.replace(**topics, **({} if partitions is None else {"partitions": partitions}), **changes)
    ensure_topics(result)
    return result


def start_worker(settings: Settings, log_dir: Path, name: str, app_id: str, stages: str) -> ManagedProcess:
    return start_touchstone(
        name, ["worker", "--stages", stages, "--app-id", app_id, "--log-level", "warning"], settings, log_dir
    )


def reference_windows(settings: Settings, batches: Iterable[RawBatch]) -> dict[str, dict]:
    """Window id → features, computed in this process by the same RawProcessor the worker runs."""
    processor = RawProcessor(settings, {})
    out: dict[str, dict] = {}
    for batch in batches:
        result = processor.process(encode_raw(batch), now_ms=0.0)
        assert result.reason is None, f"reference input rejected: {result.reason}: {result.detail}"
        for window in result.windows:
            out[window.window_id] = window.features
    return out


def windows_by_id(records: Iterable[Record]) -> dict[str, dict]:
    """Feature windows read back, de-duplicated by window id (at-least-once may repeat one)."""
    return {w.window_id: w.features for w in (decode_window(r.value) for r in records)}


def interleave(sessions: list[list[RawBatch]]) -> list[RawBatch]:
    """Round-robin over sessions, keeping each session's order: what many live collectors look like."""
    out: list[RawBatch] = []
    for i in range(max(len(s) for s in sessions)):
        out.extend(s[i] for s in sessions if i < len(s))
    return out


def reads_all(wanted: set[str], id_of: Callable[[Record], str]) -> Callable[[list[Record]], bool]:
    """A ``consume(until=...)`` test: every id in ``wanted`` was read (each record looked at once)."""
    seen: set[str] = set()
    read = [0]

    def check(records: list[Record]) -> bool:
        seen.update(id_of(record) for record in records[read[0] :])
        read[0] = len(records)
        return wanted <= seen

    return check


def has_windows(wanted: set[str]) -> Callable[[list[Record]], bool]:
    return reads_all(wanted, lambda record: decode_window(record.value).window_id)


def committed_offset(bootstrap: str, group: str, topic: str, partition: int = 0) -> int:
    """The offset ``group`` committed on one partition (-1001 when none), read without joining the group."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        (position,) = consumer.committed([TopicPartition(topic, partition)], timeout=10)
        return int(position.offset)
    finally:
        consumer.close()


def read_to_end(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[Record]:
    """Every record on ``topic`` up to the end offsets it has now (new arrivals do not keep the read going)."""
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": f"drill-probe-{uuid.uuid4().hex[:8]}"})
    try:
        partitions = probe.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    finally:
        probe.close()

    def at_end(records: list[Record]) -> bool:
        last: dict[int, int] = {}
        for record in records:
            last[record.partition] = max(last.get(record.partition, -1), record.offset)
        return all(last.get(p, -1) >= end - 1 for p, end in ends.items())

    return consume(bootstrap, [topic], until=at_end, timeout_s=timeout_s)
