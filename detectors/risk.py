"""Session risk: evidence accumulated over a session's windows, mapped to 0–100 and an alert level.

Each scored window brings ``e``, the log e-value of its calibrated score (nats, see
:mod:`touchstone.detectors.calibration`): about -0.7 on average for the owner, up to
+3.6 for a window unlike anything the owner produced. A session keeps three
CUSUM-style accumulators, one per modality and one fused over both,

    S <- min(cap, max(0, decay * S + e))

and between windows every accumulator also halves per ``half_life_s`` of capture time.
Log e-values of independent windows add, so the fused accumulator combines keystroke
and mouse evidence without weights; the per-modality ones keep a single-modality
impostor from being diluted by the other modality. The session's evidence is the
largest of the three.

Levels are odds against the owner: the session's evidence ``S`` (nats) enters ``low``
at ``ln(100)`` (100:1), ``medium`` at 1000:1, ``high`` at 10^4:1 and ``critical`` at
10^5:1, and leaves a level only when the odds have fallen ``exit_factor`` (about 3x)
below its entry (hysteresis: a session hovering on a threshold does not flap). Under the
owner a CUSUM over log e-values crosses ``ln(c)`` about once per ``c`` windows at worst,
and in practice far less often (it drifts down). Risk is a display scale,
``100 * S / ln(cap_odds)``: with the default cap of 10^6:1 the levels sit at risk
33, 50, 67 and 83. One window carries at most ~3.6 nats (37:1, a calibrator holding
1024 scores), so one bad window raises no level at all; three windows at that ceiling
reach ``high``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import pairwise

from touchstone.contracts import Level

__all__ = ["RiskConfig", "SessionRisk", "next_level", "risk_from_evidence"]

MODALITY_LABELS = ("keys", "mouse")


@dataclass(frozen=True, kw_only=True)
class RiskConfig:
    """Thresholds and dynamics of session risk; every field has a working default.

    decay_per_window
        Factor applied to the accumulated evidence at each window before adding the
        new one: old evidence fades over about ``1 / (1 - decay)`` windows, which keeps
        a genuine session with a few odd stretches near zero.
    half_life_s
        Capture-time half-life of the evidence between windows (a session left idle cools down).
    cap_odds
        Odds against the owner at which risk is 100; also the most a session accumulates,
        so a session recovers in bounded time once its windows look genuine again.
    low_odds, medium_odds, high_odds, critical_odds
        Odds against the owner at which each level is entered.
    exit_factor
        A level is left only when the odds fall this many times below its entry odds.
    """

    decay_per_window: float = 0.95
    half_life_s: float = 900.0
    cap_odds: float = 1e6
    low_odds: float = 1e2
    medium_odds: float = 1e3
    high_odds: float = 1e4
    critical_odds: float = 1e5
    exit_factor: float = 10**0.5
    # Derived once in __post_init__: next_level runs on every window.
    _thresholds: tuple[float, float, float, float] = field(init=False, repr=False, compare=False)
    _exit_margin: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.decay_per_window <= 1.0:
            raise ValueError(f"decay_per_window must lie in (0, 1], got {self.decay_per_window!r}")
        if not self.half_life_s > 0.0:
            raise ValueError(f"half_life_s must be positive, got {self.half_life_s!r}")
        odds = (self.low_odds, self.medium_odds, self.high_odds, self.critical_odds, self.cap_odds)
        if not (odds[0] > 1.0 and all(a < b for a, b in pairwise(odds[:4])) and odds[3] <= odds[4]):
            raise ValueError(f"level odds must exceed 1, increase strictly and not pass cap_odds, got {odds}")
        if not 1.0 <= self.exit_factor < self.low_odds:
            raise ValueError(f"exit_factor must lie in [1, low_odds), got {self.exit_factor!r}")
        thresholds = tuple(self.risk_of_odds(o) for o in odds[:4])
        object.__setattr__(self, "_thresholds", thresholds)
        object.__setattr__(self, "_exit_margin", self.risk_of_odds(self.exit_factor))

    @property
    def evidence_cap(self) -> float:
        """Evidence (nats) at risk 100."""
        return math.log(self.cap_odds)

    def risk_of_odds(self, odds: float) -> float:
        return 100.0 * math.log(odds) / self.evidence_cap

    @property
    def thresholds(self) -> tuple[float, float, float, float]:
        """Entry risk of LOW, MEDIUM, HIGH, CRITICAL."""
        return self._thresholds

    @property
    def exit_margin(self) -> float:
        """Risk points below a level's entry at which the level is left."""
        return self._exit_margin

    def enter(self, level: Level) -> float:
        if level is Level.NONE:
            return 0.0
        return self.thresholds[level - 1]


