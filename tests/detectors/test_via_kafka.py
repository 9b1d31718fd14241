"""The streaming pipeline on the real broker computes the same windows and session risk as in-process code."""

from __future__ import annotations

from pathlib import Path

import pytest

from touchstone.collectors.simulate import Fleet, Takeover
from touchstone.config import Settings
from touchstone.detectors.via_kafka import compare_through_pipeline

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_worker_scores_a_simulated_fleet_exactly_as_in_process(settings: Settings, tmp_path: Path):
    fleet = Fleet(8, seed=21, takeovers=[Takeover("agent-001", 60.0, "agent-005")])
    batches = [*fleet.history(240.0, sessions=2, gap_s=30.0), *(b for b, _ in fleet.iter_labelled(120.0))]
    report = compare_through_pipeline(settings.replace(state_dir=str(tmp_path)), batches, label="test", timeout_s=240)
    assert report["windows_in_process"] > 100
    assert report["risk_updates_of_enrolled_users"] > 0, report
    assert report["agree"], report
    assert report["max_risk_difference"] == 0.0
