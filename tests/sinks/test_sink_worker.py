"""The worker's batch logic without a broker: routing, delivery, dead-lettering, idempotent replays."""

from __future__ import annotations

import base64
import io

import orjson
import pytest
from sink_receivers import PD_ERROR, pd_accepted

from touchstone.contracts import Level, encode_alert
from touchstone.errors import DeliveryError
from touchstone.sinks.jsonl import JsonlSink
from touchstone.sinks.metrics import SinkMetrics
from touchstone.sinks.routing import BuildContext, build_sinks, load_routes
from touchstone.sinks.store import DeliveryStore
from touchstone.sinks.testing import alert_sequence, make_alert
from touchstone.sinks.topic import MemoryTopicWriter
from touchstone.sinks.worker import SinkWorker

pytestmark = pytest.mark.timeout(30)


class FakeRecord:
    def __init__(self, value: bytes | None, offset: int, partition: int = 0, topic: str = "alerts") -> None:
        self._value, self._offset, self._partition, self._topic = value, offset, partition, topic

    def key(self) -> bytes:
        return f"key-{self._offset}".encode()

    def value(self) -> bytes | None:
        return self._value

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


def records(payloads: list[bytes | None]) -> list[FakeRecord]:
    return [FakeRecord(payload, offset) for offset, payload in enumerate(payloads)]


def routes(pager_url: str) -> dict:
    return {
        "defaults": {"delivery": {"max_attempts": 2, "base_delay_s": 0.0, "max_delay_s": 0.0, "timeout_s": 2.0}},
        "sinks": {
            "siem": {"type": "siem"},
            "pager": {"type": "pagerduty", "routing_key_env": "PD_KEY", "url": pager_url},
        },
        "routes": [{"sinks": ["siem"]}, {"sinks": ["pager"], "min_level": "high"}],
    }


def make_worker(pager_url: str, store: DeliveryStore, monkeypatch, dead_letter=None):
    monkeypatch.setenv("PD_KEY", "pd-routing-key")
    config = load_routes(routes(pager_url))
    metrics = SinkMetrics()
    siem = MemoryTopicWriter("siem")
    sinks = build_sinks(config, BuildContext(store, metrics, lambda _t: siem, "siem", sleep=lambda _s: None))
    dlq = dead_letter or MemoryTopicWriter("dlq")
    return SinkWorker(config, sinks, dead_letter=dlq, store=store, metrics=metrics), siem, dlq, metrics


def test_a_batch_is_routed_and_undecodable_input_dead_lettered(pager, store, monkeypatch):
    worker, siem, dlq, metrics = make_worker(pager.url, store, monkeypatch)
    low, high = make_alert(alert_id="low", level=Level.LOW), make_alert(alert_id="high", session_id="s9")
    report = worker.process(records([encode_alert(low), b"{not json", None, encode_alert(high)]))
    assert report.alerts == 2 and report.invalid == 2 and report.dead_lettered == 0
    assert len(siem.records) == 2
    assert [b["dedup_key"] for b in pager.bodies()] == ["s9"]  # only the high one pages
    entries = [orjson.loads(value) for _, value in dlq.records]
    assert [(e["reason"], e["offset"], e["value"]) for e in entries] == [
        ("not_json", 1, base64.b64encode(b"{not json").decode()),
        ("empty", 2, None),
    ]
    assert [key for key, _ in dlq.records] == [b"key-1", b"key-2"]  # the original keys
    assert all(e["source_topic"] == "alerts" and "sink" not in e for e in entries)
    assert metrics.value("touchstone_sinks_messages_total", outcome="invalid") == 2
    assert metrics.value("touchstone_sink_alerts_in_total", sink="siem", type="siem") == 2


