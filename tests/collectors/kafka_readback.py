"""Reading raw batches back from a topic, for the collector's Kafka tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, Message

from touchstone.contracts import RawBatch, decode_raw


def read_messages(bootstrap: str, topic: str, *, until: Callable[[list[Message]], bool], timeout: float = 30.0):
    """Every message of ``topic`` from the beginning, polling until ``until(messages)`` or ``timeout``."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"readback-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    messages: list[Message] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not until(messages):
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            messages.append(msg)
    finally:
        consumer.close()
    return messages


def read_batches(
    bootstrap: str, topic: str, *, until_end: int = 1, timeout: float = 30.0
) -> list[tuple[Message, RawBatch]]:
    """Decoded batches in arrival order, until ``until_end`` batches marked ``end`` were seen."""

    def done(messages: list[Message]) -> bool:
        return sum(decode_raw(m.value()).end for m in messages) >= until_end

    messages = read_messages(bootstrap, topic, until=done, timeout=timeout)
    return [(m, decode_raw(m.value())) for m in messages]


def dedup(batches: list[tuple[Message, RawBatch]]) -> list[RawBatch]:
    """First copy of each (session, seq), in arrival order: what the pipeline keeps."""
    seen: set[tuple[str, int]] = set()
    out = []
    for _, batch in batches:
        key = (batch.session_id, batch.seq)
        if key not in seen:
            seen.add(key)
            out.append(batch)
    return out
