"""Fault drill: the broker dies while the collector runs and comes back; nothing is lost or reordered.

Uses a broker of its own (free ports, temporary data dir) so the shared test broker is untouched.
Input is synthetic (a queue the test fills, as the listeners would), so no X server is needed.
"""

from __future__ import annotations

import threading
import time

import pytest
from kafka_readback import dedup, read_batches

from touchstone.collectors.batcher import BatchPolicy
from touchstone.collectors.capture import MOUSE
from touchstone.collectors.collect import QueueSource, run_collector
from touchstone.collectors.metrics import CollectorMetrics
from touchstone.config import Settings
from touchstone.contracts import MouseKind
from touchstone.kafka import LocalBroker, ensure_topics, free_port

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

EVENT_RATE_HZ = 200
OUTAGE_S = 4.0


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def feed(source: QueueSource, stop: threading.Event, counter: list[int]) -> None:
    """Mouse moves whose x is their index: the order and completeness of delivery can be read back."""
    period = 1.0 / EVENT_RATE_HZ
    next_at = time.monotonic()
    while not stop.is_set():
        i = counter[0]
        source.queue.put((MOUSE, time.monotonic_ns(), int(MouseKind.MOVE), float(i), float(i % 1000), 0))
        counter[0] = i + 1
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))


def test_broker_outage_loses_nothing_and_keeps_order(tmp_path):
    port, controller = free_port(), free_port()
    broker = LocalBroker(port=port, controller_port=controller, data_dir=tmp_path / "kafka")
    broker.start(wait=True, timeout=120)
    try:
        settings = Settings(bootstrap=broker.bootstrap, topic_raw="outage.raw", state_dir=str(tmp_path / "state"))
        ensure_topics(settings, topics=[settings.topic_raw])
        source = QueueSource()
        metrics = CollectorMetrics()
        stop_feed, stop_collector = threading.Event(), threading.Event()
        counter = [0]
        result = {}
        collector = threading.Thread(
            target=lambda: result.setdefault(
                "report",
                run_collector(
                    settings, user="ann", source=source, stop_event=stop_collector, metrics=metrics,
                    policy=BatchPolicy(max_events=50, max_interval_s=0.1, heartbeat_s=1.0),
                ),
            ),
            daemon=True,
        )  # fmt: skip
        feeder = threading.Thread(target=feed, args=(source, stop_feed, counter), daemon=True)
        collector.start()
        feeder.start()

        sent = ("touchstone_collector_batches_sent_total", settings.topic_raw)
        assert wait_for(lambda: metrics.value(sent[0], topic=sent[1]) >= 5, 20), "nothing delivered with the broker up"
        broker.stop()
        stopped_at = counter[0]
        time.sleep(OUTAGE_S)  # input keeps coming while Kafka is gone
        depth_during_outage = metrics.value("touchstone_collector_spool_depth")
        bytes_during_outage = metrics.value("touchstone_collector_spool_bytes")
        errors_during_outage = sum(
            s.value
            for family in metrics.registry.collect()
            for s in family.samples
            if s.name == "touchstone_collector_kafka_errors_total"
        )
        broker.start(wait=True, timeout=120)
        # the spool drains, then new input keeps flowing for a moment
        assert wait_for(lambda: metrics.value("touchstone_collector_spool_depth") < 3, 60), "the spool did not drain"
        drained_at = counter[0]
        time.sleep(1.0)
        stop_feed.set()
        feeder.join(5)
        stop_collector.set()
        collector.join(90)
        assert not collector.is_alive()
        report = result["report"]
        total = counter[0]

        assert total - stopped_at > OUTAGE_S * EVENT_RATE_HZ * 0.8, "the feeder stopped during the outage"
        assert total - drained_at > 100, "no input after the spool drained"
        assert depth_during_outage > 20 and bytes_during_outage > 0, "the outage did not push batches into the spool"
        assert errors_during_outage > 0, "the outage left no trace in the Kafka error metric"
        assert report.spool_left == 0 and report.listener_dropped == 0

        batches = read_batches(broker.bootstrap, settings.topic_raw, until_end=1, timeout=60)
        # A copy of a batch (a send whose acknowledgement was lost) is the same bytes under the same
        # (session, seq), so dropping repeats of a seq, as the pipeline does, loses nothing.
        first_copy: dict[int, bytes] = {}
        for msg, batch in batches:
            assert first_copy.setdefault(batch.seq, msg.value()) == msg.value(), f"seq {batch.seq} reused"
        duplicates = len(batches) - len(first_copy)
        kept = dedup(batches)
        assert {b.session_id for b in kept} == {report.session_ids[0]}
        assert [b.seq for b in kept] == list(range(len(kept))), "batches out of order or missing"
        xs = [float(x) for b in kept for x in b.mouse.x]
        assert xs == [float(i) for i in range(total)], "events lost, duplicated or reordered"
        assert kept[-1].end
        assert duplicates <= 64, f"{duplicates} duplicates: more than one producer window was resent"
    finally:
        broker.stop()
