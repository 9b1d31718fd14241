from __future__ import annotations

import time

import pytest

from touchstone.contracts import Level
from touchstone.sinks.store import DeliveryStore, IncidentState

pytestmark = pytest.mark.timeout(30)


def test_delivered_ids_survive_reopening(tmp_path):
    path = tmp_path / "sinks" / "delivered.sqlite3"
    first = DeliveryStore(path)
    first.mark("pager", ["a1", "a2"], "delivered")
    state = IncidentState(Level.HIGH, False, time.time() - 5.0, time.time(), 1)
    first.save_incident("pager", "s1", state)
    first.close()
    again = DeliveryStore(path)
    assert again.seen("pager", "a1") and again.seen("pager", "a2")
    assert not again.seen("slack", "a1")  # idempotency is per sink
    assert again.outcome("pager", "a1") == "delivered"
    again.mark("pager", ["a3"], "dead_lettered")
    assert not again.seen("pager", "a3")  # a dead-lettered alert may be delivered by a replay
    assert again.incident("pager", "s1") == state
    again.close()


def test_old_rows_are_pruned_by_ttl():
    now = [1000.0]
    db = DeliveryStore(ttl_s=100.0, clock=lambda: now[0])
    db.mark("s", ["old"], "delivered")
    db.save_incident("s", "sess", IncidentState(Level.LOW, False, 0.0, 1000.0, 1))
    now[0] = 1050.0
    db.mark("s", ["new"], "delivered")
    now[0] = 1120.0
    assert db.prune() == 2
    assert not db.seen("s", "old") and db.seen("s", "new")
    assert db.incident("s", "sess") is None


def test_delivered_table_is_bounded_oldest_first():
    now = [0.0]
    db = DeliveryStore(max_entries=3, clock=lambda: now[0])
    for i in range(5):
        now[0] = float(i)
        db.mark("s", [f"a{i}"], "delivered")
    db.prune()
    assert db.count() == 3
    assert [db.seen("s", f"a{i}") for i in range(5)] == [False, False, True, True, True]
