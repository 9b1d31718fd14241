from __future__ import annotations

import pytest
from sink_receivers import PD_ERROR, PD_INVALID, PD_THROTTLED, Reply

from touchstone.contracts import Level
from touchstone.sinks.base import Outcome
from touchstone.sinks.delivery import DeliveryPolicy
from touchstone.sinks.pagerduty import PD_SEVERITY, PagerDutySink
from touchstone.sinks.secrets import Secret
from touchstone.sinks.testing import make_alert

pytestmark = pytest.mark.timeout(30)

ROUTING_KEY = "R0123456789ABCDEFGHIJ0123456789A"


def pd_sink(receiver, store, metrics, sleeps, **policy) -> PagerDutySink:
    return PagerDutySink(
        "on-call",
        routing_key=Secret(ROUTING_KEY, source="test"),
        url=receiver.url,
        component="workstation-session",
        link_template="https://siem.example/s/{session_id}",
        store=store,
        metrics=metrics,
        sleep=sleeps,
        policy=DeliveryPolicy(**{"timeout_s": 2.0, "base_delay_s": 0.01, "max_delay_s": 0.05, **policy}),
    )


def test_trigger_payload_is_exact(pager, store, metrics, sleeps):
    result = pd_sink(pager, store, metrics, sleeps).deliver(make_alert())
    assert result.outcome is Outcome.DELIVERED
    (request,) = pager.requests
    assert request.path == "/v2/enqueue" and request.headers["content-type"] == "application/json"
    assert request.json() == {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "s1",
        "payload": {
            "summary": (
                "High risk 82/100: the keystroke dynamics in session s1 on ws-12 do not match alice; most deviant: "
                "hold_mean 212 vs typical 95 (+4.1σ), digraph_th_ms 41 vs typical 88 (-3.3σ), "
                "flight_p90 380 vs typical 240 (+2.7σ)"
            ),
            "source": "ws-12",
            "severity": "error",
            "timestamp": "2026-01-01T00:00:00.000Z",
            "component": "workstation-session",
            "class": "behavioural authentication (keystroke dynamics)",
            "custom_details": {
                "user": "alice",
                "host": "ws-12",
                "session_id": "s1",
                "risk": 82.0,
                "level": "high",
                "modality": "keys",
                "session_age_s": 750.0,
                "windows_seen": 14,
                "why": [
                    "hold_mean 212 vs typical 95 (+4.1σ)",
                    "digraph_th_ms 41 vs typical 88 (-3.3σ)",
                    "flight_p90 380 vs typical 240 (+2.7σ)",
                ],
                "scores": {"keys": 0.91, "fused": 0.88},
                "alert_id": "alert-s1-high-1",
                "model_version": "test-1",
                "alerts_in_update": 1,
                "previous_level": None,
            },
        },
        "client": "Touchstone",
        "client_url": "https://siem.example/s/s1",
        "links": [{"href": "https://siem.example/s/s1", "text": "Session in the SIEM"}],
    }


@pytest.mark.parametrize(
    ("level", "severity"),
    [(Level.CRITICAL, "critical"), (Level.HIGH, "error"), (Level.MEDIUM, "warning"), (Level.LOW, "info")],
)
def test_severity_follows_the_level(pager, store, metrics, sleeps, level, severity):
    pd_sink(pager, store, metrics, sleeps).deliver(make_alert(level=level))
    assert pager.requests[0].json()["payload"]["severity"] == severity == PD_SEVERITY[level]


def test_one_incident_per_session_then_resolve(pager, store, metrics, sleeps):
    sink = pd_sink(pager, store, metrics, sleeps)
    sink.deliver(make_alert(alert_id="a1", level=Level.HIGH))
    sink.deliver(make_alert(alert_id="a2", level=Level.HIGH, status="update"))  # same incident, same level
    sink.deliver(make_alert(alert_id="a3", level=Level.CRITICAL, status="update"))
    sink.deliver(make_alert(alert_id="a4", level=Level.NONE, status="resolved", risk=3.0))
    bodies = pager.bodies()
    assert [(b["event_action"], b["dedup_key"]) for b in bodies] == [
        ("trigger", "s1"),
        ("trigger", "s1"),
        ("resolve", "s1"),
    ]
    assert bodies[1]["payload"]["severity"] == "critical"
    assert bodies[1]["payload"]["custom_details"]["previous_level"] == "high"
    assert bodies[2] == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "s1"}


def test_resolve_of_a_session_never_paged_sends_nothing(pager, store, metrics, sleeps):
    result = pd_sink(pager, store, metrics, sleeps).deliver(make_alert(status="resolved", level=Level.NONE))
    assert result.outcome is Outcome.COALESCED and pager.requests == []


@pytest.mark.parametrize("fault", [PD_THROTTLED, PD_ERROR, Reply(502, b"bad gateway")])
def test_transient_answers_are_retried(pager, store, metrics, sleeps, fault):
    pager.script[:] = [fault, fault]
    result = pd_sink(pager, store, metrics, sleeps).deliver(make_alert())
    assert result.outcome is Outcome.DELIVERED and result.attempts == 3
    bodies = pager.bodies()
    assert len(bodies) == 3 and bodies[0] == bodies[2]  # the same event each time
    assert len(sleeps.calls) == 2


def test_invalid_event_is_not_retried(pager, store, metrics, sleeps):
    pager.script[:] = [PD_INVALID]
    result = pd_sink(pager, store, metrics, sleeps).deliver(make_alert())
    assert result.outcome is Outcome.FAILED and result.error.reason == "permanent"
    assert "Event object is invalid" in str(result.error)
    assert len(pager.requests) == 1


def test_the_routing_key_is_never_in_errors(pager, store, metrics, sleeps):
    pager.respond = lambda _request: PD_ERROR
    sink = pd_sink(pager, store, metrics, sleeps, max_attempts=2)
    result = sink.deliver(make_alert())
    assert ROUTING_KEY not in str(result.error) and ROUTING_KEY not in repr(sink._routing_key)
