"""Per-user keystroke profiles and the fleet's population statistics, updated one window at a time.

Window features live in a growing :class:`FeatureSpace` (name → column), so a
profile's statistics are small numpy arrays. A :class:`UserProfile` keeps the user's
last ``max_windows`` windows: per feature the median and the mean absolute deviation
from it, and per key-token n-gram the mean log latency. :class:`Population` keeps
what the fleet as a whole looks like, with ``river.stats``: per feature the running
median and MAD over all windows and the running median of users' own spreads (what a
user's spread is shrunk toward), and per n-gram the mean log latency.

Timing features (ms) are compared on a log scale: typing speed scales them
multiplicatively, so a log difference means the same for a fast and a slow typist.
"""

from __future__ import annotations

import math
import sys
from collections import deque

import numpy as np
from river import stats

__all__ = ["FeatureSpace", "Population", "UserProfile", "log_ms"]

_LOG_PREFIXES = ("hold.", "pp.", "shift.lead")


def log_ms(value: float) -> float:
    return math.log(value if value > 1.0 else 1.0)


class FeatureSpace:
    """Column numbers of window feature names, grown as names appear (at most ``max_features``).

    >>> space = FeatureSpace()
    >>> space.vector({"hold.median": 100.0, "erase.rate": 0.1}).round(3).tolist()
    [4.605, 0.1]
    """

    def __init__(self, max_features: int = 256) -> None:
        self.max_features = max_features
        self.names: list[str] = []
        self.index: dict[str, int] = {}
        self.user_inputs: list[str] = []  # combiner input names, by column
        self.population_inputs: list[str] = []
        self._log: list[bool] = []

    def __len__(self) -> int:
        return len(self.names)

    def _add(self, name: str) -> int | None:
        if len(self.names) >= self.max_features:
            return None  # names beyond the bound are ignored: hostile or buggy producers cannot grow state
        self.index[name] = len(self.names)
        self.names.append(name)
        self.user_inputs.append(f"u:{name}")
        self.population_inputs.append(f"p:{name}")
        self._log.append(name.startswith(_LOG_PREFIXES))
        return self.index[name]

    def vector(self, features: dict[str, float]) -> np.ndarray:
        """The features on their comparison scale, NaN where the window has none."""
        columns: list[int] = []
        values: list[float] = []
        index = self.index
        for name, value in features.items():
            column = index.get(name)
            if column is None:
                column = self._add(name)
                if column is None:
                    continue
            columns.append(column)
            values.append(log_ms(value) if self._log[column] else value)
        x = np.full(len(self.names), np.nan)
        x[columns] = values
        return x

    def original(self, column: int, value: float) -> float:
        """A value back on the feature's own scale (ms for timings)."""
        return math.exp(value) if self._log[column] else value


def _pad(array: np.ndarray, width: int, fill: float) -> np.ndarray:
    if array.shape[-1] >= width:
        return array
    pad = [(0, 0)] * (array.ndim - 1) + [(0, width - array.shape[-1])]
    return np.pad(array, pad, constant_values=fill)


