from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap

import pytest

from touchstone.collectors.spool import Spool


def fill(spool: Spool, n: int, size: int = 100, start: int = 0, **kw) -> list[int]:
    return [spool.append("raw", b"s1", bytes([i % 256]) * size, session_id="s1", seq=start + i, **kw) for i in range(n)]


def test_rows_come_back_in_append_order_and_leave_on_delete(tmp_path):
    spool = Spool(tmp_path / "spool.db")
    ids = fill(spool, 5)
    assert ids == sorted(ids)
    assert [r.seq for r in spool.read(0, 10)] == [0, 1, 2, 3, 4]
    assert [r.seq for r in spool.read(ids[1], 2)] == [2, 3]
    assert spool.delete(ids[0]) and not spool.delete(ids[0])
    assert (spool.depth, spool.bytes) == (4, 400)
    assert spool.oldest_id() == ids[1]
    row = spool.read(0, 1)[0]
    assert (row.topic, row.key, row.session_id, row.value) == ("raw", b"s1", "s1", bytes([1]) * 100)


def test_bound_drops_oldest_unsent_rows_and_logs(tmp_path, caplog):
    spool = Spool(tmp_path / "spool.db", max_bytes=1000)
    ids = fill(spool, 10)  # exactly at the bound
    assert spool.dropped == 0
    with caplog.at_level(logging.WARNING, logger="touchstone.collectors.spool"):
        fill(spool, 3, start=10, protect_through=ids[1])  # rows 0 and 1 are in the producer's hands
    assert spool.bytes <= 1000
    assert spool.dropped == 3
    assert [r.seq for r in spool.read(0, 100)] == [0, 1, 5, 6, 7, 8, 9, 10, 11, 12]
    assert "spool full" in caplog.text and "oldest" in caplog.text


def test_bound_keeps_the_newest_batch_even_when_nothing_else_can_go(tmp_path):
    spool = Spool(tmp_path / "spool.db", max_bytes=150)
    first = fill(spool, 1)
    fill(spool, 1, start=1, protect_through=first[0])
    # nothing unprotected but the new row: the bound is exceeded rather than losing the current batch
    assert spool.depth == 2 and spool.dropped == 0


def test_spool_survives_reopening_with_order_and_ids(tmp_path):
    path = tmp_path / "spool.db"
    spool = Spool(path)
    ids = fill(spool, 4)
    spool.delete(ids[0])
    spool.close()
    again = Spool(path)
    assert (again.depth, again.bytes) == (3, 300)
    assert [r.seq for r in again.read(0, 10)] == [1, 2, 3]
    new_id = again.append("raw", b"s2", b"x", session_id="s2", seq=0)
    assert new_id > ids[-1]  # AUTOINCREMENT: ids never reused, so order survives restarts


def test_rows_committed_before_a_hard_crash_are_kept(tmp_path):
    path = tmp_path / "spool.db"
    # A child process appends and dies with os._exit (no close, no atexit): what a crash looks like.
    script = textwrap.dedent(
        f"""
        import os
        from touchstone.collectors.spool import Spool
        spool = Spool({str(path)!r})
        for i in range(50):
            spool.append("raw", b"k", b"v" * 10, session_id="s", seq=i)
        os._exit(9)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], check=False, env={**os.environ})
    assert proc.returncode == 9
    spool = Spool(path)
    assert [r.seq for r in spool.read(0, 100)] == list(range(50))


def test_memory_spool_keeps_order_without_a_file():
    spool = Spool(None)
    fill(spool, 3)
    assert [r.seq for r in spool.read(0, 10)] == [0, 1, 2]


def test_bad_bound_is_refused(tmp_path):
    with pytest.raises(ValueError):
        Spool(tmp_path / "x.db", max_bytes=0)
