"""Fault drill: the broker stops under load and comes back on the same ports and data.

A stream worker runs throughout; raw batches go out through the collectors' spool-backed
Publisher, which keeps accepting them while the broker is gone. Afterwards every batch is on the
raw topic once, the worker is still the same process, and the feature windows are exactly the
in-process ones. The broker is private to the drill, so the shared test broker is not disturbed.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest
from drill_kit import fresh_topics, has_windows, read_to_end, reference_windows, start_worker, wait_for, windows_by_id

from touchstone.collectors.publisher import Publisher
from touchstone.collectors.simulate import Fleet
from touchstone.collectors.spool import Spool
from touchstone.config import Settings
from touchstone.contracts import RAW_SCHEMA, RawBatch, encode_raw
from touchstone.kafka import LocalBroker, free_port
from touchstone.kafka.io import consume

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

RATE_HZ = 250  # batches per second: a few dozen live collectors


class Feeder(threading.Thread):
    """Submits batches to a Publisher at a steady rate, one stage at a time, serving it in between.

    ``stages`` are consecutive slices of the input; stage i+1 starts once ``go[i+1]`` is set, so the
    drill decides what is produced before, during and after the outage.
    """

    def __init__(self, publisher: Publisher, stages: list[list[RawBatch]]) -> None:
        super().__init__(daemon=True)
        self.publisher = publisher
        self.stages = stages
        self.go = [threading.Event() for _ in stages]
        self.done = [threading.Event() for _ in stages]
        self.finished = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for stage, go, done in zip(self.stages, self.go, self.done, strict=True):
                while not go.wait(0.02):
                    self.publisher.service()
                next_at = time.monotonic()
                for batch in stage:
                    self.publisher.submit(batch)
                    next_at += 1.0 / RATE_HZ
                    while (pause := next_at - time.monotonic()) > 0:
                        self.publisher.service(min(pause, 0.02))
                done.set()
            while not self.finished.is_set():  # drain the spool once the broker is back
                self.publisher.service(0.02)
        except BaseException as exc:  # surfaced by the drill
            self.error = exc
            for event in self.done:
                event.set()


def read_raw(bootstrap: str, topic: str) -> Counter:
    """(session, seq, bytes) of every raw batch on the topic; the worker's own control messages are skipped.

    Called once the spool is empty, so the topic's current end is past every batch.
    """
    records = read_to_end(bootstrap, topic)
    found: Counter = Counter()
    for record in records:
        doc = orjson.loads(record.value)
        if doc.get("schema") == RAW_SCHEMA:
            found[(doc["session_id"], doc["seq"], record.value)] += 1
    return found


@pytest.mark.timeout(150)
def test_broker_restart_under_load_loses_nothing_and_the_worker_rides_it_out(tmp_path: Path):
    port, controller = free_port(), free_port()
    while controller == port:
        controller = free_port()
    broker = LocalBroker(port=port, controller_port=controller, data_dir=tmp_path / "kafka")
    broker.start(wait=True, timeout=120)
    worker = None
    feeder = None
    spool = Spool(tmp_path / "spool.db")
    try:
        drill = fresh_topics(
            Settings(bootstrap=broker.bootstrap), group_session_timeout_s=6.0, state_dir=str(tmp_path / "state")
        )
        batches = [*Fleet(12, seed=11, start_ms=1.75e12).iter_batches(150.0)]
        third = len(batches) // 3
        stages = [batches[:third], batches[third : 2 * third], batches[2 * third :]]
        expected = reference_windows(drill, batches)
        worker = start_worker(drill, tmp_path, "w1", f"drill-broker-{uuid.uuid4().hex[:6]}", "streams")
        feeder = Feeder(Publisher(drill, spool), stages)
        feeder.start()
        feeder.go[0].set()
        # The worker turns the first stage into windows before the broker goes.
        first_windows = set(reference_windows(drill, stages[0]))
        consume(drill.bootstrap, [drill.topic_features], until=has_windows(first_windows), timeout_s=60,
                abort=lambda: not worker.alive())  # fmt: skip
        assert worker.alive(), worker.log_tail()

        broker.stop()
        feeder.go[1].set()  # input keeps coming while Kafka is gone
        assert feeder.done[1].wait(60) and feeder.error is None, feeder.error
        spooled = spool.depth
        broker.start(wait=True, timeout=120)
        feeder.go[2].set()
        assert feeder.done[2].wait(60) and feeder.error is None, feeder.error
        wait_for(lambda: spool.depth == 0, 60, "the spool to drain")

        windows = consume(drill.bootstrap, [drill.topic_features], until=has_windows(set(expected)), timeout_s=60,
                          abort=lambda: not worker.alive())  # fmt: skip
        raw = read_raw(drill.bootstrap, drill.topic_raw)
        worker_survived = worker.alive()
    finally:
        if feeder is not None:
            feeder.finished.set()
            feeder.join(10)
        if worker is not None:
            worker.stop()
        spool.close()
        broker.stop()

    assert spooled > 0.5 * len(stages[1]), f"only {spooled} batches waited in the spool: was the broker down?"
    assert worker_survived, f"the worker exited during the broker outage:\n{worker.log_tail()}"
    want = Counter((b.session_id, b.seq, encode_raw(b)) for b in batches)
    missing, extra = want - raw, raw - want
    assert not missing and not extra, f"{sum(missing.values())} batches missing, {sum(extra.values())} extra copies"
    assert windows_by_id(windows) == expected
