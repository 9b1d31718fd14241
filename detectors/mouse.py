"""Online fleet scorer for mouse dynamics: every user's actions are the impostor evidence for all others.

Design (a *pooled* two-class model, so cost does not grow with the fleet):

1. **Shared partition.** The first ``warmup_actions`` actions the scorer learns (from
   all users) are buffered; an :class:`~touchstone.detectors.mouse_forest.IdentityForest`
   is grown on them to separate users, then frozen. It is population knowledge: no
   user owns it.
2. **Per-user profile = leaf counts.** Learning an action adds one count per tree to
   its owner's profile and to the fleet total. The fleet total minus the owner's counts
   is the distribution of *everyone else*, so each action is at once a positive for its
   owner and a negative for every other user, at O(trees) cost, with no sampling error.
3. **Score = log-likelihood ratio.** For each tree, the owner's smoothed leaf
   probability (a Dirichlet prior centred on the others' distribution, ``smoothing``
   pseudo-counts per leaf) is compared with the others'; an action's anomaly score is
   minus the mean log ratio over trees (averaged rather than summed, because the trees
   are correlated views of one action). A window's score is the mean over its
   actions: higher means less like the owner, 0 means "like anyone".
4. **Explanations** compare a window's summary features with the user's running
   quartiles (``river.stats.Quantile``): robust z = (value − median) / (IQR / 1.349),
   the spread floored at a quarter of the fleet's (and at 5 % of the values compared)
   so a feature the user never varies does not turn a small change into an enormous
   deviation. The user's genuine window scores are tracked the same way, for calibration.

Why not per-user River trees: measured here, ``river.forest.ARFClassifier`` with 10
trees costs ~1.9 ms per learned action and a ``HoeffdingTreeClassifier`` ~0.2 ms, times
(1 + negatives) per action, times 10 actions per window: far from 2,000 windows/s. The
shared forest costs one traversal per action (vectorised over the window) and reached
the session AUC of offline per-user random forests on Balabit (see
:mod:`touchstone.detectors.evaluate_balabit`).

Old behaviour fades slowly: once a profile holds ``max_profile_actions`` actions its
counts (and their share of the fleet total) are halved.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np
from river import stats

from touchstone.contracts import FeatureWindow, Reason
from touchstone.detectors.mouse_forest import IdentityForest, signed_log
from touchstone.streams.mouse_features import ACTION_FIELDS

__all__ = ["MODEL_VERSION", "MouseFleetScorer", "MouseProfile"]

log = logging.getLogger(__name__)

MODEL_VERSION = "mouse-idforest/1"
_QUARTILES = (0.25, 0.5, 0.75)
# Window features tracked for explanations: the per-field medians and the action-type shares.
_MIN_EXPLAIN_WINDOWS = 5
# The fleet's quartiles (the floor under a user's spread) are updated from every n-th learned window.
_FLEET_SAMPLE_EVERY = 4
# A user's spread is taken as at least this share of the fleet's, so a feature a user never varies
# (a median that is always 0) does not turn the smallest change into an enormous deviation.
_SPREAD_FLOOR = 0.25


def _explained(name: str) -> bool:
    return name.endswith(".median") or name.startswith("share.")


def _new_quartiles() -> tuple[stats.Quantile, ...]:
    return tuple(stats.Quantile(q) for q in _QUARTILES)


def _track(table: dict[str, tuple[stats.Quantile, ...]], features: dict[str, float], names: Sequence[str]) -> None:
    for name in names:
        quartiles = table.get(name)
        if quartiles is None:
            quartiles = table[name] = _new_quartiles()
        value = features[name]
        for quantile in quartiles:
            quantile.update(value)


def _quartile_values(quartiles: tuple[stats.Quantile, ...] | None) -> tuple[float, float, float] | None:
    if quartiles is None:
        return None
    values = tuple(q.get() for q in quartiles)
    if any(v is None for v in values):
        return None
    return float(values[0]), float(values[1]), float(values[2])


class MouseProfile:
    """One user's state: leaf counts, action count, running quartiles of window features and genuine scores."""

    def __init__(self, size: int) -> None:
        self.counts = np.zeros(size, dtype=np.float32)
        self.n_actions = 0.0
        self.n_windows = 0
        self.feature_quartiles: dict[str, tuple[stats.Quantile, ...]] = {}
        self.genuine_scores = tuple(stats.Quantile(q) for q in (0.5, 0.9, 0.99))

    def track(self, features: dict[str, float], names: Sequence[str]) -> None:
        _track(self.feature_quartiles, features, names)
        self.n_windows += 1


