"""Distances between one keystroke window and a profile: the inputs of the fleet's combiner.

Two families, both measured against the claimed user's profile and, for reference,
against the population (a window that is unusual for everyone should count less):

* per feature, a scaled-Manhattan term: ``|x - median| / spread``, the user's spread
  shrunk toward the population's typical within-user spread (with ``shrink``
  pseudo-windows, so five enrolment windows do not make a fragile estimate) and every
  term capped at ``cap``;
* over the key-token n-grams the window shares with the profile (digraph latencies
  ``a>b`` and per-key holds ``a``), Gunetti & Picardi's measures: R, the normalised
  disorder between the two rankings of the shared n-grams by duration, and A, the
  share of n-grams whose durations differ by more than a ratio of 1.25; plus the mean
  absolute log ratio, how many n-grams are shared, and how often the window is closer
  to the user's n-gram latency than to the population's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from touchstone.detectors.keys_profile import FeatureSpace, Population, UserProfile

__all__ = ["PreparedWindow", "comparison_inputs", "feature_deviations", "prepare_window", "rank_disorder"]

_LOG_RATIO = math.log(1.25)  # Gunetti & Picardi's threshold for the A measure


def rank_disorder(first: Sequence[float] | np.ndarray, second: Sequence[float] | np.ndarray) -> float:
    """Gunetti & Picardi's R: disorder of two rankings of the same items, 0 (same) to 1 (reversed).

    Ties keep the items' order (stable sorts), so equal durations never count as disorder.

    >>> rank_disorder([1.0, 2.0, 3.0], [10.0, 20.0, 30.0]), rank_disorder([1.0, 2.0, 3.0], [3.0, 2.0, 1.0])
    (0.0, 1.0)
    """
    n = len(first)
    if n < 2:
        return 0.0
    order_first = np.argsort(np.asarray(first, dtype=np.float64), kind="stable")
    rank_second = np.empty(n, dtype=np.int64)
    rank_second[np.argsort(np.asarray(second, dtype=np.float64), kind="stable")] = np.arange(n)
    disorder = int(np.abs(np.arange(n) - rank_second[order_first]).sum())
    maximum = (n * n) / 2 if n % 2 == 0 else (n * n - 1) / 2
    return disorder / maximum


@dataclass(slots=True)
class PreparedWindow:
    """What a window brings to every comparison, computed once however many profiles it meets."""

    x: np.ndarray  # features on the FeatureSpace scale, NaN where absent
    columns: np.ndarray  # columns the window has and the population knows
    within: np.ndarray  # population's within-user spread at those columns
    floor: np.ndarray
    population_inputs: dict[str, float]
    log_grams: dict[str, float]
    # per n-gram family: names, log latencies, population mean log latencies (NaN if too rare)
    grams: dict[str, tuple[list[str], np.ndarray, np.ndarray]]


def prepare_window(
    x: np.ndarray, grams: dict[str, float], space: FeatureSpace, population: Population, *, cap: float
) -> PreparedWindow:
    """The profile-independent part of every comparison of a window (``grams`` in log ms)."""
    known, location, scale, within, floor = population.summary(x.shape[0])
    columns = np.flatnonzero(known & ~np.isnan(x))
    population_inputs: dict[str, float] = {}
    if columns.size:
        z = np.minimum(np.abs(x[columns] - location[columns]) / scale[columns], cap).tolist()
        names = space.population_inputs
        for column, value in zip(columns.tolist(), z, strict=True):
            population_inputs[names[column]] = value
        population_inputs["p:mean"] = math.fsum(z) / len(z)
    lists: dict[str, tuple[list[str], list[float], list[float]]] = {"di": ([], [], []), "uni": ([], [], [])}
    pop_mean = population.gram_means.get
    for name, value in grams.items():
        family = lists["di" if ">" in name else "uni"]
        family[0].append(name)
        family[1].append(value)
        family[2].append(pop_mean(name, math.nan))
    families = {key: (names, np.array(values), np.array(pops)) for key, (names, values, pops) in lists.items()}
    return PreparedWindow(x, columns, within[columns], floor[columns], population_inputs, grams, families)


def comparison_inputs(
    prepared: PreparedWindow, profile: UserProfile, space: FeatureSpace, *, cap: float, shrink: float
) -> dict[str, float]:
    """Combiner inputs of a prepared window against a profile.

    Inputs the window cannot provide are left out; the combiner reads a missing input
    as an average one.
    """
    out = dict(prepared.population_inputs)
    median, spread, n_values = profile.summary(prepared.x.shape[0])
    columns = prepared.columns
    if columns.size:
        count = n_values[columns]
        mine = count > 0
        if mine.any():
            cols = columns[mine]
            dof = count[mine] - 1.0
            sd = (dof * spread[cols] + shrink * prepared.within[mine]) / (dof + shrink)
            sd = np.maximum(sd, prepared.floor[mine])
            z = np.minimum(np.abs(prepared.x[cols] - median[cols]) / sd, cap).tolist()
            names = space.user_inputs
            for column, value in zip(cols.tolist(), z, strict=True):
                out[names[column]] = value
            out["u:mean"] = math.fsum(z) / len(z)

    sums = profile.gram_sums
    all_window: list[np.ndarray] = []
    all_mine: list[np.ndarray] = []
    all_far = 0
    all_gap = 0.0
    for family, (names_, values, pop_means) in prepared.grams.items():
        shared: list[int] = []
        means: list[float] = []
        for i, name in enumerate(names_):
            acc = sums.get(name)
            if acc is not None:
                shared.append(i)
                means.append(acc[0] / acc[1])
        n = len(shared)
        out[f"g:{family}.n"] = math.log1p(n)
        if not n:
            continue
        window = values[shared]
        mine_means = np.array(means)
        gap = np.abs(window - mine_means)
        far = int(np.count_nonzero(gap > _LOG_RATIO))
        gap = np.minimum(gap, 1.0)  # one wildly off n-gram (a hesitation) moves D by a bounded amount
        gap_sum = float(gap.sum())
        if n >= 2:
            out[f"g:{family}.R"] = rank_disorder(window, mine_means)
            out[f"g:{family}.A"] = far / n
            out[f"g:{family}.D"] = gap_sum / n
        pops = pop_means[shared]
        known = ~np.isnan(pops)
        n_pop = int(np.count_nonzero(known))
        if n_pop:
            own = gap[known]
            other = np.minimum(np.abs(window[known] - pops[known]), 1.0)
            out[f"gp:{family}.closer"] = int(np.count_nonzero(own < other)) / n_pop
            out[f"gp:{family}.margin"] = float((own - other).sum()) / n_pop
            out[f"gp:{family}.pop"] = float(other.sum()) / n_pop
        all_window.append(window)
        all_mine.append(mine_means)
        all_far += far
        all_gap += gap_sum
    n = sum(len(w) for w in all_window)
    out["g:all.n"] = math.log1p(n)
    if n >= 2:
        out["g:all.R"] = rank_disorder(np.concatenate(all_window), np.concatenate(all_mine))
        out["g:all.A"] = all_far / n
        out["g:all.D"] = all_gap / n
    return out


def feature_deviations(
    prepared: PreparedWindow, profile: UserProfile, *, shrink: float
) -> list[tuple[int, float, float]]:
    """(column, signed robust z, profile median) for each feature the window and the profile share."""
    median, spread, n_values = profile.summary(prepared.x.shape[0])
    out = []
    for i, column in enumerate(prepared.columns.tolist()):
        count = n_values[column]
        if count <= 0:
            continue
        dof = count - 1.0
        sd = max((dof * spread[column] + shrink * prepared.within[i]) / (dof + shrink), prepared.floor[i])
        out.append((column, float((prepared.x[column] - median[column]) / sd), float(median[column])))
    return out