def risk_from_evidence(evidence: float, cap: float) -> float:
    """Risk 0–100, linear in accumulated evidence (nats) up to ``cap``."""
    return 100.0 * min(max(evidence, 0.0), cap) / cap


def next_level(current: Level, risk: float, config: RiskConfig) -> Level:
    """The level after observing ``risk``: rise to the highest level entered, fall only below exit thresholds.

    >>> cfg = RiskConfig()
    >>> [round(t, 1) for t in cfg.thresholds], round(cfg.exit_margin, 1)
    ([33.3, 50.0, 66.7, 83.3], 8.3)
    >>> next_level(Level.NONE, 55.0, cfg).label, next_level(Level.HIGH, 60.0, cfg).label
    ('medium', 'high')
    >>> next_level(Level.HIGH, 55.0, cfg).label, next_level(Level.HIGH, 5.0, cfg).label
    ('medium', 'none')
    """
    entered = Level.NONE
    for level, threshold in zip((Level.LOW, Level.MEDIUM, Level.HIGH, Level.CRITICAL), config.thresholds, strict=True):
        if risk >= threshold:
            entered = level
    if entered >= current:
        return entered
    level = current
    while level > entered and risk < config.enter(level) - config.exit_margin:
        level = Level(level - 1)
    return level


@dataclass(slots=True)
class SessionRisk:
    """Evidence accumulators and hysteretic level of one session."""

    per_modality: dict[str, float] = field(default_factory=dict)
    fused: float = 0.0
    last_t: float | None = None  # capture time (epoch ms) of the newest window
    level: Level = Level.NONE
    risk: float = 0.0

    def update(self, modality: str, evidence: float, t_ms: float, config: RiskConfig) -> float:
        """Add one window's evidence (nats) observed at capture time ``t_ms``; return the new risk."""
        if not math.isfinite(evidence):
            raise ValueError(f"evidence must be finite, got {evidence!r}")
        self.cool(t_ms, config)
        cap, decay = config.evidence_cap, config.decay_per_window
        own = self.per_modality.get(modality, 0.0)
        self.per_modality[modality] = min(cap, max(0.0, decay * own + evidence))
        self.fused = min(cap, max(0.0, decay * self.fused + evidence))
        self.risk = risk_from_evidence(self.evidence, cap)
        self.level = next_level(self.level, self.risk, config)
        return self.risk

    def cool(self, t_ms: float, config: RiskConfig) -> None:
        """Let evidence fade with the capture time elapsed since the last window (never negative)."""
        if self.last_t is not None and t_ms > self.last_t:
            factor = 0.5 ** ((t_ms - self.last_t) / 1000.0 / config.half_life_s)
            self.fused *= factor
            for name in self.per_modality:
                self.per_modality[name] *= factor
        self.last_t = t_ms if self.last_t is None else max(self.last_t, t_ms)

    @property
    def evidence(self) -> float:
        return max(self.fused, *self.per_modality.values()) if self.per_modality else self.fused

    @property
    def modality(self) -> str:
        """What carries the evidence: ``fused`` when both modalities contribute and fusion is strongest."""
        if not self.per_modality:
            return "fused"
        name, best = max(self.per_modality.items(), key=lambda item: item[1])
        contributing = sum(1 for value in self.per_modality.values() if value > 0.0)
        if contributing >= 2 and self.fused >= best:
            return "fused"
        return name

    def modality_risk(self, config: RiskConfig) -> dict[str, float]:
        """Risk of each accumulator (for the alert's ``scores`` and the live view)."""
        cap = config.evidence_cap
        out = {f"risk_{name}": risk_from_evidence(value, cap) for name, value in self.per_modality.items()}
        out["risk_fused"] = risk_from_evidence(self.fused, cap)
        return out

    def reset(self) -> None:
        self.per_modality.clear()
        self.fused = 0.0
        self.risk = 0.0
        self.level = Level.NONE
