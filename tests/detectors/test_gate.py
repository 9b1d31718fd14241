import math

import pytest
from synthetic_fleet import EPOCH_2025_MS, SessionWriter

from touchstone.detectors.gate import Candidate, GateConfig, LearningGate, Probation

CFG = GateConfig(confirm_windows=2, withheld_keep=3, min_calibration=5)


class RecordingScorer:
    """Scores whatever it is told to; records what it learned."""

    modality = "keys"

    def __init__(self, scores=None, progress=1.0):
        self.scores = scores or {}
        self.progress = progress
        self.learned = []

    def learn_one(self, window):
        self.learned.append(window.index)

    def score_one(self, window):
        return self.scores.get(window.index)

    def explain_one(self, window, top=3):
        return []

    def enrolment(self, user):
        return self.progress


def windows(n, user="alice"):
    writer = SessionWriter(user, "s1", EPOCH_2025_MS)
    return [writer.window("keys", {"hold": 1.0}) for _ in range(n)]


def candidate(window, ordinal, score=1.0, p_value=0.5):
    return Candidate(window=window, score=score, p_value=p_value, ordinal=ordinal)


def test_probation_releases_a_window_only_after_confirm_windows_more():
    probation = Probation()
    ws = windows(4)
    released = []
    for ordinal, w in enumerate(ws, start=1):
        probation.hold(candidate(w, ordinal))
        released.append([c.window.index for c in probation.settle(ordinal, evidence=0.0, config=CFG)])
    assert released == [[], [], [0], [1]]
    assert [c.window.index for c in probation.release_all(evidence=0.0, config=CFG)] == [2, 3]


def test_high_risk_withholds_everything_pending_and_keeps_only_the_last_few():
    probation = Probation()
    for ordinal, w in enumerate(windows(6), start=1):
        probation.hold(candidate(w, ordinal))
        assert probation.settle(ordinal, evidence=CFG.calibrate_max_evidence, config=CFG) == []
    assert not probation.pending
    assert [c.window.index for c in probation.withheld] == [3, 4, 5]
    assert [c.window.index for c in probation.vouch()] == [3, 4, 5]
    assert not probation.withheld


def test_a_session_that_ends_suspect_teaches_nothing():
    probation = Probation()
    for ordinal, w in enumerate(windows(2), start=1):
        probation.hold(candidate(w, ordinal))
    assert probation.release_all(evidence=CFG.calibrate_max_evidence + 1, config=CFG) == []


def test_evidence_seen_during_probation_is_remembered():
    probation = Probation()
    ws = windows(3)
    probation.hold(candidate(ws[0], 1))
    probation.settle(1, evidence=CFG.learn_max_evidence + 1, config=CFG)
    probation.hold(candidate(ws[1], 2))
    probation.settle(2, evidence=0.0, config=CFG)
    probation.hold(candidate(ws[2], 3))
    (released,) = probation.settle(3, evidence=0.0, config=CFG)
    assert released.peak_evidence == CFG.learn_max_evidence + 1


def test_gate_calibrates_every_released_window_but_learns_only_clean_typical_ones():
    scorer = RecordingScorer()
    gate = LearningGate(scorer, CFG)
    ws = windows(3)
    assert gate.admit(candidate(ws[0], 1, score=1.0, p_value=0.5))
    assert not gate.admit(candidate(ws[1], 2, score=9.0, p_value=CFG.learn_min_p_value / 2))
    suspect = candidate(ws[2], 3, score=2.0, p_value=0.5)
    suspect.peak_evidence = CFG.learn_max_evidence
    assert not gate.admit(suspect)
    assert scorer.learned == [0]
    assert gate.calibration_size("alice") == 3
    assert gate.learned("alice") == 1
    assert gate.admit(suspect, vouched=True)  # an analyst confirmed the owner
    assert scorer.learned == [0, 2]


def test_p_values_only_after_the_calibration_has_warmed_up():
    gate = LearningGate(RecordingScorer(), CFG)
    ws = windows(CFG.min_calibration)
    for i, w in enumerate(ws):
        assert gate.p_value("alice", 1.0) is None
        assert not gate.enrolled("alice")
        gate.trust(w, float(i))
    assert gate.enrolled("alice")
    assert gate.p_value("alice", 100.0) == pytest.approx(1 / (CFG.min_calibration + 1))


def test_enrolment_progress_blends_scorer_and_calibration():
    scorer = RecordingScorer(progress=0.4)
    gate = LearningGate(scorer, CFG)
    assert gate.enrolment("alice") == pytest.approx(0.2)
    scorer.progress = 1.0
    for w in windows(2):
        gate.trust(w, 1.0)
    assert gate.enrolment("alice") == pytest.approx(0.5 * (1.0 + 2 / CFG.min_calibration))


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_scores_count_as_not_enrolled(bad):
    (w,) = windows(1)
    gate = LearningGate(RecordingScorer({0: bad}), CFG)
    assert gate.score_one(w) is None


def test_enrolment_windows_are_learned_without_a_score():
    scorer = RecordingScorer(progress=0.0)
    gate = LearningGate(scorer, CFG)
    for w in windows(3):
        gate.trust(w, None)
    assert scorer.learned == [0, 1, 2]
    assert gate.calibration_size("alice") == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_calibration": 0},
        {"min_calibration": 2000},
        {"learn_max_odds": 1e4, "calibrate_max_odds": 1e3},
        {"learn_max_odds": 1.0},
        {"learn_min_p_value": 1.5},
        {"confirm_windows": -1},
        {"kappa_max": 0.0},
    ],
)
def test_bad_gate_config_raises(kwargs):
    with pytest.raises(ValueError):
        GateConfig(**kwargs)
