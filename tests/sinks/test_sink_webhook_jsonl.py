from __future__ import annotations

import io
import time

import orjson
import pytest
from ecs_check import assert_ecs_alert
from sink_receivers import Reply

from touchstone.contracts import decode_alert
from touchstone.sinks.base import Outcome
from touchstone.sinks.delivery import DeliveryPolicy
from touchstone.sinks.jsonl import JsonlSink
from touchstone.sinks.secrets import Secret
from touchstone.sinks.testing import make_alert
from touchstone.sinks.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookSink, verify_signature

pytestmark = pytest.mark.timeout(30)

SIGNING_KEY = "whsec-test-0123456789"


@pytest.fixture
def hook(receiver_factory):
    return receiver_factory(Reply(204), "/hooks/touchstone")


def webhook(receiver, store, metrics, sleeps, **kwargs) -> WebhookSink:
    return WebhookSink(
        "cases",
        url=Secret(receiver.url),
        store=store,
        metrics=metrics,
        sleep=sleeps,
        policy=DeliveryPolicy(timeout_s=2.0, base_delay_s=0.01, max_delay_s=0.02),
        **kwargs,
    )


def test_signed_post_verifies_at_the_receiver(hook, store, metrics, sleeps):
    alert = make_alert()
    sink = webhook(hook, store, metrics, sleeps, signing_secret=Secret(SIGNING_KEY), headers={"X-Env": "test"})
    assert sink.deliver(alert).outcome is Outcome.DELIVERED
    (request,) = hook.requests
    assert decode_alert(request.body) == alert  # the body is the alert/1 contract itself
    assert request.headers["x-touchstone-alert-id"] == alert.alert_id
    assert request.headers["x-env"] == "test"
    stamp = request.headers[TIMESTAMP_HEADER.lower()]
    assert abs(int(stamp) - time.time()) < 60
    signature = request.headers[SIGNATURE_HEADER.lower()]
    assert verify_signature(SIGNING_KEY.encode(), stamp, request.body, signature)
    assert not verify_signature(b"wrong key", stamp, request.body, signature)
    assert not verify_signature(SIGNING_KEY.encode(), stamp, request.body + b" ", signature)
    assert not verify_signature(SIGNING_KEY.encode(), stamp, request.body, signature, now=int(stamp) + 3600)


def test_unsigned_webhook_has_no_signature_header(hook, store, metrics, sleeps):
    webhook(hook, store, metrics, sleeps, fmt="ecs").deliver(make_alert())
    request = hook.requests[0]
    assert SIGNATURE_HEADER.lower() not in request.headers
    assert_ecs_alert(request.json(), make_alert())


def test_webhook_retries_5xx_and_refuses_on_4xx(hook, store, metrics, sleeps):
    hook.script[:] = [Reply(503), Reply(404, b"no such hook")]
    result = webhook(hook, store, metrics, sleeps).deliver(make_alert())
    assert result.outcome is Outcome.FAILED and result.error.reason == "permanent" and result.attempts == 2


def test_jsonl_file_appends_one_line_per_alert_once(tmp_path, store, metrics):
    path = tmp_path / "out" / "alerts.jsonl"
    sink = JsonlSink("local", path=path, store=store, metrics=metrics, fsync=True)
    first, second = make_alert(), make_alert(alert_id="other")
    for alert in (first, second, first):
        sink.deliver(alert)
    sink.close()
    lines = path.read_text().splitlines()
    assert [decode_alert(line.encode()) for line in lines] == [first, second]


@pytest.mark.parametrize("fmt", ["ecs", "ocsf", "cef"])
def test_jsonl_formats(store, fmt):
    stream = io.StringIO()
    JsonlSink("out", stream=stream, fmt=fmt, store=store).deliver(make_alert())
    line = stream.getvalue()
    assert line.endswith("\n") and line.count("\n") == 1
    if fmt == "ecs":
        assert_ecs_alert(orjson.loads(line), make_alert())
    elif fmt == "ocsf":
        assert orjson.loads(line)["class_uid"] == 2004
    else:
        assert line.startswith("CEF:0|")


def test_jsonl_write_error_is_a_failed_delivery(tmp_path, store, sleeps):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    sink = JsonlSink(
        "out", path=blocker / "alerts.jsonl", store=store, sleep=sleeps, policy=DeliveryPolicy(max_attempts=2)
    )
    result = sink.deliver(make_alert())
    assert result.outcome is Outcome.FAILED and result.error.reason == "exhausted" and result.attempts == 2
    assert "cannot write" in str(result.error)
