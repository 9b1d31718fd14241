"""Per-user score calibration: where a score falls among that user's recent genuine scores.

A :class:`ScoreCalibrator` keeps the last ``capacity`` genuine scores of one user
and one modality (a ring buffer, plus the same values kept sorted) and answers, for a
new score ``x``, the conformal p-value

    p(x) = (1 + #{stored scores >= x}) / (n + 1)

which, if the user's genuine windows are exchangeable with the stored ones, satisfies
``P(p <= t) <= t``. :func:`evidence` turns a p-value into the log of an *e-value*
(a bet against "this is the owner" that pays 1 on average when it is the owner), by
averaging Vovk's power calibrators ``kappa * p ** (kappa - 1)`` over
``kappa ~ U(0, kappa_max)`` (default 0.5: the bet leans toward small p-values, which
is where impostors land). Log e-values add up over windows, so a session's evidence
is a sum, and a threshold of ``log(c)`` nats has a false-alarm rate of about ``1/c`` per
window for the owner. Memory is bounded by ``capacity`` (8 bytes a score, twice); old scores leave as new ones
arrive, so the calibration follows a slowly drifting profile.

Beyond the largest stored score the conformal p-value stops at ``1/(n+1)``, which
with a young profile (tens of scores) caps what a window far outside the owner's range
can say. There the calibrator extrapolates the upper tail (peaks over threshold: a
generalised Pareto excess distribution of fixed shape 0.5, heavier than exponential, its
scale matched to the mean excess of the top tenth of the stored scores) and takes the
smaller of the two p-values, never below :data:`TAIL_FLOOR_N` scores' worth of resolution. Each
window's evidence stays capped at what a full calibrator (``capacity`` scores) could give,
so one window alone still raises no alert level.
"""

from __future__ import annotations

import bisect
import math
from array import array
from typing import Any

__all__ = ["ScoreCalibrator", "evidence", "max_evidence"]

# Below this -log(p) the closed form loses precision to cancellation; its series is used instead.
_SERIES_BELOW = 1e-4
# The tail is extrapolated only from this many stored scores on, from the top tenth but at least this many.
TAIL_MIN_SCORES = 20
TAIL_MIN_EXCESSES = 5
# Smallest p-value the tail may give, as if the calibrator held this many scores.
TAIL_FLOOR_N = 1_000_000
TAIL_SHAPE = 0.5


def evidence(p_value: float, kappa_max: float = 0.5) -> float:
    """Log e-value (nats) of a p-value, from the power calibrators mixed over ``kappa ~ U(0, kappa_max)``.

    Decreasing in ``p_value``; ``log(kappa_max / 2)`` at ``p = 1``; negative on average for genuine windows.

    >>> round(evidence(1.0), 3), round(evidence(0.05), 3), round(evidence(0.001), 3)
    (-1.386, 0.677, 3.584)
    >>> round(evidence(0.001, kappa_max=1.0), 3)  # the full mixture bets less on tiny p-values
    3.035
    """
    if not 0.0 < p_value <= 1.0:
        raise ValueError(f"p_value must lie in (0, 1], got {p_value!r}")
    if not 0.0 < kappa_max <= 1.0:
        raise ValueError(f"kappa_max must lie in (0, 1], got {kappa_max!r}")
    u = -math.log(p_value)
    ua = u * kappa_max
    if ua < _SERIES_BELOW:
        # 1 - e^-x (1 + x) = x^2/2 - x^3/3 + O(x^4), with x = ua.
        return math.log(kappa_max / 2.0) + u + math.log1p(-2.0 * ua / 3.0)
    # (1/a) * integral_0^a k p^(k-1) dk  =  e^u (1 - e^-ua (1 + ua)) / (a u^2)
    tail = -math.expm1(-ua) - ua * math.exp(-ua)
    return u + math.log(tail) - math.log(kappa_max * u * u)


def max_evidence(n_scores: int, kappa_max: float = 0.5) -> float:
    """The most evidence one window can carry against a calibrator holding ``n_scores`` scores."""
    return evidence(1.0 / (n_scores + 1), kappa_max)


