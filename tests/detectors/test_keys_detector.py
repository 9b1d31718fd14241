"""Keystroke fleet scorer on synthetic typists: separation, enrolment, determinism, pickling, cost bounds."""

from __future__ import annotations

import math
import pickle
import random
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from touchstone.collectors.privacy import KeyEventTokenizer, KeyTokenizer
from touchstone.contracts import FeatureWindow, KeyEvents
from touchstone.detectors.evaluate_aalto import equal_error_rate
from touchstone.detectors.keys import KeystrokeFleetScorer
from touchstone.detectors.keys_measures import rank_disorder
from touchstone.streams.keystroke_features import KeystrokeWindower

LETTERS = "etaoinshrdlucmfwypvbgk"


class Typist:
    """A synthetic typist: own speed, hold style, per-digraph habits, shift side and error rate."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.rng = rng
        # Typists overlap in speed and style, so telling them apart takes more than one feature.
        self.flight = rng.uniform(160.0, 200.0)
        self.hold = rng.uniform(85.0, 105.0)
        self.jitter = rng.uniform(0.2, 0.3)
        self.habit = {(a, b): rng.lognormvariate(0.0, 0.15) for a in LETTERS + " " for b in LETTERS + " "}
        self.key_hold = {k: rng.lognormvariate(0.0, 0.08) for k in LETTERS + " "}
        self.shift = "shift_r" if rng.random() < 0.5 else "shift_l"
        self.errors = rng.uniform(0.0, 0.08)

    def text(self, n: int) -> str:
        words = []
        while sum(len(w) + 1 for w in words) < n:
            words.append("".join(self.rng.choice(LETTERS) for _ in range(self.rng.randint(2, 8))))
        return " ".join(words)[:n]

    def events(self, n_keys: int, start: float = 0.0) -> list[tuple[float, bool, str]]:
        out: list[tuple[float, bool, str]] = []
        t, previous = start, " "
        rng = self.rng
        for i, char in enumerate(self.text(n_keys)):
            keys = [char]
            if rng.random() < self.errors:
                keys = ["backspace", char]
            if i % 17 == 0 and char != " ":
                keys = [self.shift, *keys]
            for key in keys:
                gap = self.flight * self.habit.get((previous, key), 1.0) * rng.lognormvariate(0.0, self.jitter)
                t += gap
                hold = self.hold * self.key_hold.get(key, 1.0) * rng.lognormvariate(0.0, self.jitter / 2)
                out += [(t, True, key), (t + hold, False, key)]
                previous = key
        return sorted(out, key=lambda e: (e[0], not e[1]))


def windows_of(typist: Typist, user: str, n_windows: int, tokenizer: KeyTokenizer) -> list[FeatureWindow]:
    raw = typist.events(50 * n_windows + 20)
    stream = KeyEventTokenizer(tokenizer)
    ev = KeyEvents(
        t=np.array([e[0] for e in raw]),
        down=np.array([e[1] for e in raw]),
        key=tuple(stream.event(e[2], e[1]) for e in raw),
    )
    windower = KeystrokeWindower(window=50, close_pause_ms=None)
    closed = windower.push(ev)
    return [
        FeatureWindow(
            user=user, host="h", session_id=f"s-{user}", modality="keys", index=c.index, privacy=tokenizer.mode,
            session_start=1.7e12, start=1.7e12 + c.start_t, end=1.7e12 + c.end_t, n_events=c.n_events,
            closed_by=c.closed_by, features=c.features, grams=c.grams,
        )
        for c in closed[:n_windows]
    ]


@pytest.fixture(scope="module")
def fleet() -> dict[str, list[FeatureWindow]]:
    tokenizer = KeyTokenizer("keyed", secret=b"synthetic fleet secret..")
    return {f"user{i}": windows_of(Typist(100 + i), f"user{i}", 12, tokenizer) for i in range(14)}


def enrolled(fleet: dict[str, list[FeatureWindow]], seed: int = 0, enrol: int = 5) -> KeystrokeFleetScorer:
    scorer = KeystrokeFleetScorer(enrol_windows=enrol, seed=seed)
    for k in range(enrol):
        for windows in fleet.values():
            scorer.learn_one(windows[k])
    return scorer


def trial_scores(scorer: KeystrokeFleetScorer, fleet: dict[str, list[FeatureWindow]]) -> dict[str, tuple[list, list]]:
    out = {}
    for user, windows in fleet.items():
        genuine = [scorer.score_one(w) for w in windows[5:]]
        impostor = [scorer.score_one(replace(w, user=user)) for other, ws in fleet.items() if other != user
                    for w in ws[5:7]]
        out[user] = (genuine, impostor)
    return out


def test_scorer_separates_synthetic_typists(fleet):
    scorer = enrolled(fleet)
    scores = trial_scores(scorer, fleet)
    eers = [equal_error_rate(g, i) for g, i in scores.values()]
    assert np.mean(eers) < 0.15, eers
    genuine = [s for g, _ in scores.values() for s in g]
    impostor = [s for _, i in scores.values() for s in i]
    assert np.median(genuine) < np.median(impostor)
    assert all(0.0 <= s <= 1.0 and math.isfinite(s) for s in genuine + impostor)


def test_no_score_before_enrolment_and_progress_is_reported(fleet):
    scorer = KeystrokeFleetScorer(enrol_windows=5)
    windows = fleet["user0"]
    assert scorer.enrolment("user0") == 0.0
    for k in range(4):
        scorer.learn_one(windows[k])
        assert scorer.score_one(windows[5]) is None
    assert scorer.enrolment("user0") == pytest.approx(0.8)
    scorer.learn_one(windows[4])
    assert scorer.enrolment("user0") == 1.0
    assert scorer.score_one(windows[5]) is not None
    assert scorer.score_one(replace(windows[5], user="nobody")) is None


def test_pickle_round_trip_scores_identically_and_keeps_learning_identically(fleet):
    scorer = enrolled(fleet)
    copy = pickle.loads(pickle.dumps(scorer))
    probe = [replace(w, user=u) for u in fleet for w in fleet["user3"][5:8]]
    assert [scorer.score_one(w) for w in probe] == [copy.score_one(w) for w in probe]
    for windows in fleet.values():
        scorer.learn_one(windows[5])
        copy.learn_one(windows[5])
    assert [scorer.score_one(w) for w in probe] == [copy.score_one(w) for w in probe]


def test_deterministic_given_a_seed(fleet):
    probe = [replace(w, user="user1") for w in fleet["user2"][5:9]]
    first = [enrolled(fleet, seed=7).score_one(w) for w in probe]
    again = [enrolled(fleet, seed=7).score_one(w) for w in probe]
    assert first == again


def test_score_then_learn_equals_learn_alone(fleet):
    a, b = enrolled(fleet), enrolled(fleet)
    window = fleet["user4"][5]
    a.score_one(window)
    a.learn_one(window)  # reuses the comparison made for scoring
    b.learn_one(window)
    probe = fleet["user4"][6]
    assert a.score_one(probe) == b.score_one(probe)


def test_explain_names_the_most_deviating_features(fleet):
    scorer = enrolled(fleet)
    window = fleet["user5"][6]
    slow = replace(window, features={**window.features, "hold.median": window.features["hold.median"] * 3})
    reasons = scorer.explain_one(slow, top=3)
    assert len(reasons) == 3
    assert reasons[0].feature == "hold.median"
    assert reasons[0].deviation > 0 and reasons[0].value > reasons[0].expected
    assert abs(reasons[0].deviation) >= abs(reasons[1].deviation) >= abs(reasons[2].deviation)
    assert scorer.explain_one(replace(window, user="nobody")) == []


def test_profiles_are_bounded_in_windows_and_bytes(fleet):
    scorer = KeystrokeFleetScorer(enrol_windows=2, max_windows=4)
    for window in fleet["user6"]:
        scorer.learn_one(window)
    profile = scorer.profile("user6")
    assert profile is not None and profile.n_windows == len(fleet["user6"])
    assert profile.n_values.max() == 4  # only the last 4 windows count
    assert len(pickle.dumps(profile)) < 1_000_000


def test_impostor_sampling_is_constant_per_window(fleet):
    scorer = enrolled(fleet)
    before = dict(scorer.examples)
    scorer.learn_one(fleet["user7"][5])
    assert scorer.examples["genuine"] - before["genuine"] == 1
    assert scorer.examples["impostor"] - before["impostor"] == scorer.impostors_per_window


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        KeystrokeFleetScorer(enrol_windows=0)
    with pytest.raises(ValueError):
        KeystrokeFleetScorer(enrol_windows=5, max_windows=3)
    with pytest.raises(ValueError):
        KeystrokeFleetScorer(cap=0.0)


def test_a_full_default_profile_stays_under_a_megabyte():
    tokenizer = KeyTokenizer("keyed", secret=b"synthetic fleet secret..")
    windows = windows_of(Typist(7), "u", 110, tokenizer)
    full, young = KeystrokeFleetScorer(), KeystrokeFleetScorer()
    for k, window in enumerate(windows):
        full.learn_one(window)
        if k < 5:
            young.learn_one(window)
    profile = full.profile("u")
    assert profile is not None and profile.n_values.max() == full.max_windows
    size = len(pickle.dumps(profile))
    assert size < 1_000_000
    assert len(pickle.dumps(young.profile("u"))) < size / 5  # a young profile costs what it holds


def reference_rank_disorder(first: list[float], second: list[float]) -> float:
    """Gunetti & Picardi's definition, spelled out: ranks by stable sort, summed rank distances."""
    n = len(first)
    rank_a = {item: r for r, item in enumerate(sorted(range(n), key=lambda i: first[i]))}
    rank_b = {item: r for r, item in enumerate(sorted(range(n), key=lambda i: second[i]))}
    worst = n * n / 2 if n % 2 == 0 else (n * n - 1) / 2
    return sum(abs(rank_a[i] - rank_b[i]) for i in range(n)) / worst


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, 1.0, 2.5, 3.0, 7.0]), st.floats(-5.0, 5.0)), min_size=2, max_size=40))
def test_rank_disorder_matches_the_definition_and_is_bounded(pairs):
    first, second = [a for a, _ in pairs], [b for _, b in pairs]
    r = rank_disorder(first, second)
    assert r == pytest.approx(reference_rank_disorder(first, second))
    assert 0.0 <= r <= 1.0
    assert rank_disorder(first, first) == 0.0
