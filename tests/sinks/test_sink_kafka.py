"""The sinks worker on the real broker: SIEM topic contents, dead-lettering, and a crash drill."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import orjson
import pytest
import yaml
from confluent_kafka import Consumer, Producer
from ecs_check import assert_ecs_alert
from sink_receivers import PD_ERROR

from touchstone.config import Settings
from touchstone.contracts import Level, encode_alert
from touchstone.kafka import consumer_lag
from touchstone.sinks.metrics import SinkMetrics
from touchstone.sinks.testing import alert_sequence, make_alert
from touchstone.sinks.worker import CRASH_ENV, run_sinks

pytestmark = [pytest.mark.kafka]

REPO = Path(__file__).resolve().parents[2]


def produce(bootstrap: str, topic: str, payloads: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for key, value in payloads:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(15.0) == 0


def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 20.0) -> list[bytes]:
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex[:8]}",
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
    })  # fmt: skip
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < count and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=count, timeout=0.5):
                if message.error() is None:
                    values.append(message.value())
    finally:
        consumer.close()
    return values


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def sink_settings(settings: Settings, tmp_path) -> Settings:
    return settings.replace(state_dir=str(tmp_path / "state"))


class WorkerThread:
    """run_sinks in a thread of this process, stopped through its stop event."""

    def __init__(self, settings: Settings, routes: dict) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.totals = None
        self.metrics = SinkMetrics()

        def target() -> None:
            try:
                self.totals = run_sinks(
                    settings, routes, stop_event=self.stop, metrics=self.metrics, create_topics=False
                )
            except BaseException as exc:  # surfaced by join()
                self.error = exc

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def join(self) -> None:
        self.stop.set()
        self.thread.join(15.0)
        assert not self.thread.is_alive(), "worker did not stop"
        if self.error is not None:
            raise self.error


@pytest.mark.timeout(60)
def test_every_alert_of_a_run_reaches_the_siem_topic_as_ecs(sink_settings):
    alerts = alert_sequence(sessions=5, per_session=6)
    produce(sink_settings.bootstrap, sink_settings.topic_alerts,
            [(a.session_id.encode(), encode_alert(a)) for a in alerts])  # fmt: skip
    group = f"sinks-{uuid.uuid4().hex[:8]}"
    routes = {"sinks": {"siem": {"type": "siem"}}, "routes": [{"sinks": ["siem"]}],
              "worker": {"group_id": group, "batch_s": 0.3}}  # fmt: skip
    worker = WorkerThread(sink_settings, routes)
    try:
        documents = [
            orjson.loads(v) for v in read_topic(sink_settings.bootstrap, sink_settings.topic_siem, len(alerts))
        ]
        wait_until(lambda: consumer_lag(sink_settings.bootstrap, group, sink_settings.topic_alerts) == 0, 15.0,
                   "the worker to commit")  # fmt: skip
    finally:
        worker.join()
    by_id = {a.alert_id: a for a in alerts}
    assert sorted(d["event"]["id"] for d in documents) == sorted(by_id)  # each alert once, none missing
    for doc in documents:
        assert_ecs_alert(doc, by_id[doc["event"]["id"]])
    assert worker.totals.alerts == len(alerts) and worker.totals.delivered == len(alerts)
    value = worker.metrics.value
    assert value("touchstone_sinks_messages_total", outcome="alert") == len(alerts)
    assert value("touchstone_sink_alerts_in_total", sink="siem", type="siem") == len(alerts)
    assert value("touchstone_sink_delivered_total", sink="siem", type="siem") == len(alerts)
    assert value("touchstone_sink_delivery_seconds_count", sink="siem", type="siem") == len(alerts)
    assert value("touchstone_sink_dead_lettered_total", sink="siem", type="siem") == 0


@pytest.mark.timeout(60)
def test_undeliverable_alerts_land_on_the_dead_letter_topic_and_are_committed(
    sink_settings, receiver_factory, monkeypatch
):
    down = receiver_factory(PD_ERROR, "/v2/enqueue")
    monkeypatch.setenv("TS_TEST_PD_KEY", "pd-test-key")
    alerts = [make_alert(alert_id=f"dl-{i}", session_id=f"dl-s{i}") for i in range(3)]
    payloads = [(a.session_id.encode(), encode_alert(a)) for a in alerts] + [(b"junk", b"\xff\xfe not an alert")]
    produce(sink_settings.bootstrap, sink_settings.topic_alerts, payloads)
    group = f"sinks-{uuid.uuid4().hex[:8]}"
    routes = {
        "defaults": {"delivery": {"max_attempts": 2, "base_delay_s": 0.0, "max_delay_s": 0.0, "timeout_s": 2.0,
                                  "breaker_failures": 50}},
        "sinks": {"pager": {"type": "pagerduty", "routing_key_env": "TS_TEST_PD_KEY", "url": down.url}},
        "routes": [{"sinks": ["pager"], "min_level": "high"}],
        "worker": {"group_id": group, "batch_s": 0.3},
    }  # fmt: skip
    worker = WorkerThread(sink_settings, routes)
    try:
        entries = [orjson.loads(v) for v in read_topic(sink_settings.bootstrap, sink_settings.topic_dead_letter, 4)]
        wait_until(lambda: consumer_lag(sink_settings.bootstrap, group, sink_settings.topic_alerts) == 0, 15.0,
                   "the worker to commit")  # fmt: skip
    finally:
        worker.join()
    delivery = sorted((e for e in entries if "sink" in e), key=lambda e: e["alert_id"])
    assert [(e["alert_id"], e["sink"], e["reason"], e["attempts"]) for e in delivery] == [
        (f"dl-{i}", "pager", "exhausted", 2) for i in range(3)
    ]
    assert all("HTTP 500" in e["detail"] and e["source_topic"] == sink_settings.topic_alerts for e in delivery)
    assert [base64.b64decode(e["value"]) for e in delivery] == [encode_alert(a) for a in alerts]
    assert [base64.b64decode(e["key"]) for e in delivery] == [a.session_id.encode() for a in alerts]
    (invalid,) = [e for e in entries if "sink" not in e]
    assert invalid["reason"] == "not_json" and base64.b64decode(invalid["value"]) == b"\xff\xfe not an alert"
    assert len(down.requests) == 6
    assert worker.metrics.value("touchstone_sink_dead_lettered_total", sink="pager", type="pagerduty") == 3
    assert worker.metrics.value("touchstone_sink_retried_total", sink="pager", type="pagerduty") == 3


# --- the acceptance drill: kill after delivery, before commit ----------------------------------------


def start_worker(settings: Settings, routes_file: Path, log_file: Path, *, crash: str | None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOUCHSTONE_")}
    env.update({
        "TOUCHSTONE_BOOTSTRAP": settings.bootstrap,
        "TOUCHSTONE_TOPIC_ALERTS": settings.topic_alerts,
        "TOUCHSTONE_TOPIC_SIEM": settings.topic_siem,
        "TOUCHSTONE_TOPIC_DEAD_LETTER": settings.topic_dead_letter,
        "TOUCHSTONE_STATE_DIR": settings.state_dir,
        "TOUCHSTONE_LOG_LEVEL": "INFO",
        "TS_TEST_PD_KEY": "pd-drill-key",
    })  # fmt: skip
    if crash:
        env[CRASH_ENV] = crash
    with log_file.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "touchstone.sinks.cli", "--routes", str(routes_file)],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip


@pytest.mark.timeout(90)
def test_a_worker_killed_between_delivery_and_commit_pages_once_and_loses_nothing(sink_settings, pager, tmp_path):
    group = f"sinks-drill-{uuid.uuid4().hex[:8]}"
    routes_file = tmp_path / "routes.yaml"
    routes_file.write_text(yaml.safe_dump({
        "sinks": {"pager": {"type": "pagerduty", "routing_key_env": "TS_TEST_PD_KEY", "url": pager.url}},
        "routes": [{"sinks": ["pager"], "min_level": "high"}],
        # Static membership: the restarted worker takes its partitions back without waiting out a session.
        "worker": {"group_id": group, "batch_s": 0.5, "instance_id": f"{group}-1", "session_timeout_ms": 10000},
    }))  # fmt: skip
    before = [make_alert(alert_id=f"drill-{i}", session_id=f"drill-s{i}", level=Level.HIGH) for i in range(3)]
    produce(
        sink_settings.bootstrap, sink_settings.topic_alerts, [(a.session_id.encode(), encode_alert(a)) for a in before]
    )
    topic = sink_settings.topic_alerts

    log_file = tmp_path / "worker.log"
    first = start_worker(sink_settings, routes_file, log_file, crash="pause")
    try:
        wait_until(lambda: b"fault injection: paused" in log_file.read_bytes(), 40.0, "a delivery then the pause")
        delivered_before_kill = len(pager.requests)
        assert delivered_before_kill >= 1
        assert consumer_lag(sink_settings.bootstrap, group, topic) == len(before)  # delivered, not committed
        first.send_signal(signal.SIGKILL)
        assert first.wait(10.0) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()

    after = [make_alert(alert_id=f"drill-{i}", session_id=f"drill-s{i}", level=Level.HIGH) for i in range(3, 5)]
    produce(sink_settings.bootstrap, topic, [(a.session_id.encode(), encode_alert(a)) for a in after])

    second = start_worker(sink_settings, routes_file, log_file, crash=None)
    try:
        wait_until(lambda: consumer_lag(sink_settings.bootstrap, group, topic) == 0, 40.0, "the restarted worker")
        time.sleep(1.0)  # room for a duplicate page to show up, if there were one
        second.send_signal(signal.SIGTERM)
        assert second.wait(15.0) == 0
    finally:
        if second.poll() is None:
            second.kill()
    keys = sorted(body["dedup_key"] for body in pager.bodies())
    assert keys == sorted(a.session_id for a in before + after), log_file.read_text()[-3000:]
    assert all(body["event_action"] == "trigger" for body in pager.bodies())
    assert b"sinks stopped: " in log_file.read_bytes()
