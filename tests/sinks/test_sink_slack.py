from __future__ import annotations

import logging

import pytest
from sink_receivers import SLACK_ERROR, SLACK_INVALID, Reply, slack_rate_limited

from touchstone.contracts import Level
from touchstone.sinks.base import Outcome
from touchstone.sinks.delivery import DeliveryPolicy
from touchstone.sinks.secrets import Secret
from touchstone.sinks.slack import SlackSink
from touchstone.sinks.store import DeliveryStore
from touchstone.sinks.testing import make_alert

pytestmark = pytest.mark.timeout(30)

LINK = "https://siem.example/sessions/{session_id}?user={user}"


def slack_sink(receiver, store, metrics, sleeps, **policy) -> SlackSink:
    return SlackSink(
        "team",
        url=Secret(receiver.url, source="test"),
        link_template=LINK,
        store=store,
        metrics=metrics,
        sleep=sleeps,
        policy=DeliveryPolicy(**{"timeout_s": 2.0, "base_delay_s": 0.01, "max_delay_s": 0.05, **policy}),
    )


def test_exact_block_kit_payload(slack, store, metrics, sleeps):
    result = slack_sink(slack, store, metrics, sleeps).deliver(make_alert())
    assert result.outcome is Outcome.DELIVERED and result.attempts == 1
    (request,) = slack.requests
    assert request.path == "/services/T000/B000/XXXX"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "text": (
            "High risk 82/100: the keystroke dynamics in session s1 on ws-12 do not match alice; most deviant: "
            "hold_mean 212 vs typical 95 (+4.1σ), digraph_th_ms 41 vs typical 88 (-3.3σ), "
            "flight_p90 380 vs typical 240 (+2.7σ)"
        ),
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": ":large_orange_circle: High risk: alice may not be at ws-12",
                    "emoji": True,
                },
            },
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": "*User*\nalice"},
                    {"type": "mrkdwn", "text": "*Host*\nws-12"},
                    {"type": "mrkdwn", "text": "*Session*\n`s1`"},
                    {"type": "mrkdwn", "text": "*Risk*\n82/100 · high"},
                    {"type": "mrkdwn", "text": "*Signal*\nkeystroke dynamics"},
                    {"type": "mrkdwn", "text": "*Since session start*\n12m 30s"},
                ],
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*Why* (most deviant features)\n"
                    "• `hold_mean` 212 vs typical 95 (+4.1σ)\n"
                    "• `digraph_th_ms` 41 vs typical 88 (-3.3σ)\n"
                    "• `flight_p90` 380 vs typical 240 (+2.7σ)",
                },
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": "alert `alert-s1-high-1` · model `test-1` · "
                        "<https://siem.example/sessions/s1?user=alice|Open in SIEM>",
                    }
                ],
            },
        ],
    }


def test_mrkdwn_control_characters_are_escaped(slack, store, metrics, sleeps):
    slack_sink(slack, store, metrics, sleeps).deliver(make_alert(user="<!channel> & co"))
    fields = slack.requests[0].json()["blocks"][1]["fields"]
    assert fields[0]["text"] == "*User*\n&lt;!channel&gt; &amp; co"


def test_429_retry_after_is_honoured_then_delivered(slack, store, metrics, sleeps):
    slack.script[:] = [slack_rate_limited(3)]
    result = slack_sink(slack, store, metrics, sleeps).deliver(make_alert())
    assert result.outcome is Outcome.DELIVERED and result.attempts == 2
    assert len(slack.requests) == 2 and slack.requests[0].body == slack.requests[1].body
    assert sleeps.calls and sleeps.calls[0] >= 3.0
    assert metrics.value("touchstone_sink_retried_total", sink="team", type="slack") == 1


def test_500_is_retried(slack, store, metrics, sleeps):
    slack.script[:] = [SLACK_ERROR, SLACK_ERROR]
    result = slack_sink(slack, store, metrics, sleeps).deliver(make_alert())
    assert result.outcome is Outcome.DELIVERED and result.attempts == 3 and len(slack.requests) == 3
    assert metrics.value("touchstone_sink_requests_total", sink="team", type="slack", status="error") == 2
    assert metrics.value("touchstone_sink_requests_total", sink="team", type="slack", status="ok") == 1


def test_a_hang_beyond_the_timeout_is_retried(slack, store, metrics, sleeps):
    slack.script[:] = [Reply(200, b"ok", delay_s=1.5)]
    result = slack_sink(slack, store, metrics, sleeps, timeout_s=0.3).deliver(make_alert())
    assert result.outcome is Outcome.DELIVERED and result.attempts == 2
    assert slack.requests[1].at - slack.requests[0].at < 1.2  # the client did not wait for the hung reply


