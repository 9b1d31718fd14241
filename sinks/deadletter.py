"""Dead-letter records of the sinks stage, in the project's ``deadletter/1`` contract
(``docs/contracts.md``): the original message is kept whole, with why it could not be handled.

Two kinds, both keyed by the original message's key::

    {"schema": "deadletter/1", "stage": "sinks", "reason": "exhausted",
     "detail": "sink 'pager' failed 5 attempt(s), last: HTTP 500: ...",
     "source_topic": "touchstone.alerts", "partition": 2, "offset": 1234,
     "key": "<base64>", "value": "<base64 of the original bytes>", "at": 1767225600123.0,
     "sink": "pager", "sink_type": "pagerduty", "attempts": 5, "alert_id": "..."}

An alert a sink gave up on carries the sink fields and a delivery ``reason`` (``permanent``,
``exhausted``, ``deadline``, ``circuit_open``); input that is not an alert carries the contract
reason (``not_json``, ``missing_field``, ...) and no sink fields. Replaying means producing
``value`` (base64-decoded) back to ``source_topic``: sinks that delivered it skip it.
"""

from __future__ import annotations

import base64
import time
from typing import Any, Protocol

import orjson

__all__ = ["DEAD_LETTER_SCHEMA", "SourceRecord", "dead_letter_record", "encode_dead_letter"]

DEAD_LETTER_SCHEMA = "deadletter/1"


class SourceRecord(Protocol):
    """The consumed message a dead-letter record preserves (confluent_kafka.Message has it)."""

    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def dead_letter_record(
    record: SourceRecord, *, reason: str, detail: str, now: float | None = None, **extra: Any
) -> dict[str, Any]:
    """The ``deadletter/1`` object for ``record``; ``extra`` adds stage-specific fields."""
    return {
        "schema": DEAD_LETTER_SCHEMA,
        "stage": "sinks",
        "reason": reason,
        "detail": detail,
        "source_topic": record.topic(),
        "partition": record.partition(),
        "offset": record.offset(),
        "key": _b64(record.key()),
        "value": _b64(record.value()),
        "at": (time.time() if now is None else now) * 1000.0,
        **extra,
    }


def encode_dead_letter(entry: dict[str, Any]) -> bytes:
    return orjson.dumps(entry)
