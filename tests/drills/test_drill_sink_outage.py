"""Fault drill: the webhook receiver goes away (connection refused), comes back sick (503), then recovers.

Alerts keep arriving through the outage. With a retry budget longer than the outage, the sinks
worker must deliver every alert exactly once after recovery and dead-letter nothing.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from drill_kit import wait_for

from touchstone.config import Settings
from touchstone.contracts import encode_alert
from touchstone.kafka import consumer_lag, free_port
from touchstone.kafka.io import consume, make_producer, produce_values
from touchstone.procs import start_touchstone
from touchstone.sinks.testing import make_alert

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

REFUSED_S = 2.5
SICK_S = 2.5


class Hook:
    """A webhook receiver on a fixed port that can be taken down (refusing connections) and brought back
    answering a chosen status. Records (alert id, status answered) per request."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.status = 200
        self.answers: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/touchstone"

    def up(self, status: int) -> None:
        self.status = status
        if self._server is not None:
            return
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = hook.status
                with hook._lock:
                    hook.answers.append((self.headers.get("X-Touchstone-Alert-Id", "?"), status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()  # the port now refuses connections
            self._server = None

    def accepted(self) -> Counter:
        with self._lock:
            return Counter(alert_id for alert_id, status in self.answers if status == 200)

    def refusals(self) -> int:
        with self._lock:
            return sum(1 for _, status in self.answers if status != 200)


@pytest.mark.timeout(90)
def test_alerts_arriving_during_a_receiver_outage_are_delivered_once_after_it(settings: Settings, tmp_path: Path):
    drill = settings.replace(state_dir=str(tmp_path / "state"))
    hook = Hook(free_port())
    group = f"drill-sinks-{uuid.uuid4().hex[:6]}"
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        yaml.safe_dump({
            "version": 1,
            # The budget outlasts the outage: many quick attempts, no breaker trip, a long deadline.
            "defaults": {"delivery": {
                "timeout_s": 2.0, "max_attempts": 200, "base_delay_s": 0.05, "max_delay_s": 0.4,
                "deadline_s": 45.0, "breaker_failures": 10_000, "breaker_reset_s": 1.0,
            }},
            "sinks": {"hook": {"type": "webhook", "url_env": "DRILL_HOOK_URL"}},
            "routes": [{"name": "all", "sinks": ["hook"]}],
            "worker": {"group_id": group, "batch_s": 0.2},
        })
    )  # fmt: skip
    producer = make_producer(drill.bootstrap)
    sent: list[str] = []

    def send(n: int, tag: str) -> None:
        alerts = [make_alert(alert_id=f"{tag}-{i}", session_id=f"{tag}-s{i % 3}") for i in range(n)]
        produce_values(producer, drill.topic_alerts, [(a.session_id.encode(), encode_alert(a)) for a in alerts])
        assert producer.flush(10) == 0
        sent.extend(a.alert_id for a in alerts)

    hook.up(200)
    worker = start_touchstone(
        "sinks", ["sinks", "--routes", str(routes)], drill, tmp_path, extra_env={"DRILL_HOOK_URL": hook.url}
    )
    try:
        send(1, "warm")  # the worker is consuming before the receiver fails
        wait_for(lambda: hook.accepted()["warm-0"] == 1, 40, "the first delivery", every=0.05)

        hook.down()
        outage_started = time.monotonic()
        tick = 0
        while time.monotonic() - outage_started < REFUSED_S + SICK_S:
            if hook.status == 200 and time.monotonic() - outage_started >= REFUSED_S:
                hook.up(503)  # back on its port, but answering "service unavailable"
            send(3, f"out{tick}")
            tick += 1
            time.sleep(0.25)
        refusals_during_outage = hook.refusals()
        hook.status = 200
        send(3, "after")

        wait_for(lambda: set(hook.accepted()) >= set(sent), 40, "every alert to be delivered", every=0.1)
        wait_for(lambda: consumer_lag(drill.bootstrap, group, drill.topic_alerts) == 0, 20, "the worker to commit")
        time.sleep(1.0)  # room for a duplicate delivery to show up, if there were one
        assert worker.alive(), worker.log_tail()
    finally:
        worker.stop()
        hook.down()

    accepted = hook.accepted()
    log = worker.log_path.read_text(errors="replace")
    assert sorted(accepted) == sorted(sent), "alerts missing or unexpected"
    repeated = {alert_id: n for alert_id, n in accepted.items() if n != 1}
    assert not repeated, f"delivered more than once: {repeated}"
    assert "Connection refused" in log, "the outage never refused a connection"
    assert refusals_during_outage > 0 or hook.refusals() > 0, "the receiver never answered 503"
    letters = consume(drill.bootstrap, [drill.topic_dead_letter], idle_s=1.0, timeout_s=3.0)
    assert not letters, f"{len(letters)} alert(s) dead-lettered"
    assert f"{len(sent)} delivered, 0 dead-lettered" in log, worker.log_tail()
