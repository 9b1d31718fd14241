"""The mouse fleet scorer on synthetic users with different motion styles."""

import dataclasses
import math
import pickle
from itertools import zip_longest

import numpy as np
import pytest
from mouse_synth import BRISK, GENTLE, STEADY, session_events, session_windows

from touchstone.contracts import Reason
from touchstone.detectors.evaluate_balabit import roc_auc
from touchstone.detectors.mouse import MouseFleetScorer, MouseProfile
from touchstone.streams.mouse_features import ACTION_FIELDS

SMALL = {"n_trees": 12, "depth": 7, "warmup_actions": 600, "enrol_actions": 150}
STYLES = {"ann": BRISK, "bob": GENTLE, "cy": STEADY}


@pytest.fixture(scope="module")
def fleet():
    rng = np.random.default_rng(7)
    history = {
        user: [w for s in range(3) for w in session_windows(user, f"{user}-h{s}", session_events(style, 130, rng))]
        for user, style in STYLES.items()
    }
    fresh = {
        user: [w for s in range(2) for w in session_windows(user, f"{user}-f{s}", session_events(style, 100, rng))]
        for user, style in STYLES.items()
    }
    return history, fresh


def interleaved(history):
    """The fleet's windows in the order a fleet working side by side would produce them."""
    return [w for group in zip_longest(*history.values()) for w in group if w is not None]


def trained(history, **overrides):
    scorer = MouseFleetScorer(**{**SMALL, **overrides})
    for window in interleaved(history):
        scorer.score_one(window)
        scorer.learn_one(window)
    return scorer


def claimed_as(window, user):
    return dataclasses.replace(window, user=user)


def test_the_scorer_tells_each_owner_from_the_others(fleet):
    history, fresh = fleet
    scorer = trained(history)
    for owner in STYLES:
        genuine = [scorer.score_one(w) for w in fresh[owner]]
        impostor = [scorer.score_one(claimed_as(w, owner)) for other in STYLES if other != owner for w in fresh[other]]
        labels = np.r_[np.zeros(len(genuine)), np.ones(len(impostor))]
        assert roc_auc(np.asarray(genuine + impostor), labels) >= 0.95, owner
        assert np.mean(genuine) < 0 < np.mean(impostor)  # log-ratio sign: like the owner vs like the others


def test_single_actions_already_carry_evidence(fleet):
    history, fresh = fleet
    scorer = trained(history)
    own = scorer.score_actions("ann", np.asarray([a for w in fresh["ann"] for a in w.actions]))
    other = scorer.score_actions("ann", np.asarray([a for w in fresh["bob"] for a in w.actions]))
    assert roc_auc(np.r_[own, other], np.r_[np.zeros(own.size), np.ones(other.size)]) >= 0.8


def test_pickling_round_trip_gives_identical_scores_now_and_after_more_learning(fleet):
    history, fresh = fleet
    scorer = trained(history)
    copy = pickle.loads(pickle.dumps(scorer))
    windows = [claimed_as(w, owner) for owner in STYLES for ws in fresh.values() for w in ws[:6]]
    assert [scorer.score_one(w) for w in windows] == [copy.score_one(w) for w in windows]
    for w in fresh["cy"]:
        scorer.learn_one(w)
        copy.learn_one(w)
    assert [scorer.score_one(w) for w in windows] == [copy.score_one(w) for w in windows]
    explained = scorer.explain_one(windows[-1])
    assert explained and [r.deviation for r in explained] == [r.deviation for r in copy.explain_one(windows[-1])]


def test_the_same_seed_gives_the_same_scores(fleet):
    history, fresh = fleet
    a, b = trained(history, seed=3), trained(history, seed=3)
    windows = fresh["bob"][:10]
    assert [a.score_one(w) for w in windows] == [b.score_one(w) for w in windows]


