"""The learning gate: score every window first, learn only from windows the session has vouched for.

:class:`LearningGate` wraps one :class:`~touchstone.detectors.base.FleetScorer` (River's
habit of adding behaviour by wrapping) and owns the per-user calibrators of that
modality. Its rules, in the order a window meets them:

1. **Enrolment** (the scorer returns ``None``) and **calibration warm-up** (fewer than
   ``min_calibration`` genuine scores): the window is trusted — learned and, once
   scored, added to the calibration. Whoever types during enrolment *is* the profile
   (trust on first use), as with any enrolment.
2. **Probation**: an enrolled user's window is scored, then held by its session's
   :class:`Probation` until ``confirm_windows`` later windows of the session have
   been scored too. An impostor who takes a session over raises its risk within a
   few windows, before the first of their windows would have been learned.
3. **Release**: two thresholds, because learning and calibration fail differently.
   The *profile* learns the window only if the session's evidence stayed below
   ``learn_max_odds`` (10:1) throughout its probation and its p-value is at least
   ``learn_min_p_value`` — being strict here costs a few genuine windows. The
   *calibration* takes the window's score unless the evidence reached
   ``calibrate_max_odds`` (1000:1): calibration must see the owner's high scores too,
   and withholding every window of a genuine session that touched 10:1 would cut off
   exactly the upper tail the p-values are measured against, making the owner look
   ever stranger (measured: it doubled false alarms). Genuine sessions rarely reach
   1000:1; a clear impostor reaches it within two or three windows, before their first
   window leaves probation. Withheld windows (the last ``withheld_keep``) stay available
   to an analyst who marks the session genuine (``DetectorEngine.confirm_genuine``).

Drift is followed slowly: the calibrator keeps only recent scores and the scorer learns
every released window, but nothing from a session that looked like someone else.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from touchstone.contracts import FeatureWindow, Reason
from touchstone.detectors.base import FleetScorer
from touchstone.detectors.calibration import ScoreCalibrator

__all__ = ["Candidate", "GateConfig", "LearningGate", "Probation"]


@dataclass(frozen=True, kw_only=True)
class GateConfig:
    """When a window may teach its user's profile; every field has a working default.

    calibration_capacity
        Recent genuine scores kept per user and modality (see :class:`ScoreCalibrator`).
    kappa_max
        Calibrator mixture bound (see :func:`~touchstone.detectors.calibration.evidence`).
    min_calibration
        Genuine scores a user needs before windows carry evidence; until then the user is ``enrolling``.
    learn_min_p_value
        A window rarer than this among the owner's scores is not learned, even from a clean session.
    learn_max_odds
        Session odds against the owner that, if reached while a window is on probation, keep it from the profile.
    calibrate_max_odds
        Session odds at which every window on probation is withheld from calibration and profile.
    confirm_windows
        Later windows of the same session a window waits through before it may be learned.
    withheld_keep
        Withheld windows kept per session for an analyst's "this was genuine".
    """

    calibration_capacity: int = 1024
    kappa_max: float = 0.5
    min_calibration: int = 20
    learn_min_p_value: float = 0.01
    learn_max_odds: float = 10.0
    calibrate_max_odds: float = 1e3
    confirm_windows: int = 3
    withheld_keep: int = 8
    # Derived once in __post_init__: compared on every window.
    _learn_max_evidence: float = field(init=False, repr=False, compare=False)
    _calibrate_max_evidence: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.calibration_capacity < 1:
            raise ValueError(f"calibration_capacity must be at least 1, got {self.calibration_capacity!r}")
        if not 1 <= self.min_calibration <= self.calibration_capacity:
            raise ValueError(f"min_calibration must lie in [1, calibration_capacity], got {self.min_calibration!r}")
        if not 0.0 < self.kappa_max <= 1.0:
            raise ValueError(f"kappa_max must lie in (0, 1], got {self.kappa_max!r}")
        if not 0.0 <= self.learn_min_p_value <= 1.0:
            raise ValueError(f"learn_min_p_value must lie in [0, 1], got {self.learn_min_p_value!r}")
        if not 1.0 < self.learn_max_odds <= self.calibrate_max_odds:
            raise ValueError(
                f"need 1 < learn_max_odds <= calibrate_max_odds, got {self.learn_max_odds!r}, "
                f"{self.calibrate_max_odds!r}"
            )
        if self.confirm_windows < 0 or self.withheld_keep < 0:
            raise ValueError("confirm_windows and withheld_keep must not be negative")
        object.__setattr__(self, "_learn_max_evidence", math.log(self.learn_max_odds))
        object.__setattr__(self, "_calibrate_max_evidence", math.log(self.calibrate_max_odds))

    @property
    def learn_max_evidence(self) -> float:
        """``learn_max_odds`` in nats."""
        return self._learn_max_evidence

    @property
    def calibrate_max_evidence(self) -> float:
        """``calibrate_max_odds`` in nats."""
        return self._calibrate_max_evidence


@dataclass(slots=True)
class Candidate:
    """A scored window on probation: its score and p-value on arrival, the most session evidence since."""

    window: FeatureWindow
    score: float
    p_value: float
    ordinal: int  # the session's window count when it arrived
    peak_evidence: float = 0.0  # nats


@dataclass(slots=True)
class Probation:
    """A session's scored windows that the following windows have not vouched for yet."""

    pending: deque[Candidate] = field(default_factory=deque)
    withheld: deque[Candidate] = field(default_factory=deque)

    def hold(self, candidate: Candidate) -> None:
        self.pending.append(candidate)

    def settle(self, ordinal: int, evidence: float, config: GateConfig) -> list[Candidate]:
        """Candidates confirmed by ``confirm_windows`` later windows; all withheld once the evidence is too high."""
        if evidence >= config.calibrate_max_evidence:
            self._withhold_all(config)
            return []
        for candidate in self.pending:
            candidate.peak_evidence = max(candidate.peak_evidence, evidence)
        released = []
        while self.pending and ordinal - self.pending[0].ordinal >= config.confirm_windows:
            released.append(self.pending.popleft())
        return released

    def release_all(self, evidence: float, config: GateConfig) -> list[Candidate]:
        """At session end: everything still pending, unless the session ends suspect."""
        if evidence >= config.calibrate_max_evidence:
            self._withhold_all(config)
            return []
        for candidate in self.pending:
            candidate.peak_evidence = max(candidate.peak_evidence, evidence)
        released = list(self.pending)
        self.pending.clear()
        return released

    def vouch(self) -> list[Candidate]:
        """An analyst confirmed the session: everything withheld or pending, oldest first."""
        vouched = sorted([*self.withheld, *self.pending], key=lambda c: c.ordinal)
        self.withheld.clear()
        self.pending.clear()
        return vouched

    def _withhold_all(self, config: GateConfig) -> None:
        self.withheld.extend(self.pending)
        self.pending.clear()
        while len(self.withheld) > config.withheld_keep:
            self.withheld.popleft()


