import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from touchstone.contracts import Level
from touchstone.detectors.calibration import max_evidence
from touchstone.detectors.risk import RiskConfig, SessionRisk, next_level, risk_from_evidence

CFG = RiskConfig()
T0 = 1_735_689_600_000.0
STEP_MS = 12_000.0


def feed(values, modality="keys", risk=None, config=CFG):
    risk = risk or SessionRisk()
    levels = []
    for i, e in enumerate(values):
        risk.update(modality, e, T0 + i * STEP_MS, config)
        levels.append(risk.level)
    return risk, levels


CEILING = max_evidence(1024)  # the most one window can carry with a full default calibrator


def test_one_extreme_window_raises_no_level_at_all():
    risk, levels = feed([CEILING])
    assert levels == [Level.NONE]
    assert risk.risk < CFG.enter(Level.LOW)


def test_one_extreme_window_in_a_genuine_stream_is_forgotten():
    genuine = -0.7
    _, levels = feed([genuine] * 20 + [CEILING] + [genuine] * 30)
    assert max(levels) is Level.NONE
    _, levels = feed([genuine] * 20 + [CEILING, genuine, CEILING] + [genuine] * 30)
    assert max(levels) <= Level.LOW  # two bad windows in three: still nothing above low
    assert levels[-1] is Level.NONE


def test_sustained_evidence_climbs_to_critical_within_a_bounded_number_of_windows():
    _, levels = feed([CEILING] * 6)
    assert levels == sorted(levels)
    assert levels[0] is Level.NONE
    assert levels[2] >= Level.HIGH  # three windows at the ceiling: ln(1e4) nats
    assert levels[3] is Level.CRITICAL


def test_genuine_evidence_keeps_risk_at_zero():
    risk, levels = feed([-1.3, -0.2, 0.6, -0.9, 0.1, -0.4] * 50)
    assert max(levels) is Level.NONE
    assert risk.risk < CFG.enter(Level.LOW)


def test_hysteresis_holds_a_level_until_risk_drops_below_its_exit():
    cfg = CFG
    low, medium, high, _ = cfg.thresholds
    margin = cfg.exit_margin
    assert margin > 0
    assert next_level(Level.NONE, high - 0.01, cfg) is Level.MEDIUM
    assert next_level(Level.NONE, high, cfg) is Level.HIGH
    assert next_level(Level.HIGH, high - margin + 0.01, cfg) is Level.HIGH  # within the exit margin
    assert next_level(Level.HIGH, high - margin - 0.01, cfg) is Level.MEDIUM
    assert next_level(Level.HIGH, low + 0.01, cfg) is Level.LOW
    assert next_level(Level.LOW, low - margin + 0.01, cfg) is Level.LOW
    assert next_level(Level.LOW, low - margin - 0.01, cfg) is Level.NONE
    assert next_level(Level.CRITICAL, 0.0, cfg) is Level.NONE
    assert medium - margin > low  # leaving medium lands in low, not below it


@given(
    values=st.lists(st.floats(min_value=-20, max_value=20), min_size=1, max_size=200),
    gaps=st.lists(st.floats(min_value=0, max_value=3_600_000), min_size=1, max_size=200),
    modalities=st.lists(st.sampled_from(["keys", "mouse"]), min_size=1, max_size=200),
)
def test_risk_stays_in_bounds_and_level_agrees_with_hysteresis(values, gaps, modalities):
    risk = SessionRisk()
    t = T0
    for i, e in enumerate(values):
        t += gaps[i % len(gaps)]
        before = risk.level
        risk.update(modalities[i % len(modalities)], e, t, CFG)
        assert 0.0 <= risk.risk <= 100.0
        assert risk.level == next_level(before, risk.risk, CFG)
        entered = next_level(Level.NONE, risk.risk, CFG)
        assert risk.level >= entered
        if risk.level > entered:
            assert risk.risk >= CFG.enter(risk.level) - CFG.exit_margin
        assert risk.modality in {"keys", "mouse", "fused"}


def test_evidence_cools_with_capture_time():
    risk = SessionRisk()
    risk.update("keys", 5.0, T0, CFG)
    risk.update("keys", 0.0, T0 + CFG.half_life_s * 1000.0, CFG)
    assert risk.evidence == pytest.approx(5.0 * 0.5 * CFG.decay_per_window)


def test_out_of_order_windows_do_not_heat_or_cool():
    risk = SessionRisk()
    risk.update("keys", 5.0, T0 + 60_000, CFG)
    risk.update("mouse", 0.0, T0, CFG)  # an earlier window of the other modality arrives late
    assert risk.per_modality["keys"] == pytest.approx(5.0)


def test_fusion_adds_both_modalities_and_names_the_carrier():
    keys_only, _ = feed([1.5] * 3, modality="keys")
    assert keys_only.modality == "keys"
    both = SessionRisk()
    for i in range(3):
        both.update("keys", 1.5, T0 + i * 2 * STEP_MS, CFG)
        both.update("mouse", 1.5, T0 + (i * 2 + 1) * STEP_MS, CFG)
    assert both.modality == "fused"
    assert both.fused > max(both.per_modality.values())
    assert both.risk > keys_only.risk


def test_a_single_modality_impostor_is_not_diluted_by_the_other():
    risk = SessionRisk()
    for i in range(8):
        risk.update("keys", 2.0, T0 + i * 2 * STEP_MS, CFG)
        risk.update("mouse", -0.7, T0 + (i * 2 + 1) * STEP_MS, CFG)
    assert risk.modality == "keys"
    assert risk.risk == pytest.approx(risk_from_evidence(risk.per_modality["keys"], CFG.evidence_cap))
    assert risk.level >= Level.HIGH


def test_levels_are_decades_of_odds_against_the_owner():
    for level, odds in zip((Level.LOW, Level.MEDIUM, Level.HIGH, Level.CRITICAL), (1e2, 1e3, 1e4, 1e5), strict=True):
        assert risk_from_evidence(math.log(odds), CFG.evidence_cap) == pytest.approx(CFG.enter(level))
    assert risk_from_evidence(math.log(1e6), CFG.evidence_cap) == pytest.approx(100.0)
    assert risk_from_evidence(-3.0, CFG.evidence_cap) == 0.0
    assert risk_from_evidence(1e9, CFG.evidence_cap) == 100.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"decay_per_window": 0.0},
        {"decay_per_window": 1.1},
        {"half_life_s": 0.0},
        {"low_odds": 1.0},
        {"medium_odds": 50.0},
        {"critical_odds": 1e7},
        {"exit_factor": 0.5},
        {"exit_factor": 200.0},
    ],
)
def test_bad_config_raises(kwargs):
    with pytest.raises(ValueError):
        RiskConfig(**kwargs)


def test_non_finite_evidence_is_refused():
    with pytest.raises(ValueError):
        SessionRisk().update("keys", math.nan, T0, CFG)
