import math
import pickle
import random
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate

from touchstone.detectors.calibration import TAIL_FLOOR_N, ScoreCalibrator, evidence, max_evidence

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


def reference_p_value(kept: list[float], x: float) -> float:
    kept_arr = np.asarray(kept)
    return (1 + int((kept_arr >= x).sum())) / (len(kept) + 1)


@given(scores=st.lists(finite, min_size=1, max_size=300), capacity=st.integers(1, 64), probe=finite)
def test_p_value_and_quantile_match_numpy_over_the_last_capacity_scores(scores, capacity, probe):
    cal = ScoreCalibrator(capacity=capacity)
    for s in scores:
        cal.update(s)
    kept = scores[-capacity:]
    assert cal.n == len(kept)
    if probe <= max(kept):
        assert cal.p_value(probe) == pytest.approx(reference_p_value(kept, probe))
    else:
        # Beyond the largest stored score the fitted tail may only sharpen the conformal bound.
        assert cal.p_value(probe) <= reference_p_value(kept, probe) + 1e-12
    assert cal.quantile(probe) == pytest.approx(float((np.asarray(kept) < probe).mean()))


@given(scores=st.lists(finite, min_size=0, max_size=200), probes=st.lists(finite, min_size=2, max_size=20))
def test_p_value_falls_and_quantile_rises_with_the_score(scores, probes):
    cal = ScoreCalibrator(capacity=128)
    for s in scores:
        cal.update(s)
    probes = sorted(probes)
    ps = [cal.p_value(x) for x in probes]
    qs = [cal.quantile(x) for x in probes]
    assert all(a >= b for a, b in pairwise(ps))
    assert all(a <= b for a, b in pairwise(qs))
    # Beyond the largest stored score the fitted tail may go below 1/(n+1), never below its floor.
    assert all(1.0 / (TAIL_FLOOR_N + 1) - 1e-12 <= p <= 1.0 for p in ps)
    kept = scores[-128:]
    assert all(p >= 1.0 / (cal.n + 1) - 1e-12 for p, x in zip(ps, probes, strict=True) if kept and x <= max(kept))


@given(
    p=st.floats(min_value=1e-12, max_value=1.0),
    q=st.floats(min_value=1e-12, max_value=1.0),
    kappa=st.floats(min_value=0.05, max_value=1.0),
)
def test_evidence_decreases_with_p_value(p, q, kappa):
    lo, hi = sorted((p, q))
    assert evidence(lo, kappa) >= evidence(hi, kappa) - 1e-12
    assert evidence(1.0, kappa) == pytest.approx(math.log(kappa / 2.0))


@pytest.mark.parametrize("kappa", [1.0, 0.5, 0.2])
@pytest.mark.parametrize("p", [1.0 - 1e-7, 0.999, 0.7, 0.05, 1e-3, 1e-6])
def test_evidence_is_the_log_of_the_calibrator_mixture(p, kappa):
    mixture, _ = integrate.quad(lambda k: k * p ** (k - 1.0), 0.0, kappa, epsabs=1e-13, epsrel=1e-12)
    assert evidence(p, kappa) == pytest.approx(math.log(mixture / kappa), abs=1e-7)


@pytest.mark.parametrize("kappa", [1.0, 0.5])
def test_evidence_is_a_valid_e_value_under_the_owner(kappa):
    # Uniform p: E[e] = 1 (Fubini). In u = -log p the mass beyond U is about 1/(kappa U), so the
    # integral up to U lies between 1 - 1/(kappa U) and 1; conformal p on n scores is super-uniform: E[e] <= 1.
    upper_u = 600.0
    total, _ = integrate.quad(lambda u: math.exp(evidence(math.exp(-u), kappa) - u), 0.0, upper_u, limit=500)
    assert 1.0 - 1.0 / (kappa * upper_u) - 1e-3 <= total <= 1.0
    for n in (5, 50, 512):
        grid = [(k + 1) / (n + 1) for k in range(n + 1)]
        assert sum(math.exp(evidence(p, kappa)) for p in grid) / (n + 1) <= 1.0 + 1e-12


