"""Durable memory of what each sink already did: delivered alert ids and open incidents.

One SQLite file (WAL) under ``Settings.state_dir``. Every write commits before the worker
commits its Kafka offsets, so an alert redelivered after a crash is recognised and not sent
twice. Rows older than ``ttl_s`` are pruned, and the delivered table is capped at
``max_entries`` (oldest first), so the file stays small on a long-running worker.

The store is per worker host: two workers of one consumer group that do not share the file can
each deliver a partition's uncommitted tail once after a rebalance (PagerDuty's ``dedup_key``
still folds those into one incident).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from touchstone.config import Settings
from touchstone.contracts import Level

__all__ = ["IncidentState", "DeliveryStore", "store_path"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS delivered (
    sink TEXT NOT NULL, alert_id TEXT NOT NULL, outcome TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (sink, alert_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS delivered_at ON delivered (at);
CREATE TABLE IF NOT EXISTS incidents (
    sink TEXT NOT NULL, session_id TEXT NOT NULL, level INTEGER NOT NULL, resolved INTEGER NOT NULL,
    opened_at REAL NOT NULL, updated_at REAL NOT NULL, messages INTEGER NOT NULL,
    PRIMARY KEY (sink, session_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS incidents_updated ON incidents (updated_at);
"""


@dataclass(frozen=True, slots=True)
class IncidentState:
    """What a sink last told its receiver about one session's incident."""

    level: Level
    resolved: bool
    opened_at: float
    updated_at: float
    messages: int


def store_path(settings: Settings) -> Path:
    return settings.state_path / "sinks" / "delivered.sqlite3"


class DeliveryStore:
    """Delivered-id and incident tables. ``DeliveryStore()`` is in memory (tests, one-shot CLI)."""

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        ttl_s: float = 7 * 86400.0,
        max_entries: int = 500_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl_s <= 0 or max_entries < 1:
            raise ValueError("ttl_s must be > 0 and max_entries >= 1")
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process (the OS holds the written pages); only a
        # power cut can lose the last transactions, and then PagerDuty's dedup_key still folds.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._writes = 0
        self.prune()

    def seen(self, sink: str, alert_id: str) -> bool:
        """True when ``sink`` delivered (or coalesced) the alert. A dead-lettered alert is not
        "seen": replaying it from the dead-letter topic, or re-reading it after a crash, tries again."""
        row = self._db.execute(
            "SELECT 1 FROM delivered WHERE sink = ? AND alert_id = ? AND outcome != 'dead_lettered'", (sink, alert_id)
        ).fetchone()
        return row is not None

    def outcome(self, sink: str, alert_id: str) -> str | None:
        row = self._db.execute(
            "SELECT outcome FROM delivered WHERE sink = ? AND alert_id = ?", (sink, alert_id)
        ).fetchone()
        return None if row is None else str(row[0])

    def mark(self, sink: str, alert_ids: list[str] | tuple[str, ...], outcome: str) -> None:
        """Record that ``sink`` settled these alerts (delivered, coalesced or dead_lettered)."""
        now = self._clock()
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO delivered (sink, alert_id, outcome, at) VALUES (?, ?, ?, ?)",
                [(sink, alert_id, outcome, now) for alert_id in alert_ids],
            )
        self._count_write(len(alert_ids))

    def incident(self, sink: str, session_id: str) -> IncidentState | None:
        row = self._db.execute(
            "SELECT level, resolved, opened_at, updated_at, messages FROM incidents WHERE sink = ? AND session_id = ?",
            (sink, session_id),
        ).fetchone()
        if row is None:
            return None
        return IncidentState(Level(row[0]), bool(row[1]), row[2], row[3], row[4])

    def save_incident(self, sink: str, session_id: str, state: IncidentState) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT OR REPLACE INTO incidents VALUES (?, ?, ?, ?, ?, ?, ?)",
                (sink, session_id, int(state.level), int(state.resolved), state.opened_at, state.updated_at,
                 state.messages),
            )  # fmt: skip
        self._count_write(1)

    def prune(self) -> int:
        """Drop rows past the TTL and the oldest delivered rows beyond ``max_entries``; return rows dropped."""
        cutoff = self._clock() - self.ttl_s
        with self._db:
            self._db.execute("BEGIN")
            dropped = self._db.execute("DELETE FROM delivered WHERE at < ?", (cutoff,)).rowcount
            dropped += self._db.execute("DELETE FROM incidents WHERE updated_at < ?", (cutoff,)).rowcount
            (count,) = self._db.execute("SELECT COUNT(*) FROM delivered").fetchone()
            if count > self.max_entries:
                dropped += self._db.execute(
                    "DELETE FROM delivered WHERE (sink, alert_id) IN "
                    "(SELECT sink, alert_id FROM delivered ORDER BY at LIMIT ?)",
                    (count - self.max_entries,),
                ).rowcount
        if dropped:
            log.info("pruned %d old delivery record(s) from %s", dropped, self.path)
        return dropped

    def count(self) -> int:
        (count,) = self._db.execute("SELECT COUNT(*) FROM delivered").fetchone()
        return int(count)

    def close(self) -> None:
        self._db.close()

    def _count_write(self, rows: int) -> None:
        self._writes += rows
        if self._writes >= 1000:  # amortise pruning over writes instead of a timer thread
            self._writes = 0
            self.prune()
