"""Dead letter, schema ``deadletter/1``: a message Touchstone could not use, kept whole with the reason.

The original bytes travel base64-encoded so nothing is lost and the record can be
replayed once the cause is fixed (``touchstone`` never drops bad input silently).
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["DEADLETTER_SCHEMA", "DeadLetter", "decode_deadletter", "encode_deadletter"]

DEADLETTER_SCHEMA = "deadletter/1"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    stage: str  # "streams" | "detectors" | "sinks:<name>"
    reason: str  # stable short code, e.g. "non_monotonic", "delivery_failed"
    detail: str
    source_topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    at: float = 0.0  # epoch ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": DEADLETTER_SCHEMA,
            "stage": self.stage,
            "reason": self.reason,
            "detail": self.detail,
            "source_topic": self.source_topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": None if self.key is None else base64.b64encode(self.key).decode(),
            "value": base64.b64encode(self.value).decode(),
            "at": self.at or time.time() * 1000.0,
        }


def encode_deadletter(letter: DeadLetter) -> bytes:
    return orjson.dumps(letter.to_dict())


def decode_deadletter(data: bytes) -> DeadLetter:
    doc = orjson.loads(data)
    return DeadLetter(
        stage=doc["stage"],
        reason=doc["reason"],
        detail=doc["detail"],
        source_topic=doc["source_topic"],
        partition=doc["partition"],
        offset=doc["offset"],
        key=None if doc["key"] is None else base64.b64decode(doc["key"]),
        value=base64.b64decode(doc["value"]),
        at=doc["at"],
    )