def test_enrolment_progresses_and_no_score_is_given_before_it_completes(fleet):
    history, _ = fleet
    scorer = MouseFleetScorer(**SMALL)
    assert scorer.enrolment("ann") == 0.0
    assert scorer.score_one(history["ann"][0]) is None
    scorer.learn_one(history["ann"][0])
    assert 0.0 < scorer.enrolment("ann") < 1.0
    assert scorer.score_one(history["ann"][1]) is None
    for window in interleaved(history):
        scorer.learn_one(window)
    assert scorer.ready
    assert all(scorer.enrolment(user) == 1.0 for user in STYLES)
    assert scorer.score_actions("nobody", np.zeros((3, len(ACTION_FIELDS)))) is None
    assert scorer.score_actions("ann", np.zeros((0, len(ACTION_FIELDS)))).shape == (0,)
    quantiles = scorer.genuine_quantiles("ann")
    assert quantiles["q50"] <= quantiles["q90"] <= quantiles["q99"]


def test_a_single_user_fleet_waits_for_a_second_user_and_stays_bounded(fleet):
    history, _ = fleet
    scorer = MouseFleetScorer(n_trees=4, depth=4, warmup_actions=50, enrol_actions=20)
    for window in history["ann"]:
        scorer.learn_one(window)
    assert not scorer.ready and scorer.enrolment("ann") == 0.99
    assert scorer.warmup_dropped > 0  # beyond 4 x warmup_actions the buffer stops growing
    scorer.learn_one(history["bob"][0])
    assert scorer.ready


def test_explanations_name_the_most_deviant_window_features(fleet):
    history, fresh = fleet
    scorer = trained(history)
    impostor = claimed_as(fresh["bob"][3], "ann")
    reasons = scorer.explain_one(impostor, top=4)
    assert 1 <= len(reasons) <= 4 and all(isinstance(r, Reason) for r in reasons)
    assert all(r.feature in impostor.features and math.isfinite(r.deviation) for r in reasons)
    assert [abs(r.deviation) for r in reasons] == sorted((abs(r.deviation) for r in reasons), reverse=True)

    def strongest(window):
        return abs(scorer.explain_one(window, top=1)[0].deviation)

    genuine_dev = np.median([strongest(w) for w in fresh["ann"]])
    impostor_dev = np.median([strongest(claimed_as(w, "ann")) for w in fresh["bob"]])
    assert impostor_dev > genuine_dev


def test_action_fields_are_matched_by_name(fleet):
    history, fresh = fleet
    scorer = trained(history)
    window = fresh["ann"][2]
    order = list(reversed(range(len(window.action_fields))))
    shuffled = dataclasses.replace(
        window,
        action_fields=[window.action_fields[i] for i in order],
        actions=[[row[i] for i in order] for row in window.actions],
    )
    assert scorer.score_one(shuffled) == scorer.score_one(window)


def test_forgetting_halves_profiles_and_keeps_the_fleet_total_consistent(fleet):
    history, _ = fleet
    scorer = trained(history, max_profile_actions=400)
    total = sum(p.counts.astype(np.float64) for p in scorer.profiles.values())
    assert np.allclose(total, scorer._fleet_counts)
    assert all(p.n_actions <= 400 for p in scorer.profiles.values())
    assert scorer._fleet_actions == pytest.approx(sum(p.n_actions for p in scorer.profiles.values()))


def test_a_profile_at_production_size_stays_under_a_megabyte(fleet):
    history, _ = fleet
    defaults = MouseFleetScorer()
    profile = MouseProfile(defaults.n_trees * 2**defaults.depth)
    for window in history["ann"]:
        profile.track(window.features, [n for n in window.features if n.endswith(".median") or n.startswith("share")])
    assert len(pickle.dumps(profile)) <= 1_000_000


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        MouseFleetScorer(warmup_actions=5)
    with pytest.raises(ValueError):
        MouseFleetScorer(smoothing=0.0)
    with pytest.raises(ValueError):
        MouseFleetScorer(enrol_actions=0)