class MouseFleetScorer:
    """FleetScorer for modality ``mouse`` (see the module docstring).

    Parameters
    ----------
    n_trees, depth, candidates, min_leaf
        Shape of the shared identity forest (32 trees of 4,096 leaves by default).
    warmup_actions
        Fleet actions buffered before the forest is grown (from at least two users).
    enrol_actions
        Actions a user needs before their scores count as meaningful.
    smoothing
        Dirichlet pseudo-counts per leaf pulling a profile toward the rest of the fleet.
    max_profile_actions
        Profile size at which counts are halved (slow forgetting).
    seed
        Seeds the forest; everything else is deterministic.

    >>> scorer = MouseFleetScorer(n_trees=4, depth=4, warmup_actions=200, enrol_actions=20)
    >>> rng = np.random.default_rng(1)
    >>> for user, centre in (("ann", 1.0), ("bob", 50.0)):
    ...     scorer.learn_actions(user, rng.gamma(2.0, centre, (150, len(ACTION_FIELDS))))
    >>> own = scorer.score_actions("ann", rng.gamma(2.0, 1.0, (20, len(ACTION_FIELDS))))
    >>> other = scorer.score_actions("ann", rng.gamma(2.0, 50.0, (20, len(ACTION_FIELDS))))
    >>> bool(own.mean() < 0 < other.mean())
    True
    """

    modality = "mouse"

    def __init__(
        self,
        *,
        n_trees: int = 32,
        depth: int = 12,
        candidates: int = 8,
        min_leaf: int = 10,
        warmup_actions: int = 20_000,
        enrol_actions: int = 300,
        smoothing: float = 1.0,
        max_profile_actions: int = 200_000,
        seed: int = 0,
        fields: Sequence[str] = ACTION_FIELDS,
    ) -> None:
        if warmup_actions < 2 * min_leaf:
            raise ValueError(f"warmup_actions must be at least 2 * min_leaf, not {warmup_actions}")
        if enrol_actions < 1 or smoothing <= 0 or max_profile_actions < 2 * enrol_actions:
            raise ValueError("enrol_actions >= 1, smoothing > 0 and max_profile_actions >= 2 * enrol_actions")
        self.n_trees = n_trees
        self.depth = depth
        self.candidates = candidates
        self.min_leaf = min_leaf
        self.warmup_actions = warmup_actions
        self.enrol_actions = enrol_actions
        self.smoothing = smoothing
        self.max_profile_actions = max_profile_actions
        self.seed = seed
        self.fields = tuple(fields)
        self.forest: IdentityForest | None = None
        self.profiles: dict[str, MouseProfile] = {}
        self._fleet_counts: np.ndarray | None = None
        self._fleet_actions = 0.0
        self._warm_rows: list[np.ndarray] = []
        self._warm_users: list[str] = []
        self._warm_set: set[str] = set()
        self._n_warm = 0
        self.warmup_dropped = 0
        self._columns: dict[tuple[str, ...], np.ndarray] = {}
        self._leaf_cache: tuple[Any, np.ndarray, np.ndarray | None] | None = None
        self._explain_names: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._fleet_quartiles: dict[str, tuple[stats.Quantile, ...]] = {}
        self._windows_learned = 0

    # -- FleetScorer protocol ---------------------------------------------------------------------

    def learn_one(self, window: FeatureWindow) -> None:
        actions, leaves = self._prepare(window)
        if actions.shape[0] == 0:
            return
        user = window.user
        if leaves is not None and self.enrolment(user) >= 1.0:
            window_score = float(self._scores(user, leaves).mean())
            for quantile in self.profiles[user].genuine_scores:
                quantile.update(window_score)
        self._learn(user, actions, leaves=leaves)
        names = self._explained_names(window.features)
        self.profiles[user].track(window.features, names)
        if self._windows_learned % _FLEET_SAMPLE_EVERY == 0:
            _track(self._fleet_quartiles, window.features, names)
        self._windows_learned += 1

    def score_one(self, window: FeatureWindow) -> float | None:
        if self.enrolment(window.user) < 1.0:
            return None
        actions, leaves = self._prepare(window)
        if actions.shape[0] == 0 or leaves is None:
            return None
        return float(self._scores(window.user, leaves).mean())

    def explain_one(self, window: FeatureWindow, top: int = 3) -> list[Reason]:
        profile = self.profiles.get(window.user)
        if profile is None or profile.n_windows < _MIN_EXPLAIN_WINDOWS:
            return []
        reasons = []
        for name, value in window.features.items():
            own = _quartile_values(profile.feature_quartiles.get(name))
            if own is None:
                continue
            q25, median, q75 = own
            fleet = _quartile_values(self._fleet_quartiles.get(name))
            fleet_spread, fleet_median = ((fleet[2] - fleet[0]) / 1.349, fleet[1]) if fleet else (0.0, 0.0)
            # Floors: a share of the fleet's spread, and a relative floor that bounds |z| by 20 when nobody varies.
            scale = max(
                (q75 - q25) / 1.349,
                _SPREAD_FLOOR * fleet_spread,
                0.1 * abs(fleet_median),
                0.05 * (abs(value) + abs(median)),
                1e-3,
            )
            deviation = (value - median) / scale
            if np.isfinite(deviation):
                reasons.append(
                    Reason(feature=name, value=float(value), expected=float(median), deviation=float(deviation))
                )
        reasons.sort(key=lambda r: abs(r.deviation), reverse=True)
        return reasons[:top]

    def enrolment(self, user: str) -> float:
        profile = self.profiles.get(user)
        if profile is None:
            return 0.0
        progress = min(profile.n_actions / self.enrol_actions, 1.0)
        return progress if self.forest is not None else min(progress, 0.99)

    # -- action-level API (evaluation harness, early decisions) ------------------------------------

    def learn_actions(self, user: str, actions: np.ndarray) -> None:
        """Learn a block of genuine action vectors (rows ordered as ``self.fields``)."""
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim == 2 and actions.shape[0]:
            self._learn(user, actions, leaves=None)

    def score_actions(self, user: str, actions: np.ndarray) -> np.ndarray | None:
        """Anomaly score of each action vector for ``user`` (higher = less like them); None if not enrolled."""
        actions = np.asarray(actions, dtype=np.float64)
        if self.forest is None or self.enrolment(user) < 1.0:
            return None
        if actions.ndim != 2 or actions.shape[0] == 0:
            return np.zeros(0)
        return self._scores(user, self.forest.leaves(signed_log(actions)))

    def genuine_quantiles(self, user: str) -> dict[str, float]:
        """Running quantiles (0.5, 0.9, 0.99) of the user's own window scores, measured before learning each."""
        profile = self.profiles.get(user)
        if profile is None:
            return {}
        values = {f"q{int(q.q * 100)}": q.get() for q in profile.genuine_scores}
        return {k: float(v) for k, v in values.items() if v is not None}

    # -- cost and settings ------------------------------------------------------------------------

    def profile_nbytes(self, user: str) -> int:
        """Serialized size of one user's profile (what a table would hold for them)."""
        profile = self.profiles.get(user)
        return len(pickle.dumps(profile, protocol=pickle.HIGHEST_PROTOCOL)) if profile is not None else 0

    def settings(self) -> dict[str, Any]:
        return {
            "model": MODEL_VERSION,
            "n_trees": self.n_trees,
            "depth": self.depth,
            "candidates": self.candidates,
            "min_leaf": self.min_leaf,
            "warmup_actions": self.warmup_actions,
            "enrol_actions": self.enrol_actions,
            "smoothing": self.smoothing,
            "max_profile_actions": self.max_profile_actions,
            "seed": self.seed,
            "n_fields": len(self.fields),
        }

    def finish_warmup(self) -> bool:
        """Grow the forest now from what is buffered (a fleet smaller than ``warmup_actions``); True if it exists."""
        if self.forest is None and len(self._warm_set) >= 2 and self._n_warm >= 2 * self.min_leaf:
            self._grow()
        return self.forest is not None

    @property
    def ready(self) -> bool:
        """True once the shared forest exists."""
        return self.forest is not None

    # -- internals --------------------------------------------------------------------------------

    def _matrix(self, window: FeatureWindow) -> np.ndarray:
        """The window's action vectors as floats in this scorer's field order (missing fields = 0)."""
        if not window.actions:
            return np.zeros((0, len(self.fields)))
        key = tuple(window.action_fields)
        columns = self._columns.get(key)
        if columns is None:
            position = {name: i for i, name in enumerate(key)}
            columns = np.asarray([position.get(name, -1) for name in self.fields], dtype=np.int64)
            self._columns[key] = columns
        raw = np.asarray(window.actions, dtype=np.float64)
        if raw.ndim != 2 or raw.shape[1] != len(key):
            return np.zeros((0, len(self.fields)))
        out = raw[:, np.maximum(columns, 0)]
        out[:, columns < 0] = 0.0
        return out

    def _prepare(self, window: FeatureWindow) -> tuple[np.ndarray, np.ndarray | None]:
        """The window's action matrix and leaves (None before the forest exists), cached for score-then-learn."""
        key = (window.session_id, window.index, window.user, len(window.actions))
        if self._leaf_cache is not None and self._leaf_cache[0] == key and (
            self._leaf_cache[2] is not None or self.forest is None
        ):
            return self._leaf_cache[1], self._leaf_cache[2]
        actions = self._matrix(window)
        leaves = self.forest.leaves(signed_log(actions)) if self.forest is not None and actions.shape[0] else None
        self._leaf_cache = (key, actions, leaves)
        return actions, leaves

    def _explained_names(self, features: dict[str, float]) -> tuple[str, ...]:
        key = tuple(features)
        names = self._explain_names.get(key)
        if names is None:
            names = self._explain_names[key] = tuple(name for name in key if _explained(name))
        return names

    def _profile(self, user: str) -> MouseProfile:
        profile = self.profiles.get(user)
        if profile is None:
            size = self.forest.size if self.forest is not None else 0
            profile = self.profiles[user] = MouseProfile(size)
        return profile

    def _learn(self, user: str, actions: np.ndarray, leaves: np.ndarray | None) -> None:
        profile = self._profile(user)
        if self.forest is None:
            if self._n_warm >= 4 * self.warmup_actions and user in self._warm_set:
                # One user alone for that long: keep the buffer bounded; a second user's actions still grow the forest.
                self.warmup_dropped += actions.shape[0]
                return
            self._warm_rows.append(actions)
            self._warm_users.extend([user] * actions.shape[0])
            self._warm_set.add(user)
            self._n_warm += actions.shape[0]
            profile.n_actions += actions.shape[0]
            if self._n_warm >= self.warmup_actions and len(self._warm_set) >= 2:
                self._grow()
            return
        if leaves is None:
            leaves = self.forest.leaves(signed_log(actions))
        self._count(profile, leaves)

    def _count(self, profile: MouseProfile, leaves: np.ndarray) -> None:
        assert self._fleet_counts is not None
        flat = leaves.ravel()
        np.add.at(profile.counts, flat, 1.0)
        np.add.at(self._fleet_counts, flat, 1.0)
        profile.n_actions += leaves.shape[0]
        self._fleet_actions += leaves.shape[0]
        if profile.n_actions > self.max_profile_actions:
            self._fleet_counts -= 0.5 * profile.counts
            self._fleet_actions -= 0.5 * profile.n_actions
            profile.counts *= 0.5
            profile.n_actions *= 0.5

    def _grow(self) -> None:
        X = np.concatenate(self._warm_rows)
        users = sorted(set(self._warm_users))
        index = {user: i for i, user in enumerate(users)}
        y = np.asarray([index[u] for u in self._warm_users], dtype=np.int64)
        log.info("growing the mouse identity forest on %d actions of %d users", X.shape[0], len(users))
        self.forest = IdentityForest.grow(
            signed_log(X), y, n_trees=self.n_trees, depth=self.depth, candidates=self.candidates,
            min_leaf=self.min_leaf, seed=self.seed,
        )
        self._fleet_counts = np.zeros(self.forest.size, dtype=np.float64)
        leaves = self.forest.leaves(signed_log(X))
        for profile in self.profiles.values():
            profile.counts = np.zeros(self.forest.size, dtype=np.float32)
            profile.n_actions = 0.0
        for user in users:
            rows = y == index[user]
            self._count(self.profiles[user], leaves[rows])
        self._warm_rows, self._warm_users, self._warm_set, self._n_warm = [], [], set(), 0

    def _scores(self, user: str, leaves: np.ndarray) -> np.ndarray:
        """Minus the mean over trees of log p(leaf | user) / p(leaf | everyone else), per action."""
        assert self.forest is not None and self._fleet_counts is not None
        profile = self.profiles[user]
        n_leaves = self.forest.n_leaves
        prior = self.smoothing * n_leaves
        own = profile.counts[leaves].astype(np.float64)
        others = np.maximum(self._fleet_counts[leaves] - own, 0.0)
        n_others = max(self._fleet_actions - profile.n_actions, 0.0)
        p_others = (others + self.smoothing) / (n_others + prior)
        p_own = (own + prior * p_others) / (profile.n_actions + prior)
        return -np.log(p_own / p_others).mean(axis=1)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_leaf_cache"] = None
        state["_columns"] = {}
        state["_explain_names"] = {}
        return state