class UserProfile:
    """One user's recent typing: per-feature robust statistics and per-n-gram mean log latency."""

    __slots__ = ("_gram_ring", "_next", "_ring", "gram_sums", "max_windows", "median", "n_values", "n_windows",
                 "spread")

    def __init__(self, max_windows: int) -> None:
        self.max_windows = max_windows
        self.n_windows = 0
        self._ring = np.full((0, 0), np.nan)
        self._next = 0  # oldest row once the ring is full
        self.median = np.zeros(0)
        self.spread = np.zeros(0)
        self.n_values = np.zeros(0)
        self._gram_ring: deque[tuple[tuple[str, float], ...]] = deque()
        self.gram_sums: dict[str, list[float]] = {}  # name -> [sum of log latency, count]

    def summary(self, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(median, spread, number of values) per column, padded to ``width`` columns."""
        if self.median.shape[0] < width:
            self.median = _pad(self.median, width, 0.0)
            self.spread = _pad(self.spread, width, 0.0)
            self.n_values = _pad(self.n_values, width, 0.0)
        return self.median, self.spread, self.n_values

    def learn(self, x: np.ndarray, grams: dict[str, float]) -> None:
        """Add one window: its feature vector (FeatureSpace scale) and its n-grams in log ms."""
        self.n_windows += 1
        ring = _pad(self._ring, x.shape[0], np.nan)
        if ring.shape[0] < self.max_windows:
            # The ring grows to max_windows rows, so a young profile costs what it holds.
            ring = np.vstack([ring, np.full((1, ring.shape[1]), np.nan)])
            row = ring.shape[0] - 1
        else:
            row = self._next
            self._next = (self._next + 1) % self.max_windows
        self._ring = ring
        ring[row, : x.shape[0]] = x
        ordered = np.sort(ring, axis=0)  # NaN sorts last
        n = np.count_nonzero(~np.isnan(ordered), axis=0)
        low = np.maximum((n - 1) // 2, 0)
        high = np.maximum(n // 2, 0)
        columns = np.arange(ordered.shape[1])
        median = 0.5 * (ordered[low, columns] + ordered[high, columns])
        median = np.where(n > 0, median, 0.0)
        deviation = np.nansum(np.abs(ordered - median), axis=0)
        self.median = median
        self.spread = np.where(n > 1, deviation / np.maximum(n - 1, 1), 0.0)
        self.n_values = n.astype(np.float64)
        self._learn_grams(grams)

    def _learn_grams(self, grams: dict[str, float]) -> None:
        sums = self.gram_sums
        if len(self._gram_ring) == self.max_windows:
            for name, value in self._gram_ring.popleft():
                acc = sums[name]
                acc[0] -= value
                acc[1] -= 1.0
                if acc[1] <= 0.0:
                    del sums[name]
        # Interned names are stored (and pickled) once per profile however many windows repeat them.
        entries = tuple((sys.intern(name), value) for name, value in grams.items())
        self._gram_ring.append(entries)
        for name, value in entries:
            acc = sums.get(name)
            if acc is None:
                sums[name] = [value, 1.0]
            else:
                acc[0] += value
                acc[1] += 1.0

    def __getstate__(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, object]) -> None:
        for name, value in state.items():
            setattr(self, name, value)


class _FeaturePopulation:
    __slots__ = ("mad", "var", "within")

    def __init__(self) -> None:
        self.mad = stats.MAD()  # its running median is the population's location
        self.within = stats.Quantile(0.5)
        self.var = stats.Var()


class Population:
    """What typing looks like across the fleet, learned from every window the fleet learns.

    ``floor_fraction`` of the population's standard deviation bounds every spread from
    below, so a feature that rarely varies (a rate that is almost always 0) cannot
    produce huge deviations. N-grams are tracked up to ``max_grams`` distinct names and
    used once seen ``MIN_GRAM_COUNT`` times.
    """

    MIN_GRAM_COUNT = 5

    def __init__(self, *, floor_fraction: float = 0.05, max_grams: int = 50_000) -> None:
        self.floor_fraction = floor_fraction
        self.max_grams = max_grams
        self._features: list[_FeaturePopulation] = []
        self._grams: dict[str, list[float]] = {}
        self.gram_means: dict[str, float] = {}
        self.n_windows = 0
        self._summary: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def learn(self, x: np.ndarray, grams: dict[str, float], profile: UserProfile) -> None:
        """Add a window once ``profile`` (its user's) has learned it."""
        self.n_windows += 1
        self._summary = None
        while len(self._features) < x.shape[0]:
            self._features.append(_FeaturePopulation())
        _, spread, n_values = profile.summary(x.shape[0])
        for column in np.flatnonzero(~np.isnan(x)).tolist():
            pop = self._features[column]
            value = float(x[column])
            pop.mad.update(value)
            pop.var.update(value)
            if n_values[column] >= 2:
                pop.within.update(float(spread[column]))
        means = self.gram_means
        for name, value in grams.items():
            acc = self._grams.get(name)
            if acc is None:
                if len(self._grams) >= self.max_grams:
                    continue
                acc = self._grams[name] = [value, 1.0]
            else:
                acc[0] += value
                acc[1] += 1.0
            if acc[1] >= self.MIN_GRAM_COUNT:
                means[name] = acc[0] / acc[1]

    def summary(self, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(known, location, scale, within-user spread, floor) per column, ``width`` columns."""
        cached = self._summary
        if cached is not None and cached[0].shape[0] == width:
            return cached
        known = np.zeros(width, dtype=bool)
        location = np.zeros(width)
        scale = np.ones(width)
        within = np.ones(width)
        floor = np.ones(width)
        for column, pop in enumerate(self._features[:width]):
            median = pop.mad.median.get()
            if median is None:
                continue
            lower = self.floor_fraction * math.sqrt(max(pop.var.get(), 0.0)) + 1e-9
            spread = pop.mad.get() or 0.0
            known[column] = True
            location[column] = median
            scale[column] = max(spread, lower)
            within[column] = max(pop.within.get() or scale[column], lower)
            floor[column] = lower
        self._summary = (known, location, scale, within, floor)
        return self._summary
