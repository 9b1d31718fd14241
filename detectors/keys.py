"""Online fleet scorer for keystroke windows: per-user profiles, population-learned combiner.

Each window is compared with its claimed user's profile (scaled-Manhattan terms per
feature and Gunetti–Picardi n-gram measures, see ``keys_measures``); a River logistic
regression turns those distances into the probability that the window is an
impostor's. The fleet teaches the combiner: whenever a user's window is learned, its
distances to that user's profile are a genuine example and its distances to
``impostors_per_window`` other users' profiles, drawn at random, are impostor
examples, so the cost per window stays constant however large the fleet grows.
Once the combiner has seen ``combiner_warmup`` examples, only a ``combiner_rate``
share of learned windows (drawn at random) still teaches it: a logistic model of a
hundred inputs has converged by then, and it keeps following drift at that rate.

The score is that probability (higher = more anomalous), comparable across users;
``None`` until the claimed user has learned ``enrol_windows`` windows.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from river import linear_model, optim, preprocessing

from touchstone.contracts import FeatureWindow, Reason
from touchstone.detectors.keys_measures import PreparedWindow, comparison_inputs, feature_deviations, prepare_window
from touchstone.detectors.keys_profile import FeatureSpace, Population, UserProfile, log_ms

__all__ = ["KeystrokeFleetScorer"]

log = logging.getLogger(__name__)

MODEL_VERSION = "keys-fleet/1"


class KeystrokeFleetScorer:
    """FleetScorer for modality ``keys`` (detectors/base.py).

    Parameters
    ----------
    enrol_windows
        Windows a user needs before being scored (G).
    max_windows
        Recent windows a profile remembers; older ones are forgotten (drift, memory bound).
        100 windows of 50 keystrokes is a working day or several sessions, so the usual
        variation between one session and the next is part of the profile (with 20, a
        profile held less than one session and a genuine change of pace looked foreign).
    impostors_per_window
        Other users' profiles each learned window is compared with, as impostor examples.
    min_profile_windows
        Smallest profile that takes part in combiner examples.
    shrink
        Pseudo-windows of the population's within-user spread mixed into each user's spread.
    cap
        Largest value of one scaled-Manhattan term (robust z).
    learning_rate, l2
        SGD step and L2 penalty of the logistic combiner (inputs are standardised online);
        River's defaults.
    combiner_warmup, combiner_rate
        Examples after which only a ``combiner_rate`` share of learned windows makes examples.
    seed
        Seed of the impostor sampling; with it, results are deterministic.
    """

    modality = "keys"
    model_version = MODEL_VERSION

    def __init__(
        self,
        *,
        enrol_windows: int = 5,
        max_windows: int = 100,
        impostors_per_window: int = 3,
        min_profile_windows: int = 1,
        shrink: float = 4.0,
        cap: float = 5.0,
        learning_rate: float = 0.01,
        l2: float = 0.0,
        combiner_warmup: int = 50_000,
        combiner_rate: float = 0.1,
        seed: int = 0,
    ) -> None:
        if enrol_windows < 1:
            raise ValueError(f"enrol_windows must be at least 1, not {enrol_windows}")
        if max_windows < enrol_windows:
            raise ValueError(f"max_windows ({max_windows}) must be at least enrol_windows ({enrol_windows})")
        if impostors_per_window < 1:
            raise ValueError(f"impostors_per_window must be at least 1, not {impostors_per_window}")
        if min_profile_windows < 1:
            raise ValueError(f"min_profile_windows must be at least 1, not {min_profile_windows}")
        if shrink < 0 or cap <= 0 or learning_rate <= 0 or l2 < 0:
            raise ValueError("shrink and l2 must be >= 0, cap and learning_rate > 0")
        if combiner_warmup < 0 or not 0.0 <= combiner_rate <= 1.0:
            raise ValueError("combiner_warmup must be >= 0 and combiner_rate within [0, 1]")
        self.enrol_windows = enrol_windows
        self.max_windows = max_windows
        self.impostors_per_window = impostors_per_window
        self.min_profile_windows = min_profile_windows
        self.shrink = shrink
        self.cap = cap
        self.learning_rate = learning_rate
        self.l2 = l2
        self.combiner_warmup = combiner_warmup
        self.combiner_rate = combiner_rate
        self.seed = seed
        self._rng = random.Random(seed)
        self._profiles: dict[str, UserProfile] = {}
        self._users: list[str] = []  # users whose profiles can serve as impostor targets
        self._space = FeatureSpace()
        self._population = Population()
        self._scaler = preprocessing.StandardScaler()
        self._combiner = linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate), l2=l2)
        self.examples = {"genuine": 0, "impostor": 0}
        self._last: tuple[FeatureWindow, UserProfile | None, PreparedWindow, dict[str, float] | None] | None = None

    # -- FleetScorer -------------------------------------------------------------------------

    def learn_one(self, window: FeatureWindow) -> None:
        profile = self._profiles.get(window.user)
        prepared, genuine = self._compare(window, profile)
        if profile is not None and profile.n_windows >= self.min_profile_windows and self._teaches_combiner():
            assert genuine is not None
            self._learn_combiner(genuine, impostor=False)
            for other in self._sample_others(window.user):
                inputs = comparison_inputs(
                    prepared, self._profiles[other], self._space, cap=self.cap, shrink=self.shrink
                )
                self._learn_combiner(inputs, impostor=True)
        if profile is None:
            profile = self._profiles[window.user] = UserProfile(self.max_windows)
        profile.learn(prepared.x, prepared.log_grams)
        if profile.n_windows == self.min_profile_windows:
            self._users.append(window.user)
        self._population.learn(prepared.x, prepared.log_grams, profile)
        self._last = None

    def score_one(self, window: FeatureWindow) -> float | None:
        profile = self._profiles.get(window.user)
        if profile is None or profile.n_windows < self.enrol_windows:
            return None
        _, inputs = self._compare(window, profile)
        assert inputs is not None
        return self._combiner.predict_proba_one(self._scaler.transform_one(inputs))[True]

    def explain_one(self, window: FeatureWindow, top: int = 3) -> list[Reason]:
        profile = self._profiles.get(window.user)
        if profile is None or top <= 0:
            return []
        prepared, _ = self._compare(window, profile)
        deviations = sorted(feature_deviations(prepared, profile, shrink=self.shrink), key=lambda item: -abs(item[1]))
        reasons = []
        for column, z, median in deviations[:top]:
            name = self._space.names[column]
            reasons.append(
                Reason(feature=name, value=window.features[name], expected=self._space.original(column, median),
                       deviation=z)
            )
        return reasons

    def enrolment(self, user: str) -> float:
        profile = self._profiles.get(user)
        if profile is None:
            return 0.0
        return min(1.0, profile.n_windows / self.enrol_windows)

    # -- internals ---------------------------------------------------------------------------

    def _compare(
        self, window: FeatureWindow, profile: UserProfile | None
    ) -> tuple[PreparedWindow, dict[str, float] | None]:
        """The prepared window and its inputs against ``profile``; reused when learn follows score."""
        last = self._last
        if last is not None and last[0] is window and last[1] is profile:
            return last[2], last[3]
        grams = {name: log_ms(value) for name, value in window.grams.items()}
        x = self._space.vector(window.features)
        prepared = prepare_window(x, grams, self._space, self._population, cap=self.cap)
        inputs = None
        if profile is not None:
            inputs = comparison_inputs(prepared, profile, self._space, cap=self.cap, shrink=self.shrink)
        # Scoring then learning the same window is the detector worker's rhythm: compare once.
        self._last = (window, profile, prepared, inputs)
        return prepared, inputs

    def _teaches_combiner(self) -> bool:
        if self.examples["genuine"] + self.examples["impostor"] < self.combiner_warmup:
            return True
        return self._rng.random() < self.combiner_rate

    def _learn_combiner(self, inputs: dict[str, float], *, impostor: bool) -> None:
        self._scaler.learn_one(inputs)
        self._combiner.learn_one(self._scaler.transform_one(inputs), impostor)
        self.examples["impostor" if impostor else "genuine"] += 1

    def _sample_others(self, user: str) -> list[str]:
        # Only users already in the sampling pool learn combiner examples, so one candidate is the user.
        wanted = min(self.impostors_per_window, len(self._users) - 1)
        chosen: list[str] = []
        while len(chosen) < wanted:
            other = self._users[self._rng.randrange(len(self._users))]
            if other != user and other not in chosen:
                chosen.append(other)
        return chosen

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_last"] = None  # a cache of the last comparison, not model state
        return state

    # -- introspection -----------------------------------------------------------------------

    @property
    def users(self) -> list[str]:
        return list(self._profiles)

    def profile(self, user: str) -> UserProfile | None:
        return self._profiles.get(user)

    def state_summary(self) -> dict[str, Any]:
        return {
            "model_version": MODEL_VERSION,
            "users": len(self._profiles),
            "population_windows": self._population.n_windows,
            "examples": dict(self.examples),
        }
