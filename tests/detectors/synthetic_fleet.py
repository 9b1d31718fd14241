"""Synthetic users, sessions and a small distance scorer for the detector-engine tests.

Each user's behaviour is a Gaussian per feature (mean, spread); a session may add a
small shift of its own (the same person types a little differently from day to day).
:class:`ZScorer` is a minimal FleetScorer: per-user running mean and variance
(Welford), score = mean absolute z over the features, enrolled after ``enrol_windows``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from touchstone.contracts import FeatureWindow, Reason

FEATURES = ("hold", "flight", "speed")
EPOCH_2025_MS = 1_735_689_600_000.0


@dataclass(frozen=True)
class Behaviour:
    means: tuple[float, ...]
    spreads: tuple[float, ...]

    def draw(self, rng: random.Random, shift: tuple[float, ...] | None = None) -> dict[str, float]:
        shift = shift or (0.0,) * len(self.means)
        return {
            name: rng.gauss(mu + delta * sd, sd)
            for name, mu, sd, delta in zip(FEATURES, self.means, self.spreads, shift, strict=True)
        }

    def moved(self, by_spreads: tuple[float, ...]) -> Behaviour:
        """Someone else: each mean moved by the given number of spreads."""
        means = tuple(mu + d * sd for mu, sd, d in zip(self.means, self.spreads, by_spreads, strict=True))
        return Behaviour(means, self.spreads)


def random_behaviour(rng: random.Random) -> Behaviour:
    return Behaviour(
        means=(rng.uniform(80, 140), rng.uniform(150, 300), rng.uniform(0.5, 2.0)),
        spreads=(rng.uniform(8, 15), rng.uniform(20, 40), rng.uniform(0.05, 0.2)),
    )


@dataclass
class SessionWriter:
    """Writes the windows of one session, with increasing indices per modality and advancing capture times."""

    user: str
    session_id: str
    start_ms: float
    host: str = "ws-01"
    window_ms: float = 12_000.0
    privacy: str = "timing"
    clock_ms: float = field(init=False)
    _next_index: dict[str, int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.clock_ms = self.start_ms

    def window(self, modality: str, features: dict[str, float], closed_by: str = "count") -> FeatureWindow:
        index = self._next_index.get(modality, 0)
        self._next_index[modality] = index + 1
        start = self.clock_ms
        self.clock_ms += self.window_ms
        return FeatureWindow(
            user=self.user,
            host=self.host,
            session_id=self.session_id,
            modality=modality,
            index=index,
            privacy=self.privacy,
            session_start=self.start_ms,
            start=start,
            end=self.clock_ms,
            n_events=50,
            closed_by=closed_by,
            features=features,
        )


def session_shift(rng: random.Random, sd: float) -> tuple[float, ...]:
    return tuple(rng.gauss(0.0, sd) for _ in FEATURES)


class ZScorer:
    """Per-user mean/variance distance scorer (a FleetScorer, for tests)."""

    def __init__(self, modality: str, enrol_windows: int = 30, features: tuple[str, ...] = FEATURES) -> None:
        self.modality = modality
        self.enrol_windows = enrol_windows
        self.features = features
        self.model_version = f"zscore/{len(features)}"
        self._stats: dict[str, list] = {}  # user -> [n, means, m2s]

    def learn_one(self, window: FeatureWindow) -> None:
        stats = self._stats.setdefault(window.user, [0, [0.0] * len(self.features), [0.0] * len(self.features)])
        stats[0] += 1
        n, means, m2s = stats
        for i, name in enumerate(self.features):
            x = window.features[name]
            delta = x - means[i]
            means[i] += delta / n
            m2s[i] += delta * (x - means[i])

    def _z(self, window: FeatureWindow) -> list[tuple[str, float, float, float]]:
        n, means, m2s = self._stats[window.user]
        out = []
        for i, name in enumerate(self.features):
            sd = math.sqrt(m2s[i] / max(n - 1, 1)) or 1e-9
            x = window.features[name]
            out.append((name, x, means[i], (x - means[i]) / sd))
        return out

    def score_one(self, window: FeatureWindow) -> float | None:
        if self.enrolment(window.user) < 1.0:
            return None
        z = self._z(window)
        return sum(abs(d) for *_, d in z) / len(z)

    def explain_one(self, window: FeatureWindow, top: int = 3) -> list[Reason]:
        if window.user not in self._stats:
            return []
        z = sorted(self._z(window), key=lambda item: abs(item[3]), reverse=True)
        return [Reason(feature=f, value=v, expected=e, deviation=d) for f, v, e, d in z[:top]]

    def enrolment(self, user: str) -> float:
        stats = self._stats.get(user)
        return 0.0 if stats is None else min(1.0, stats[0] / self.enrol_windows)

    def mean_of(self, user: str) -> tuple[float, ...]:
        return tuple(self._stats[user][1])

    def learned_count(self, user: str) -> int:
        return self._stats[user][0] if user in self._stats else 0


def scorers(enrol_windows: int = 30) -> dict[str, ZScorer]:
    return {"keys": ZScorer("keys", enrol_windows), "mouse": ZScorer("mouse", enrol_windows)}
