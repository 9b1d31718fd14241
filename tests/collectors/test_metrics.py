"""The collector's Prometheus metrics, scraped over HTTP from a running collector."""

from __future__ import annotations

import threading
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from touchstone.collectors.batcher import MOVE, PRESS, RELEASE, SCROLL, BatchPolicy
from touchstone.collectors.capture import KEY, MOUSE
from touchstone.collectors.collect import QueueSource, run_collector
from touchstone.collectors.metrics import CollectorMetrics
from touchstone.config import Settings
from touchstone.kafka import free_port

FAST = BatchPolicy(max_events=20, max_interval_s=0.05, heartbeat_s=0.5)
DEAD_BOOTSTRAP = "127.0.0.1:9"
COUNTS = {"key_press": 7, "key_release": 6, "mouse_move": 40, "mouse_press": 3, "mouse_release": 2, "mouse_scroll": 4}


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def feed_every_type(source: QueueSource) -> None:
    now = time.monotonic_ns
    for i in range(COUNTS["key_press"]):
        source.queue.put((KEY, now(), True, "L.home"))
        if i < COUNTS["key_release"]:
            source.queue.put((KEY, now(), False, "L.home"))
    for i in range(COUNTS["mouse_move"]):
        source.queue.put((MOUSE, now(), MOVE, float(i), 2.0, 0))
    for kind, n in ((PRESS, 3), (RELEASE, 2)):
        for _ in range(n):
            source.queue.put((MOUSE, now(), kind, 1.0, 2.0, 1))
    for _ in range(COUNTS["mouse_scroll"]):
        source.queue.put((MOUSE, now(), SCROLL, 1.0, 2.0, -1))


def wait_for(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.kafka
def test_metrics_endpoint_reports_captures_deliveries_and_spool(settings, tmp_path):
    port = free_port()
    source = QueueSource()
    stop = threading.Event()
    started = time.time()
    runner = threading.Thread(
        target=run_collector,
        kwargs=dict(settings=settings.replace(state_dir=str(tmp_path)), user="ann", source=source, stop_event=stop,
                    metrics_port=port, policy=FAST),
        daemon=True,
    )  # fmt: skip
    runner.start()
    try:
        assert wait_for(lambda: _answers(port)), "no /metrics endpoint"
        feed_every_type(source)
        sent = ("touchstone_collector_batches_sent_total", (("topic", settings.topic_raw),))
        assert wait_for(lambda: scrape(port).get(sent, 0) >= 2), scrape(port)
        assert wait_for(lambda: scrape(port)[("touchstone_collector_spool_depth", ())] == 0)
        samples = scrape(port)
    finally:
        stop.set()
        runner.join(30)
    captured = {
        dict(labels)["type"]: value
        for (name, labels), value in samples.items()
        if name == "touchstone_collector_events_captured_total"
    }
    assert captured == COUNTS
    assert samples[("touchstone_collector_spool_bytes", ())] == 0
    assert samples[("touchstone_collector_listener_dropped_total", ())] == 0
    assert started <= samples[("touchstone_collector_last_delivery_timestamp_seconds", ())] <= time.time()
    assert not any(name == "touchstone_collector_delivery_errors_total" for name, _ in samples)
    assert not _answers(port), "the metrics server outlived the collector"


def _answers(port: int) -> bool:
    try:
        scrape(port)
    except OSError:
        return False
    return True


def test_an_unreachable_broker_shows_as_kafka_errors_spool_growth_and_no_delivery(tmp_path):
    metrics = CollectorMetrics()
    source = QueueSource()
    feed_every_type(source)
    settings = Settings(bootstrap=DEAD_BOOTSTRAP, state_dir=str(tmp_path))
    report = run_collector(settings, user="ann", source=source, duration_s=1.5, policy=FAST, metrics=metrics,
                           flush_timeout_s=0.2)  # fmt: skip
    assert report.delivered == 0 and report.spool_left > 0
    assert metrics.value("touchstone_collector_spool_depth") == report.spool_left
    assert metrics.value("touchstone_collector_spool_bytes") > 0
    assert metrics.value("touchstone_collector_last_delivery_timestamp_seconds") == 0
    codes = {
        s.labels["code"]
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name == "touchstone_collector_kafka_errors_total" and s.value > 0
    }
    assert codes, "the outage left no trace in touchstone_collector_kafka_errors"
