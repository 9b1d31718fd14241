"""features/1 and alert/1: round trips, and clean ContractErrors for anything else."""

from __future__ import annotations

import contextlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from touchstone.contracts import (
    Alert,
    FeatureWindow,
    Level,
    Reason,
    decode_alert,
    decode_window,
    encode_alert,
    encode_window,
)
from touchstone.errors import ContractError

T0 = 1.75e12


def make_window(**changes) -> FeatureWindow:
    fields = dict(
        user="alice",
        host="ws-1",
        session_id="s-1",
        modality="mouse",
        index=2,
        privacy="timing",
        session_start=T0,
        start=T0 + 10,
        end=T0 + 900,
        n_events=120,
        closed_by="count",
        features={"speed.median": 1.5, "straightness.iqr": 0.2},
        actions=[[1.0, 2.0], [3.0, 4.0]],
        action_fields=["duration", "distance"],
        produced_at=T0 + 950,
    )
    fields.update(changes)
    return FeatureWindow(**fields)


def make_alert(**changes) -> Alert:
    fields = dict(
        alert_id="s-1:high:1",
        created_at=T0 + 1000,
        user="alice",
        host="ws-1",
        session_id="s-1",
        risk=81.5,
        level=Level.HIGH,
        modality="fused",
        windows_seen=7,
        session_age_s=120.0,
        event_time=T0 + 990,
        window_id="s-1/mouse/6",
        model_version="test/1",
        reasons=(Reason("hold.median", 140.0, 95.0, 3.2),),
        scores={"keys": 0.9},
    )
    fields.update(changes)
    return Alert(**fields)


def test_window_round_trip():
    window = make_window()
    assert decode_window(encode_window(window)) == window
    assert window.window_id == "s-1/mouse/2"


def test_alert_round_trip_and_level_order():
    alert = make_alert()
    assert decode_alert(encode_alert(alert)) == alert
    assert Level.LOW < Level.MEDIUM < Level.HIGH < Level.CRITICAL
    assert Level.parse("critical") is Level.CRITICAL


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.update(schema="features/0"), "unknown_version"),
        (lambda d: d.update(modality="voice"), "bad_value"),
        (lambda d: d["features"].update(x="1"), "bad_value"),
        (lambda d: d.update(actions=[[1.0]]), "ragged_columns"),
        (lambda d: d.pop("user"), "missing_field"),
        (lambda d: d.update(end=0), "absurd_timestamp"),
    ],
)
def test_bad_windows(mutate, reason):
    doc = orjson.loads(encode_window(make_window()))
    mutate(doc)
    with pytest.raises(ContractError) as err:
        decode_window(orjson.dumps(doc))
    assert err.value.reason == reason


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.update(risk=150), "bad_value"),
        (lambda d: d.update(level="severe"), "bad_value"),
        (lambda d: d.update(status="maybe"), "bad_value"),
        (lambda d: d.update(reasons=[{"feature": "x"}]), "missing_field"),
        (lambda d: d.update(alert_id=7), "wrong_type"),
    ],
)
def test_bad_alerts(mutate, reason):
    doc = orjson.loads(encode_alert(make_alert()))
    mutate(doc)
    with pytest.raises(ContractError) as err:
        decode_alert(orjson.dumps(doc))
    assert err.value.reason == reason


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_never_escapes(data):
    for decode in (decode_window, decode_alert):
        with contextlib.suppress(ContractError):  # a contract error is the expected outcome; nothing else
            decode(data)