def test_invalid_payload_fails_at_once(slack, store, metrics, sleeps):
    slack.script[:] = [SLACK_INVALID]
    result = slack_sink(slack, store, metrics, sleeps).deliver(make_alert())
    assert result.outcome is Outcome.FAILED and result.error is not None
    assert result.error.reason == "permanent" and "invalid_payload" in str(result.error)
    assert len(slack.requests) == 1 and sleeps.calls == []
    assert metrics.value("touchstone_sink_failed_total", sink="team", type="slack", reason="permanent") == 1


def test_persistent_500s_exhaust_and_report(slack, store, metrics, sleeps):
    slack.default = SLACK_ERROR
    result = slack_sink(slack, store, metrics, sleeps, max_attempts=3).deliver(make_alert())
    assert result.outcome is Outcome.FAILED and result.error.reason == "exhausted"
    assert len(slack.requests) == 3


def test_a_burst_is_one_message_and_updates_follow_the_incident(slack, store, metrics, sleeps):
    sink = slack_sink(slack, store, metrics, sleeps)
    for i in range(50):
        sink.add(make_alert(alert_id=f"s1-{i}", level=Level.MEDIUM, status="open" if i == 0 else "update"))
        sink.add(make_alert(alert_id=f"s2-{i}", session_id="s2", user="bob", level=Level.HIGH))
    results = sink.flush()
    assert len(results) == 100
    assert sorted(r.outcome.value for r in results).count("delivered") == 2
    assert len(slack.requests) == 2
    assert {r.json()["blocks"][0]["text"]["text"] for r in slack.requests} == {
        ":large_yellow_circle: Medium risk: alice may not be at ws-12",
        ":large_orange_circle: High risk: bob may not be at ws-12",
    }
    assert "50 alerts in this update" in slack.requests[0].json()["blocks"][-1]["elements"][0]["text"]

    # Same level again: nothing new to say.
    assert sink.deliver(make_alert(alert_id="s1-repeat", level=Level.MEDIUM, status="update")).outcome is (
        Outcome.COALESCED
    )
    assert len(slack.requests) == 2
    # The level rises: one follow-up.
    sink.deliver(make_alert(alert_id="s1-crit", level=Level.CRITICAL, status="update", risk=97.0))
    escalation = slack.requests[2].json()
    assert escalation["blocks"][0]["text"]["text"] == ":arrow_up: Escalated to critical: alice on ws-12"
    assert "was medium" in escalation["blocks"][-1]["elements"][0]["text"]
    # It resolves: the last message.
    sink.deliver(make_alert(alert_id="s1-end", level=Level.NONE, status="resolved", risk=4.0))
    assert slack.requests[3].json()["blocks"][0]["text"]["text"] == ":white_check_mark: Resolved: alice on ws-12"
    assert len(slack.requests) == 4


def test_a_restarted_sink_does_not_post_twice(slack, tmp_path, metrics, sleeps):
    path = tmp_path / "delivered.sqlite3"
    first = DeliveryStore(path)
    slack_sink(slack, first, metrics, sleeps).deliver(make_alert())
    first.close()
    second = DeliveryStore(path)
    again = slack_sink(slack, second, metrics, sleeps)
    assert again.deliver(make_alert()).outcome is Outcome.DUPLICATE
    # A new alert of the same incident at the same level is coalesced, from the stored state.
    assert again.deliver(make_alert(alert_id="another", status="update")).outcome is Outcome.COALESCED
    assert len(slack.requests) == 1
    second.close()


def test_the_webhook_url_never_reaches_logs_or_errors(slack, store, metrics, sleeps, caplog):
    slack.default = SLACK_ERROR
    caplog.set_level(logging.DEBUG)
    sink = slack_sink(slack, store, metrics, sleeps, max_attempts=2)
    result = sink.deliver(make_alert())
    secret_part = "/services/T000/B000/XXXX"
    assert secret_part not in str(result.error)
    assert secret_part not in repr(sink) and "XXXX" not in repr(sink._url)
    assert all(secret_part not in record.getMessage() for record in caplog.records)
    assert caplog.records  # the failure was logged, just without the URL


def test_a_dead_endpoint_opens_the_breaker_and_later_alerts_fail_fast(slack, store, metrics, sleeps):
    slack.default = SLACK_ERROR
    sink = slack_sink(slack, store, metrics, sleeps, max_attempts=5, breaker_failures=3, breaker_reset_s=60.0)
    for i in range(5):
        sink.add(make_alert(alert_id=f"a{i}", session_id=f"s{i}"))
    results = sink.flush()
    assert [r.outcome for r in results] == [Outcome.FAILED] * 5
    assert [r.error.reason for r in results] == ["circuit_open"] * 5
    assert len(slack.requests) == 3  # three attempts opened it; the other four sessions never hit the endpoint
    assert metrics.value("touchstone_sink_circuit_state", sink="team", type="slack") == 2
    assert metrics.value("touchstone_sink_failed_total", sink="team", type="slack", reason="circuit_open") == 5
