from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from touchstone.contracts import Level
from touchstone.sinks.incidents import plan_steps
from touchstone.sinks.store import IncidentState
from touchstone.sinks.testing import make_alert

pytestmark = pytest.mark.timeout(30)


def alerts_of(*specs: tuple[Level, str]):
    return [make_alert(alert_id=f"a{i}", level=level, status=status) for i, (level, status) in enumerate(specs)]


def test_a_burst_of_one_level_is_one_message():
    burst = alerts_of(*[(Level.HIGH, "open")] + [(Level.HIGH, "update")] * 49)
    steps = plan_steps(burst, None, now=1.0)
    assert [(s.action, s.coalesced) for s in steps] == [("open", 50)]
    assert steps[0].alert is burst[-1]  # the freshest alert at the top level is shown


def test_rising_burst_opens_at_its_peak():
    burst = alerts_of((Level.LOW, "open"), (Level.MEDIUM, "update"), (Level.CRITICAL, "update"), (Level.HIGH, "update"))
    steps = plan_steps(burst, None, now=1.0)
    assert [(s.action, s.alert.alert_id) for s in steps] == [("open", "a2")]
    assert steps[0].state_after.level is Level.CRITICAL


def test_known_incident_is_told_again_only_when_the_level_rises():
    told = IncidentState(Level.HIGH, False, opened_at=0.0, updated_at=0.0, messages=1)
    assert plan_steps(alerts_of((Level.HIGH, "update"), (Level.MEDIUM, "update")), told, now=1.0) == []
    steps = plan_steps(alerts_of((Level.CRITICAL, "update")), told, now=1.0)
    assert [(s.action, s.previous) for s in steps] == [("escalate", Level.HIGH)]
    assert steps[0].state_after.messages == 2 and steps[0].state_after.opened_at == 0.0


def test_resolve_follows_only_a_told_incident():
    assert plan_steps(alerts_of((Level.NONE, "resolved")), None, now=1.0) == []
    told = IncidentState(Level.HIGH, False, 0.0, 0.0, 1)
    steps = plan_steps(alerts_of((Level.HIGH, "update"), (Level.NONE, "resolved")), told, now=1.0)
    assert [(s.action, s.coalesced) for s in steps] == [("resolve", 2)]
    assert steps[0].state_after.resolved


def test_open_then_resolve_in_one_batch_sends_both():
    steps = plan_steps(alerts_of((Level.HIGH, "open"), (Level.NONE, "resolved")), None, now=1.0)
    assert [s.action for s in steps] == ["open", "resolve"]


def test_a_resolved_incident_reopens_as_new():
    done = IncidentState(Level.CRITICAL, True, 0.0, 0.0, 3)
    steps = plan_steps(alerts_of((Level.LOW, "open")), done, now=5.0)
    assert [(s.action, s.state_after.messages) for s in steps] == [("open", 1)]


levels = st.sampled_from(list(Level))
statuses = st.sampled_from(["open", "update", "resolved"])


@given(st.lists(st.tuples(levels, statuses), min_size=1, max_size=60))
def test_steps_are_few_and_consistent(specs):
    alerts = alerts_of(*specs)
    steps = plan_steps(alerts, None, now=1.0)
    episodes = 1 + sum(1 for _, status in specs if status == "resolved")
    # At most: per episode one open, one escalation per level above it, one resolve.
    assert len(steps) <= episodes * (len(Level) + 1)
    assert all(step.coalesced >= 1 for step in steps)
    assert sum(step.coalesced for step in steps) <= len(alerts)
    told: Level | None = None
    for step in steps:
        if step.action == "open":
            assert told is None
            told = step.alert.level
        elif step.action == "escalate":
            assert told is not None and step.alert.level > told
            told = step.alert.level
        else:
            assert told is not None and step.alert.status == "resolved"
            told = None
    # Once told, a repeat at the told level is coalesced: the incident is not re-announced.
    final = steps[-1].state_after if steps else None
    if final is not None and not final.resolved:
        repeat = make_alert(alert_id="again", level=final.level, status="update")
        assert plan_steps([repeat], final, now=2.0) == []