class ScoreCalibrator:
    """The last ``capacity`` genuine scores of one user for one modality, as a p-value oracle.

    Parameters
    ----------
    capacity
        How many recent genuine scores to keep. The smallest p-value is ``1/(n+1)``, so
        the capacity also caps the evidence a single window can carry.
    kappa_max
        Upper end of the calibrator mixture (see :func:`evidence`).

    Examples
    --------
    >>> cal = ScoreCalibrator(capacity=4)
    >>> for s in [1.0, 2.0, 3.0, 4.0, 5.0]:
    ...     cal.update(s)
    >>> cal.n, cal.p_value(4.5), cal.p_value(0.0), cal.quantile(4.5)
    (4, 0.4, 1.0, 0.75)
    """

    __slots__ = ("_next", "_ring", "_sorted", "capacity", "kappa_max")

    def __init__(self, capacity: int = 1024, kappa_max: float = 0.5) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity!r}")
        if not 0.0 < kappa_max <= 1.0:
            raise ValueError(f"kappa_max must lie in (0, 1], got {kappa_max!r}")
        self.capacity = capacity
        self.kappa_max = kappa_max
        # Flat float arrays (8 bytes a score), not lists of boxed floats: a profile per user adds up.
        self._ring = array("d")
        self._next = 0  # ring slot the next score overwrites once full
        self._sorted = array("d")

    @property
    def n(self) -> int:
        return len(self._ring)

    def update(self, score: float) -> None:
        """Add one genuine score, forgetting the oldest when full."""
        if not math.isfinite(score):
            raise ValueError(f"score must be finite, got {score!r}")
        score = float(score)
        if len(self._ring) < self.capacity:
            self._ring.append(score)
        else:
            oldest = self._ring[self._next]
            del self._sorted[bisect.bisect_left(self._sorted, oldest)]
            self._ring[self._next] = score
            self._next = (self._next + 1) % self.capacity
        bisect.insort(self._sorted, score)

    def p_value(self, score: float) -> float:
        """Conformal p-value of ``score``: small when it is higher than the user's genuine scores."""
        if math.isnan(score):
            raise ValueError("score must not be NaN")
        n = len(self._sorted)
        at_least = n - bisect.bisect_left(self._sorted, score)
        conformal = (at_least + 1) / (n + 1)
        if at_least or n < TAIL_MIN_SCORES:
            return conformal
        return min(conformal, self._tail_p_value(score))

    def _tail_p_value(self, score: float) -> float:
        """Exponential peaks-over-threshold estimate of P(genuine >= score) beyond the largest stored score."""
        n = len(self._sorted)
        m = max(TAIL_MIN_EXCESSES, n // 10)
        threshold = self._sorted[n - m - 1]
        mean_excess = sum(self._sorted[n - m :]) / m - threshold
        if not mean_excess > 0.0:
            return 1.0
        # Generalised Pareto excesses with shape TAIL_SHAPE (heavier than exponential): an owner whose
        # scores drift past their history is not mistaken for a stranger as quickly.
        z = (score - threshold) / (mean_excess * (1.0 - TAIL_SHAPE))
        p = (m / (n + 1)) * (1.0 + TAIL_SHAPE * z) ** (-1.0 / TAIL_SHAPE)
        return max(p, 1.0 / (TAIL_FLOOR_N + 1))

    def quantile(self, score: float) -> float:
        """Fraction of stored genuine scores strictly below ``score`` (0 when empty)."""
        if math.isnan(score):
            raise ValueError("score must not be NaN")
        if not self._sorted:
            return 0.0
        return bisect.bisect_left(self._sorted, score) / len(self._sorted)

    def evidence(self, score: float) -> float:
        """Log e-value (nats) of ``score`` against the hypothesis that the owner produced it.

        Capped at what a full calibrator can give (``max_evidence(capacity)``), however far out the tail goes.
        """
        cap = evidence(1.0 / (self.capacity + 1), self.kappa_max)
        return min(evidence(self.p_value(score), self.kappa_max), cap)

    # Pickled as the ring alone (8 bytes a score); the sorted copy is rebuilt on load.
    def __getstate__(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "kappa_max": self.kappa_max,
            "next": self._next,
            "ring": self._ring.tobytes(),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.capacity = state["capacity"]
        self.kappa_max = state["kappa_max"]
        self._next = state["next"]
        self._ring = array("d")
        self._ring.frombytes(state["ring"])
        self._sorted = array("d", sorted(self._ring))

    def __repr__(self) -> str:
        return f"ScoreCalibrator(capacity={self.capacity}, n={self.n})"
