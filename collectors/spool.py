"""Durable local spool of encoded batches: SQLite in WAL mode, one row per batch, oldest first.

Every batch is written here *before* it is handed to the Kafka producer and deleted when Kafka
acknowledges it, so a collector crash loses only the events not yet flushed into a batch, and
batches left by a crashed or disconnected run are sent first by the next one (row ids are the
send order).

Bound policy: when the payload bytes in the spool exceed ``max_bytes``, the **oldest batches not
yet handed to the producer are deleted** until the spool fits again, each counted in
:attr:`Spool.dropped` and logged (WARNING, at most once a minute with the running total). Why
the oldest: a continuous-authentication pipeline needs the *current* behaviour at a workstation
far more than hour-old motion, and the gap in sequence numbers tells the pipeline exactly what
went missing. Batches already in the producer's hands are never dropped (they may still land).

Durability: ``synchronous=NORMAL`` with WAL survives any crash of the collector process; an OS
crash or power cut may also lose the last few commits.

The spool is used by one thread at a time (the collector's sender thread).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_MAX_BYTES", "SpooledBatch", "Spool"]

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
_DROP_LOG_INTERVAL_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    spooled_at REAL NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    id: int
    topic: str
    key: bytes
    value: bytes
    session_id: str
    seq: int


class Spool:
    """Append-ordered store of encoded batches with a byte bound.

    ``path=None`` keeps the spool in memory (replay and tests: same ordering, no durability).
    """

    def __init__(self, path: Path | str | None, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.max_bytes = max_bytes
        self.path = None if path is None else Path(path)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit, each statement its own transaction unless we open one.
        self._db = sqlite3.connect(
            ":memory:" if self.path is None else str(self.path), isolation_level=None, check_same_thread=False
        )
        if self.path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        depth, size = self._db.execute("SELECT count(*), coalesce(sum(length(value)), 0) FROM batches").fetchone()
        self._depth = int(depth)
        self._bytes = int(size)
        self.dropped = 0
        self._last_drop_log = 0.0
        if self.path is not None:
            # The policy at the bound is stated up front, not only when it first bites.
            log.info(
                "spool %s: bound %d bytes; when full, the oldest batches not yet handed to Kafka are dropped "
                "(counted in touchstone_collector_spool_dropped, logged)",
                self.path,
                self.max_bytes,
            )
        if self._depth:
            log.info("spool %s holds %d batches (%d bytes) from an earlier run", self.path, depth, size)

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def bytes(self) -> int:
        return self._bytes

    def append(
        self, topic: str, key: bytes, value: bytes, *, session_id: str, seq: int, protect_through: int = 0
    ) -> int:
        """Store one batch and return its id; enforces the bound on rows with id > ``protect_through``
        (the rows up to it are in the producer's hands)."""
        cursor = self._db.execute(
            "INSERT INTO batches (topic, key, value, session_id, seq, spooled_at) VALUES (?, ?, ?, ?, ?, ?)",
            (topic, key, value, session_id, seq, time.time()),
        )
        self._depth += 1
        self._bytes += len(value)
        row_id = int(cursor.lastrowid or 0)
        if self._bytes > self.max_bytes:
            self._enforce_bound(protect_through, row_id)
        return row_id

    def read(self, after_id: int, limit: int) -> list[SpooledBatch]:
        """Up to ``limit`` batches with id > ``after_id``, oldest first."""
        rows = self._db.execute(
            "SELECT id, topic, key, value, session_id, seq FROM batches WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        ).fetchall()
        return [SpooledBatch(int(r[0]), r[1], bytes(r[2]), bytes(r[3]), r[4], int(r[5])) for r in rows]

    def newest_id(self) -> int | None:
        row = self._db.execute("SELECT max(id) FROM batches").fetchone()
        return None if row[0] is None else int(row[0])

    def oldest_id(self) -> int | None:
        row = self._db.execute("SELECT min(id) FROM batches").fetchone()
        return None if row[0] is None else int(row[0])

    def delete(self, row_id: int) -> bool:
        """Forget an acknowledged batch; False when it was not there (dropped by the bound, or a duplicate ack)."""
        row = self._db.execute("DELETE FROM batches WHERE id = ? RETURNING length(value)", (row_id,)).fetchone()
        if row is None:
            return False
        self._depth -= 1
        self._bytes -= int(row[0])
        return True

    def close(self) -> None:
        self._db.close()

    def _enforce_bound(self, protect_through: int, newest_id: int) -> None:
        # Oldest unprotected rows go first; the batch just written is kept (it is the most current).
        candidates = self._db.execute(
            "SELECT id, length(value) FROM batches WHERE id > ? AND id < ? ORDER BY id",
            (protect_through, newest_id),
        )
        doomed: list[int] = []
        before = self._bytes
        excess = before - self.max_bytes
        for row_id, size in candidates:
            if excess <= 0:
                break
            doomed.append(int(row_id))
            excess -= int(size)
        candidates.close()
        if not doomed:
            return
        self._db.execute("BEGIN")
        for row_id in doomed:
            self.delete(row_id)
        self._db.execute("COMMIT")
        self.dropped += len(doomed)
        now = time.monotonic()
        if now - self._last_drop_log >= _DROP_LOG_INTERVAL_S:
            self._last_drop_log = now
            log.warning(
                "spool full (%d bytes > bound %d): dropped the %d oldest unsent batches, %d in total since start",
                before,
                self.max_bytes,
                len(doomed),
                self.dropped,
            )