class LearningGate:
    """A FleetScorer behind a learning gate, with the per-user calibrators of its modality.

    Parameters
    ----------
    scorer
        The modality's fleet scorer; the gate decides which windows reach its ``learn_one``.
    config
        Gate thresholds; may be replaced (``gate.config = ...``) between windows.
    """

    def __init__(self, scorer: FleetScorer, config: GateConfig | None = None) -> None:
        self.scorer = scorer
        self.config = config or GateConfig()
        self._calibrators: dict[str, ScoreCalibrator] = {}
        self._learned: dict[str, int] = {}

    @property
    def modality(self) -> str:
        return self.scorer.modality

    # -- scoring -------------------------------------------------------------------------------

    def score_one(self, window: FeatureWindow) -> float | None:
        """The scorer's score, or None while the user is not enrolled (a non-finite score counts as None)."""
        score = self.scorer.score_one(window)
        if score is None or not math.isfinite(score):
            return None
        return float(score)

    def explain_one(self, window: FeatureWindow, top: int = 3) -> list[Reason]:
        return list(self.scorer.explain_one(window, top=top))

    def p_value(self, user: str, score: float) -> float | None:
        """Calibrated p-value of the score for the user; None until the calibration has warmed up."""
        calibrator = self._calibrators.get(user)
        if calibrator is None or calibrator.n < self.config.min_calibration:
            return None
        return calibrator.p_value(score)

    # -- learning ------------------------------------------------------------------------------

    def trust(self, window: FeatureWindow, score: float | None) -> None:
        """Enrolment and warm-up: learn the window unconditionally and calibrate on its score."""
        if score is not None:
            self.calibrator(window.user).update(score)
        self._learn(window)

    def admit(self, candidate: Candidate, *, vouched: bool = False) -> bool:
        """A released candidate: its score calibrates; it is learned if the session stayed clean and it is typical.

        ``vouched``: an analyst confirmed the owner, so the window is learned whatever it looked like.
        """
        self.calibrator(candidate.window.user).update(candidate.score)
        too_suspect = candidate.peak_evidence >= self.config.learn_max_evidence
        if not vouched and (too_suspect or candidate.p_value < self.config.learn_min_p_value):
            return False
        self._learn(candidate.window)
        return True

    def _learn(self, window: FeatureWindow) -> None:
        self.scorer.learn_one(window)
        self._learned[window.user] = self._learned.get(window.user, 0) + 1

    # -- per-user state ------------------------------------------------------------------------

    def calibrator(self, user: str) -> ScoreCalibrator:
        calibrator = self._calibrators.get(user)
        if calibrator is None:
            calibrator = ScoreCalibrator(self.config.calibration_capacity, self.config.kappa_max)
            self._calibrators[user] = calibrator
        return calibrator

    def calibration_size(self, user: str) -> int:
        calibrator = self._calibrators.get(user)
        return 0 if calibrator is None else calibrator.n

    def learned(self, user: str) -> int:
        """Windows of the user this gate let through to the scorer."""
        return self._learned.get(user, 0)

    def enrolment(self, user: str) -> float:
        """Progress in [0, 1]: half the scorer's own enrolment, half the calibration warm-up."""
        scorer_part = min(1.0, max(0.0, float(self.scorer.enrolment(user))))
        calibration_part = min(1.0, self.calibration_size(user) / self.config.min_calibration)
        return 0.5 * (scorer_part + calibration_part)

    def enrolled(self, user: str) -> bool:
        return self.calibration_size(user) >= self.config.min_calibration

    def users(self) -> list[str]:
        return list(self._learned)