def test_an_undeliverable_alert_goes_to_the_dead_letter_topic_with_its_error(receiver_factory, store, monkeypatch):
    down = receiver_factory(PD_ERROR, "/v2/enqueue")
    worker, siem, dlq, metrics = make_worker(down.url, store, monkeypatch)
    alert = make_alert()
    report = worker.process(records([encode_alert(alert)]))
    assert report.dead_lettered == 1 and len(siem.records) == 1  # the SIEM still got it
    assert len(down.requests) == 2  # max_attempts
    ((key, value),) = dlq.records
    entry = orjson.loads(value)
    assert key == b"key-0"
    assert (entry["schema"], entry["stage"], entry["source_topic"], entry["offset"]) == ("deadletter/1", "sinks",
                                                                                        "alerts", 0)  # fmt: skip
    assert (entry["sink"], entry["sink_type"], entry["reason"], entry["attempts"], entry["alert_id"]) == (
        "pager", "pagerduty", "exhausted", 2, alert.alert_id,
    )  # fmt: skip
    assert "HTTP 500" in entry["detail"]
    assert base64.b64decode(entry["value"]) == encode_alert(alert)  # kept whole, ready to replay
    assert store.outcome("pager", alert.alert_id) == "dead_lettered"
    assert metrics.value("touchstone_sink_dead_lettered_total", sink="pager", type="pagerduty") == 1
    # Replayed (or re-read after a crash): the SIEM copy is a duplicate, the pager is tried afresh.
    down.respond = lambda _request: pd_accepted("s1")
    again = worker.process(records([encode_alert(alert)]))
    assert again.outcomes == {"duplicate": 1, "delivered": 1} and len(dlq.records) == 1
    assert store.outcome("pager", alert.alert_id) == "delivered"


def test_a_failing_dead_letter_write_stops_the_batch(receiver_factory, store, monkeypatch):
    class Broken:
        topic = "dlq"

        def write(self, value, *, key, timeout):
            raise DeliveryError("no acknowledgement from dlq within 30.0s")

    down = receiver_factory(PD_ERROR, "/v2/enqueue")
    worker, *_ = make_worker(down.url, store, monkeypatch, dead_letter=Broken())
    with pytest.raises(DeliveryError):
        worker.process(records([encode_alert(make_alert())]))
    assert store.outcome("pager", make_alert().alert_id) is None  # not settled: it will be retried
    assert all(sink.discard_pending() == 0 for sink in worker.sinks.values())  # nothing left behind


def test_a_restarted_worker_replays_the_uncommitted_batch_without_repaging(pager, tmp_path, monkeypatch):
    path = tmp_path / "sinks" / "delivered.sqlite3"
    alerts = alert_sequence(sessions=3, per_session=4)
    batch = records([encode_alert(a) for a in alerts])
    first_store = DeliveryStore(path)
    first, *_ = make_worker(pager.url, first_store, monkeypatch)
    first.process(batch)
    paged = len(pager.requests)
    # Per session: one trigger (high and critical arrive in one batch: paged at critical) and a resolve.
    assert [b["event_action"] for b in pager.bodies()] == ["trigger", "resolve"] * 3
    routed = sum(len(first.config.targets(a)) for a in alerts)
    first_store.close()  # the worker dies here, before committing offsets

    second_store = DeliveryStore(path)
    second, siem, _, _ = make_worker(pager.url, second_store, monkeypatch)
    report = second.process(batch)
    assert len(pager.requests) == paged
    assert report.outcomes == {"duplicate": routed}
    assert siem.records == []  # the SIEM copies were also already delivered
    second_store.close()


def test_unrouted_sinks_are_not_flushed(store):
    config = load_routes({"sinks": {"out": {"type": "jsonl"}}, "routes": [{"sinks": ["out"], "min_level": "high"}]})
    stream = io.StringIO()
    sink = JsonlSink("out", stream=stream, store=store)
    worker = SinkWorker(config, {"out": sink}, dead_letter=MemoryTopicWriter(), store=store, metrics=SinkMetrics())
    report = worker.process(records([encode_alert(make_alert(level=Level.LOW))]))
    assert report.alerts == 1 and report.outcomes == {} and stream.getvalue() == ""
