"""How detector state survives a restart: whole-partition checkpoints in a plain Faust table.

Choice
------
One :class:`~touchstone.detectors.engine.DetectorEngine` per features-topic partition,
checkpointed whole (scorers, calibrators, open sessions, closed-session memory) with
:meth:`~touchstone.detectors.engine.DetectorEngine.checkpoint`. Not per user: the fleet
scorers learn every user's windows as negatives for the others, so a user's profile
depends on the partition's whole history, and only a snapshot taken at one offset is
consistent. The snapshot is HMAC-signed (:mod:`touchstone.detectors.snapshot`) and cut
into chunks below Kafka's default 1 MB message limit (:func:`split_snapshot`), stored
in a plain (non-windowed) table whose changelog is co-partitioned with the features topic.

The rule that makes "a restarted worker scores identically to one that never stopped"
------------------------------------------------------------------------------------
*Offsets are committed only up to the last checkpoint.* Then after any crash the
restored engine is the state at offset ``o`` and Kafka redelivers everything after
the committed offset ``c <= o``: windows in ``(c, o]`` are already inside the snapshot
and the engine ignores them (per session and modality it remembers the highest window
index, and closed sessions by id), windows after ``o`` are processed exactly as the
lost worker processed them — the engine is deterministic (capture-time clocks, no
randomness outside the scorers' pickled state) — and re-emit the same alerts with the
same ``alert_id``, which the sinks drop as duplicates.

Wiring for the Faust agent (the lead's part)
--------------------------------------------
``@app.agent(features_topic, concurrency=1)``, iterate ``stream.noack().events()``:

1. On the first event of a partition (or in ``on_partitions_assigned``), build the engine
   with ``snapshot_key=load_snapshot_key(settings)`` and, if the table holds a manifest
   for that partition, ``engine.restore(join_snapshot(manifest, chunks))``.
2. Per event: ``alerts = engine.process(decode_window(value), now_ms)``; send each alert
   to the alerts topic keyed by ``alert.session_id`` and *await delivery*; keep the event.
3. When :class:`CheckpointPolicy` says so (and when partitions are revoked, and on
   shutdown): ``data = engine.checkpoint(position={"partition": p, "offset": offset})``;
   ``manifest, chunks = split_snapshot(data, generation + 1)``; write the chunks under
   :func:`chunk_key`, then the manifest under :func:`manifest_key` (the manifest last, so
   a crash mid-write leaves the previous generation in force), delete the previous
   generation's chunks, and only then ``await stream.ack(event)`` for every kept event.
4. A timer may call ``engine.expire(now_ms)`` for partitions that went quiet (sessions
   idle by the wall clock); its alerts go out like the others.

Keep the number of events held between checkpoints modest (the default policy: at
most 1000 windows or 30 s), so a restart replays little and the consumer never holds
thousands of un-acked events.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from touchstone.detectors.exceptions import SnapshotError

__all__ = [
    "CHUNK_BYTES",
    "CheckpointPolicy",
    "Manifest",
    "chunk_key",
    "join_snapshot",
    "manifest_key",
    "split_snapshot",
]

# Kafka's default max.message.bytes is 1 MiB; half of it leaves room for key and headers.
CHUNK_BYTES = 512 * 1024


@dataclass(frozen=True, kw_only=True)
class CheckpointPolicy:
    """When the agent checkpoints: after ``every_windows`` windows or ``every_ms`` of wall time, if any."""

    every_windows: int = 1000
    every_ms: float = 30_000.0

    def __post_init__(self) -> None:
        if self.every_windows < 1:
            raise ValueError(f"every_windows must be at least 1, got {self.every_windows!r}")
        if not self.every_ms > 0.0:
            raise ValueError(f"every_ms must be positive, got {self.every_ms!r}")

    def due(self, windows_since: int, ms_since: float) -> bool:
        """Whether to checkpoint now, given windows processed and wall time elapsed since the last one.

        >>> policy = CheckpointPolicy(every_windows=3, every_ms=1000.0)
        >>> policy.due(3, 10.0), policy.due(1, 1000.0), policy.due(0, 5000.0), policy.due(2, 10.0)
        (True, True, False, False)
        """
        if windows_since <= 0:
            return False
        return windows_since >= self.every_windows or ms_since >= self.every_ms


@dataclass(frozen=True, slots=True)
class Manifest:
    """Which chunks make up a partition's current checkpoint."""

    generation: int
    chunks: int
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"generation": self.generation, "chunks": self.chunks, "size": self.size, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Manifest:
        try:
            return cls(
                generation=int(doc["generation"]),
                chunks=int(doc["chunks"]),
                size=int(doc["size"]),
                sha256=str(doc["sha256"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError("not_a_snapshot", f"malformed checkpoint manifest: {exc!r}") from None


def split_snapshot(data: bytes, generation: int, chunk_bytes: int = CHUNK_BYTES) -> tuple[Manifest, list[bytes]]:
    """Cut a snapshot into table-sized chunks, with the manifest that reassembles them.

    >>> manifest, chunks = split_snapshot(b"abcdefg", generation=4, chunk_bytes=3)
    >>> manifest.chunks, chunks, join_snapshot(manifest, chunks)
    (3, [b'abc', b'def', b'g'], b'abcdefg')
    """
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be at least 1, got {chunk_bytes!r}")
    count = max(1, math.ceil(len(data) / chunk_bytes))
    chunks = [bytes(data[i * chunk_bytes : (i + 1) * chunk_bytes]) for i in range(count)]
    manifest = Manifest(generation=generation, chunks=count, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    return manifest, chunks


def join_snapshot(manifest: Manifest, chunks: Sequence[bytes | None]) -> bytes:
    """Reassemble a checkpoint; a missing, extra or altered chunk raises SnapshotError.

    The digest only catches accidents (a lost chunk, a stale generation); the snapshot's own
    MAC, checked by ``DetectorEngine.restore``, is what stops forgery.
    """
    if len(chunks) != manifest.chunks or any(chunk is None for chunk in chunks):
        raise SnapshotError("truncated", f"checkpoint generation {manifest.generation} is missing chunks")
    data = b"".join(chunk for chunk in chunks if chunk is not None)
    if len(data) != manifest.size or hashlib.sha256(data).hexdigest() != manifest.sha256:
        raise SnapshotError("tampered", f"checkpoint generation {manifest.generation} does not match its manifest")
    return data


def manifest_key(partition: int) -> str:
    """Table key of a partition's manifest (partition-qualified: one worker may own several partitions)."""
    return f"detector/p{partition}/manifest"


def chunk_key(partition: int, generation: int, index: int) -> str:
    return f"detector/p{partition}/g{generation}/c{index}"
