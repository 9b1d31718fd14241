from __future__ import annotations

import re

import orjson
import pytest
from ecs_check import assert_ecs_alert
from hypothesis import given, settings
from sink_strategies import alerts

from touchstone.contracts import Level
from touchstone.errors import DeliveryError
from touchstone.sinks.base import Outcome
from touchstone.sinks.delivery import DeliveryPolicy
from touchstone.sinks.siem import (
    OCSF_CLASS_UID,
    SiemSink,
    cef_header_escape,
    cef_line,
    cef_value_escape,
    ecs_document,
    render_siem,
)
from touchstone.sinks.testing import alert_sequence, make_alert
from touchstone.sinks.topic import MemoryTopicWriter

pytestmark = pytest.mark.timeout(60)


@given(alerts())
@settings(max_examples=150)
def test_every_ecs_document_has_the_required_fields(alert):
    doc = orjson.loads(render_siem(alert, "ecs"))
    assert_ecs_alert(doc, alert)


def test_ecs_of_a_simulated_run():
    for alert in alert_sequence(sessions=4, per_session=6):
        assert_ecs_alert(ecs_document(alert), alert)


def test_ecs_types_follow_the_alert_status():
    assert ecs_document(make_alert(status="open"))["event"]["type"] == ["info"]
    assert ecs_document(make_alert(status="resolved"))["event"]["type"] == ["end"]


def test_ecs_session_start_is_event_time_minus_age():
    doc = ecs_document(make_alert(event_time=1_767_225_600_000.0, session_age_s=90.0))
    assert doc["event"]["start"] == "2025-12-31T23:58:30.000Z"


OCSF_REQUIRED = (
    "activity_id",
    "category_uid",
    "class_uid",
    "finding_info",
    "metadata",
    "severity_id",
    "time",
    "type_uid",
)


@given(alerts())
@settings(max_examples=100)
def test_ocsf_detection_finding_has_required_attributes(alert):
    finding = orjson.loads(render_siem(alert, "ocsf"))
    for name in OCSF_REQUIRED:
        assert name in finding
    assert finding["class_uid"] == OCSF_CLASS_UID == 2004 and finding["category_uid"] == 2
    assert finding["type_uid"] == finding["class_uid"] * 100 + finding["activity_id"]
    assert finding["activity_id"] == {"open": 1, "update": 2, "resolved": 3}[alert.status]
    assert finding["severity_id"] == int(alert.level) + 1  # OCSF: 1 informational ... 5 critical
    assert finding["finding_info"]["uid"] == alert.alert_id and finding["finding_info"]["title"]
    assert finding["metadata"]["product"]["name"] and finding["metadata"]["version"]
    assert finding["actor"]["user"]["name"] == alert.user
    assert finding["device"]["hostname"] == alert.host
    assert isinstance(finding["time"], int)


# --- CEF: parse back what we wrote ---------------------------------------------------------------


def parse_cef(line: str) -> tuple[list[str], dict[str, str]]:
    """A strict reader of CEF: header fields split at unescaped pipes, then key=value pairs."""
    assert "\n" not in line and "\r" not in line, "a CEF record is one line"
    header, field, i = [], "", 0
    while len(header) < 7:
        char = line[i]
        if char == "\\":
            assert line[i + 1] in "\\|", f"bad header escape at {i}"
            field += line[i + 1]
            i += 2
        elif char == "|":
            header.append(field)
            field, i = "", i + 1
        else:
            field += char
            i += 1
    extension = line[i:]
    starts = list(re.finditer(r"(?:^| )([A-Za-z0-9_]+)=", extension))
    pairs = {}
    for n, match in enumerate(starts):
        end = starts[n + 1].start() if n + 1 < len(starts) else len(extension)
        raw = extension[match.end() : end]
        value, j = "", 0
        while j < len(raw):
            if raw[j] == "\\":
                nxt = raw[j + 1]
                assert nxt in "\\=nr", f"bad extension escape \\{nxt}"
                value += {"n": "\n", "r": "\r"}.get(nxt, nxt)
                j += 2
            else:
                assert raw[j] != "=", "unescaped = inside a value"
                value += raw[j]
                j += 1
        pairs[match.group(1)] = value
    return header, pairs


def _one_line(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


@given(alerts())
@settings(max_examples=200)
def test_cef_round_trips_whatever_the_names_contain(alert):
    header, ext = parse_cef(cef_line(alert))
    assert header[0] == "CEF:0" and header[1] == "Touchstone"
    assert int(header[6]) in range(11)
    assert ext["suser"] == _one_line(alert.user)
    assert ext["shost"] == _one_line(alert.host)
    assert ext["cs1"] == _one_line(alert.session_id) and ext["cs1Label"] == "sessionId"
    assert ext["externalId"] == _one_line(alert.alert_id)
    assert int(ext["rt"]) == int(alert.event_time)
    assert int(ext["cn1"]) == round(alert.risk)


def test_cef_escapes_exactly():
    assert cef_header_escape("pipe|back\\slash") == "pipe\\|back\\\\slash"
    assert cef_value_escape("a=b\\c|d\ne") == "a\\=b\\\\c|d\\ne"
    line = cef_line(make_alert(user="ev=il|us\\er", level=Level.CRITICAL))
    assert "suser=ev\\=il|us\\\\er " in line
    assert line.split("|")[6] == "10"


# --- the sink ----------------------------------------------------------------------------------


def test_siem_sink_publishes_each_alert_once_keyed_by_session(metrics, store):
    writer = MemoryTopicWriter("touchstone.siem")
    sink = SiemSink("siem", writer=writer, store=store, metrics=metrics)
    alert = make_alert()
    assert sink.deliver(alert).outcome is Outcome.DELIVERED
    assert sink.deliver(alert).outcome is Outcome.DUPLICATE
    assert len(writer.records) == 1
    key, value = writer.records[0]
    assert key == b"s1"
    assert_ecs_alert(orjson.loads(value), alert)
    assert metrics.value("touchstone_sink_delivered_total", sink="siem", type="siem") == 1
    assert metrics.value("touchstone_sink_skipped_total", sink="siem", type="siem", reason="duplicate") == 1


def test_siem_sink_cef_format(store):
    writer = MemoryTopicWriter()
    SiemSink("siem", writer=writer, fmt="cef", store=store).deliver(make_alert())
    assert writer.records[0][1].startswith(b"CEF:0|Touchstone|Touchstone|")


def test_siem_sink_failure_is_reported_not_dropped(store, sleeps):
    class Down:
        topic = "t"

        def write(self, value, *, key, timeout):
            raise DeliveryError("no acknowledgement from t within 1.0s")

    sink = SiemSink("siem", writer=Down(), store=store, policy=DeliveryPolicy(max_attempts=2), sleep=sleeps)
    result = sink.deliver(make_alert())
    assert result.outcome is Outcome.FAILED and result.attempts == 2
    assert result.error is not None and result.error.reason == "exhausted"
    assert not store.seen("siem", make_alert().alert_id)


def test_unknown_format_is_refused():
    with pytest.raises(ValueError):
        render_siem(make_alert(), "leef")