def test_genuine_scores_give_valid_p_values_and_negative_mean_evidence():
    # Validity is marginal over calibration sets, so each trial draws its own.
    rng = random.Random(7)
    ps, foreign = [], []
    for _ in range(100):
        cal = ScoreCalibrator(capacity=200)
        for _ in range(200):
            cal.update(rng.gammavariate(2.0, 1.0))
        ps.extend(cal.p_value(rng.gammavariate(2.0, 1.0)) for _ in range(100))
        foreign.append(cal.evidence(rng.gammavariate(2.0, 1.0) + 6.0))
    ps_arr = np.array(ps)
    for t in (0.01, 0.05, 0.2, 0.5):
        # Noise: 10,000 probes, and 100 calibration sets of 200 whose own CDF error has variance t(1-t)/200.
        noise = math.sqrt(t * (1 - t) * (1 / 10_000 + 1 / (200 * 100)))
        assert (ps_arr <= t).mean() <= t + 4 * noise
    assert np.mean([evidence(p) for p in ps_arr]) < -0.2
    assert np.mean(foreign) > 1.5


def test_one_window_cannot_carry_more_than_max_evidence():
    cal = ScoreCalibrator(capacity=100)
    for s in range(100):
        cal.update(float(s))
    assert cal.evidence(1e9) == pytest.approx(max_evidence(100))
    assert max_evidence(512) < max_evidence(1024)
    assert max_evidence(1024) < math.log(100.0)  # below the lowest alert level on its own


def test_pickle_round_trip_keeps_answers_and_future_updates():
    rng = random.Random(3)
    cal = ScoreCalibrator(capacity=50)
    for _ in range(80):
        cal.update(rng.random())
    clone = pickle.loads(pickle.dumps(cal))
    for _ in range(70):
        s = rng.random()
        cal.update(s)
        clone.update(s)
        probe = rng.random()
        assert clone.p_value(probe) == cal.p_value(probe)
    assert len(pickle.dumps(cal)) < 50 * 8 + 200


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_scores_are_refused(bad):
    cal = ScoreCalibrator()
    with pytest.raises(ValueError):
        cal.update(bad)


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        ScoreCalibrator(capacity=0)
    with pytest.raises(ValueError):
        ScoreCalibrator(kappa_max=0.0)
    with pytest.raises(ValueError):
        evidence(0.0)
    with pytest.raises(ValueError):
        evidence(1.5)
    with pytest.raises(ValueError):
        ScoreCalibrator().p_value(math.nan)


@settings(max_examples=50)
@given(scores=st.lists(st.floats(0, 10), min_size=20, max_size=200))
def test_ties_are_counted_conservatively(scores):
    cal = ScoreCalibrator(capacity=256)
    for s in scores:
        cal.update(round(s))  # many ties
    for x in {round(s) for s in scores}:
        assert cal.p_value(x) >= (1 + sum(1 for s in scores if round(s) >= x)) / (len(scores) + 1) - 1e-12


def test_tail_beyond_the_largest_score_is_conservative_and_keeps_falling():
    rng = np.random.default_rng(3)
    scores = rng.exponential(1.0, size=400)
    cal = ScoreCalibrator(capacity=400)
    for s in scores:
        cal.update(float(s))
    top = float(scores.max())
    probes = [top + d for d in (0.5, 1.0, 2.0, 4.0, 8.0)]
    ps = [cal.p_value(x) for x in probes]
    conformal = 1.0 / (len(scores) + 1)
    assert all(a >= b for a, b in pairwise(ps))
    assert all(p <= conformal for p in ps)
    assert ps[-1] < conformal / 2  # far out, the tail says more than "above everything seen"
    # The heavier-than-exponential tail never claims more than the true exponential survival would.
    assert all(p >= math.exp(-x) for p, x in zip(ps[2:], probes[2:], strict=True))
