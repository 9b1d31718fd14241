"""The detector engine: feature windows in, alerts out. Transport-free and deterministic.

One :class:`DetectorEngine` serves the users of one partition (the Faust agent keeps one
per assigned partition; the evaluation harness one for the whole dataset). For each
window, in order:

1. **De-duplication.** Windows of a session arrive in index order per modality, so a
   window whose index is not above the last one processed for its session and modality
   is a replay and is ignored (exact, O(1) memory). Windows of a recently closed session
   are ignored too. Re-processing after a restart is therefore safe.
2. **Score, then learn** through the modality's :class:`~touchstone.detectors.gate.LearningGate`:
   enrolling users are learned without scoring; enrolled users are scored, calibrated
   to a p-value among their own genuine scores, turned into evidence and accumulated
   into the session's :class:`~touchstone.detectors.risk.SessionRisk`; the window waits in
   probation before it may be learned.
3. **Incidents.** A session's alerts form *episodes*: the first level above ``none``
   opens one (``status="open"``), each higher level reached updates it (``"update"``),
   and it is resolved (``"resolved"``, carrying the episode's peak level so it is routed
   where the opening went) when the risk falls back to ``none``, the session ends or
   idles out. ``alert_id`` is a hash of (session, episode, level) — or (session,
   episode, "resolved") — so the same incident step always has the same id.
4. **Session end.** A window closed by ``session_end`` or ``idle`` ends its modality; the
   session closes when every modality it has seen has ended, on :meth:`end_session`, after
   ``end_grace_ms`` once one modality ended, or after ``session_idle_ms`` without windows.

Time: risk and idleness run on capture time (``window.end``), so replaying the same
windows gives the same result whenever it happens; ``now_ms`` only stamps
``created_at``. The idle clock is the newest capture time seen, held within
``clock_skew_ms`` of ``now_ms`` so a collector with a clock far in the future cannot
expire everyone else's sessions.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from touchstone.config import Settings
from touchstone.contracts import Alert, FeatureWindow, Level, Reason
from touchstone.contracts.features import MODALITIES
from touchstone.detectors.base import FleetScorer
from touchstone.detectors.calibration import evidence
from touchstone.detectors.exceptions import DetectorError
from touchstone.detectors.gate import Candidate, GateConfig, LearningGate, Probation
from touchstone.detectors.risk import RiskConfig, SessionRisk
from touchstone.detectors.snapshot import DEV_SNAPSHOT_KEY, dump_snapshot, load_snapshot
from touchstone.errors import ContractError

__all__ = [
    "ENGINE_VERSION",
    "DetectorEngine",
    "EngineConfig",
    "EngineCounters",
    "ModalityStatus",
    "SessionView",
    "UserStatus",
]

log = logging.getLogger(__name__)

ENGINE_VERSION = "touchstone-detectors/1"
SNAPSHOT_KIND = "detector-engine"
_CHECKPOINT_FORMAT = 1
_CLOSING = frozenset({"session_end", "idle"})


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    """Engine behaviour; risk and gate thresholds live in their own sections.

    session_idle_ms
        Capture time without a window after which a session is closed and its incident resolved.
    end_grace_ms
        Once one modality has ended, how long to wait for the other's last window.
    expiry_scan_ms
        How often (capture time) :meth:`DetectorEngine.process` looks for idle sessions.
    clock_skew_ms
        How far ahead of ``now_ms`` a capture time may move the idle clock.
    closed_memory
        Closed session ids remembered so their replayed windows are ignored.
    top_reasons
        Deviating features reported per alert.
    key_window, mouse_window
        Full window sizes (keystrokes, mouse actions). A window closed early (a pause, the session's
        end) holds less behaviour, so its evidence is tempered by the fraction it holds: one short,
        noisy window must not weigh as much as a full one.
    model_version
        Prefix of every alert's ``model_version`` (the scorers' names follow it).
    """

    risk: RiskConfig = field(default_factory=RiskConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    session_idle_ms: float = 600_000.0
    end_grace_ms: float = 30_000.0
    expiry_scan_ms: float = 10_000.0
    clock_skew_ms: float = 120_000.0
    closed_memory: int = 10_000
    top_reasons: int = 3
    key_window: int = 50
    mouse_window: int = 10
    model_version: str = ENGINE_VERSION

    def __post_init__(self) -> None:
        for name in ("session_idle_ms", "end_grace_ms", "expiry_scan_ms", "clock_skew_ms"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)!r}")
        if self.closed_memory < 0 or self.top_reasons < 0:
            raise ValueError("closed_memory and top_reasons must not be negative")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> EngineConfig:
        """Defaults tied to the deployment: sessions idle out at twice the stream stage's idle time."""
        values: dict[str, Any] = {
            "session_idle_ms": 2.0 * settings.session_idle_s * 1000.0,
            "key_window": settings.key_window,
            "mouse_window": settings.mouse_window,
        }
        values.update(overrides)
        return cls(**values)


@dataclass(slots=True)
class EngineCounters:
    """Monotonic counts for metrics (the worker exports them as Prometheus counters)."""

    windows: int = 0
    duplicates: int = 0  # replayed windows, or windows of a session already closed
    unrouted: int = 0  # no scorer for the window's modality
    enrolling: int = 0  # learned without a score (scorer not enrolled yet)
    calibrating: int = 0  # scored and learned while the calibration warms up
    scored: int = 0  # scored into session risk
    learned: int = 0  # released from probation and learned
    refused: int = 0  # released to calibration only: too atypical, or the session touched learn_max_odds
    withheld: int = 0  # dropped from calibration and learning: the session reached calibrate_max_odds
    alerts: int = 0
    sessions_opened: int = 0
    sessions_closed: int = 0
    sessions_expired: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class SessionView:
    """One open session as the live demo shows it."""

    user: str
    host: str
    session_id: str
    risk: float
    level: Level
    modality: str
    windows_seen: int
    session_age_s: float
    last_update: float  # capture time (epoch ms) of the newest window
    incident_open: bool
    last_score: float | None = None  # the newest window's raw score (None while its user enrols)


@dataclass(frozen=True, slots=True)
class ModalityStatus:
    modality: str
    state: str  # "enrolling" | "enrolled"
    progress: float
    calibration_scores: int
    windows_learned: int


@dataclass(frozen=True, slots=True)
class UserStatus:
    """A user is ``enrolled`` as soon as one modality is; progress is that of the most advanced modality."""

    user: str
    state: str
    progress: float
    modalities: dict[str, ModalityStatus]


@dataclass(slots=True)
class _Session:
    user: str
    host: str
    session_id: str
    session_start: float
    risk: SessionRisk = field(default_factory=SessionRisk)
    probation: Probation = field(default_factory=Probation)
    windows_seen: int = 0
    last_index: dict[str, int] = field(default_factory=dict)
    modalities_seen: set[str] = field(default_factory=set)
    modalities_ended: set[str] = field(default_factory=set)
    ending_since: float | None = None
    last_event: float = 0.0
    last_window_id: str = ""
    last_scored: dict[str, FeatureWindow] = field(default_factory=dict)
    last_p: dict[str, tuple[float, float]] = field(default_factory=dict)  # modality -> (score, p-value)
    last_score: float | None = None
    episode: int = 0
    peak: Level = Level.NONE


def alert_id(session_id: str, episode: int, step: str) -> str:
    """Deterministic id of one incident step (a level label, or ``resolved``)."""
    digest = hashlib.sha256(f"{session_id}\x1f{episode}\x1f{step}".encode()).hexdigest()
    return f"ts-{digest[:32]}"


class DetectorEngine:
    """Scores windows, learns behind a gate, accumulates session risk and raises alerts.

    Parameters
    ----------
    scorers
        One fleet scorer per modality, keyed ``"keys"`` / ``"mouse"``.
    config
        Engine, risk and gate settings.
    snapshot_key
        Key that signs :meth:`checkpoint` and verifies :meth:`restore` (see
        :func:`~touchstone.detectors.snapshot.load_snapshot_key`); the public development
        key, with a warning, when omitted.

    Not thread-safe: one engine per partition, driven by one agent (concurrency 1).
    """

    def __init__(
        self,
        scorers: Mapping[str, FleetScorer],
        config: EngineConfig | None = None,
        *,
        snapshot_key: bytes | None = None,
    ) -> None:
        for name, scorer in scorers.items():
            if name not in MODALITIES:
                raise ValueError(f"scorer key must be one of {sorted(MODALITIES)}, got {name!r}")
            if getattr(scorer, "modality", name) != name:
                raise ValueError(f"scorer under {name!r} declares modality {scorer.modality!r}")
        if not scorers:
            raise ValueError("at least one scorer is needed")
        self.config = config or EngineConfig()
        if snapshot_key is None:
            log.warning("INSECURE: detector engine signs its checkpoints with the public development key")
            snapshot_key = DEV_SNAPSHOT_KEY
        self._key = snapshot_key
        self._gates = {name: LearningGate(scorer, self.config.gate) for name, scorer in scorers.items()}
        self._sessions: dict[str, _Session] = {}
        self._closed: OrderedDict[str, float] = OrderedDict()
        self._clock = -math.inf  # newest capture time seen (bounded by now_ms + clock_skew_ms)
        self._last_scan = -math.inf
        self.counters = EngineCounters()

    @property
    def scorers(self) -> dict[str, FleetScorer]:
        """The live scorers (replaced by :meth:`restore`)."""
        return {name: gate.scorer for name, gate in self._gates.items()}

    # -- the hot path --------------------------------------------------------------------------

    def process(self, window: FeatureWindow, now_ms: float) -> list[Alert]:
        """Take one feature window; return the alerts it caused (usually none).

        Raises ContractError if the window names another user than its session's. An exception
        from a scorer propagates; the window then counts as processed (it is not retried by this
        engine, and a replay from an earlier checkpoint meets the same exception).
        """
        self.counters.windows += 1
        gate = self._gates.get(window.modality)
        if gate is None:
            self.counters.unrouted += 1
            return []
        session = self._sessions.get(window.session_id)
        if session is None:
            if window.session_id in self._closed:
                self.counters.duplicates += 1
                return []
            session = self._open(window)
        elif session.user != window.user:
            raise ContractError(
                "session_user_mismatch",
                f"window {window.window_id} claims user {window.user!r}, session belongs to {session.user!r}",
            )
        if window.index <= session.last_index.get(window.modality, -1):
            self.counters.duplicates += 1
            return []
        session.last_index[window.modality] = window.index
        session.modalities_seen.add(window.modality)
        session.windows_seen += 1
        session.last_event = max(session.last_event, window.end)
        session.last_window_id = window.window_id
        self._clock = max(self._clock, min(window.end, now_ms + self.config.clock_skew_ms))

        alerts = self._assess(session, gate, window, now_ms)
        if window.closed_by in _CLOSING:
            session.modalities_ended.add(window.modality)
            if session.ending_since is None:
                session.ending_since = window.end
            if session.modalities_ended >= session.modalities_seen:
                alerts.extend(self._close(session, now_ms))
        if self._clock - self._last_scan >= self.config.expiry_scan_ms:
            self._last_scan = self._clock
            alerts.extend(self._expire_before(self._clock, now_ms))
        self.counters.alerts += len(alerts)
        return alerts

    def _open(self, window: FeatureWindow) -> _Session:
        self.counters.sessions_opened += 1
        session = _Session(
            user=window.user, host=window.host, session_id=window.session_id, session_start=window.session_start
        )
        self._sessions[window.session_id] = session
        return session

    def _assess(self, session: _Session, gate: LearningGate, window: FeatureWindow, now_ms: float) -> list[Alert]:
        score = gate.score_one(window)
        session.last_score = score
        if score is None:
            gate.trust(window, None)
            self.counters.enrolling += 1
            return []
        p_value = gate.p_value(window.user, score)
        if p_value is None:
            gate.trust(window, score)
            self.counters.calibrating += 1
            return []
        self.counters.scored += 1
        # Scaling a log e-value by a weight in [0, 1] keeps it an e-value (Jensen), so tempering is safe.
        weighed = self._weight(window) * evidence(p_value, gate.config.kappa_max)
        session.risk.update(window.modality, weighed, window.end, self.config.risk)
        session.last_scored[window.modality] = window
        session.last_p[window.modality] = (score, p_value)
        session.probation.hold(Candidate(window, score, p_value, session.windows_seen))
        self._settle(session, closing=False)
        return self._transition(session, window, now_ms)

    def _weight(self, window: FeatureWindow) -> float:
        """The share of a full window that ``window`` holds (1 for a window closed by count)."""
        if window.closed_by == "count":
            return 1.0
        if window.modality == "keys":
            return min(1.0, window.n_events / max(self.config.key_window, 1))
        if window.modality == "mouse":
            return min(1.0, len(window.actions) / max(self.config.mouse_window, 1))
        return 1.0

    def _settle(self, session: _Session, *, closing: bool) -> None:
        probation, evidence_now, cfg = session.probation, session.risk.evidence, self.config.gate
        if evidence_now >= cfg.calibrate_max_evidence:
            self.counters.withheld += len(probation.pending)
        if closing:
            self._admit(probation.release_all(evidence_now, cfg))
        else:
            self._admit(probation.settle(session.windows_seen, evidence_now, cfg))

    def _admit(self, candidates: list[Candidate], *, vouched: bool = False) -> None:
        for candidate in candidates:
            if self._gates[candidate.window.modality].admit(candidate, vouched=vouched):
                self.counters.learned += 1
            else:
                self.counters.refused += 1

    # -- incidents -----------------------------------------------------------------------------

    def _transition(self, session: _Session, window: FeatureWindow, now_ms: float) -> list[Alert]:
        level = session.risk.level
        if session.peak is Level.NONE:
            if level is Level.NONE:
                return []
            session.episode += 1
            session.peak = level
            return [self._raised(session, window, now_ms, "open")]
        if level > session.peak:
            session.peak = level
            return [self._raised(session, window, now_ms, "update")]
        if level is Level.NONE:
            return [self._resolved(session, now_ms, window.window_id, window.end)]
        return []

    def _raised(self, session: _Session, window: FeatureWindow, now_ms: float, status: str) -> Alert:
        modality = session.risk.modality
        names = ("keys", "mouse") if modality == "fused" else (modality,)
        return Alert(
            alert_id=alert_id(session.session_id, session.episode, session.peak.label),
            created_at=now_ms,
            user=session.user,
            host=session.host,
            session_id=session.session_id,
            risk=round(session.risk.risk, 3),
            level=session.peak,
            modality=modality,
            windows_seen=session.windows_seen,
            session_age_s=max(0.0, (window.end - session.session_start) / 1000.0),
            event_time=window.end,
            window_id=window.window_id,
            model_version=self._model_version(names),
            enrolment="enrolled",
            status=status,
            reasons=self._reasons(session, names),
            scores=self._scores(session),
        )

    def _resolved(self, session: _Session, now_ms: float, window_id: str, event_time: float) -> Alert:
        peak = session.peak
        session.peak = Level.NONE
        modality = session.risk.modality
        names = ("keys", "mouse") if modality == "fused" else (modality,)
        return Alert(
            alert_id=alert_id(session.session_id, session.episode, "resolved"),
            created_at=now_ms,
            user=session.user,
            host=session.host,
            session_id=session.session_id,
            risk=round(session.risk.risk, 3),
            level=peak,
            modality=modality,
            windows_seen=session.windows_seen,
            session_age_s=max(0.0, (event_time - session.session_start) / 1000.0),
            event_time=event_time,
            window_id=window_id,
            model_version=self._model_version(names),
            enrolment="enrolled",
            status="resolved",
            scores=self._scores(session),
        )

    def _reasons(self, session: _Session, names: tuple[str, ...]) -> tuple[Reason, ...]:
        top = self.config.top_reasons
        if top == 0:
            return ()
        reasons: list[Reason] = []
        for name in names:
            window = session.last_scored.get(name)
            if window is not None:
                reasons.extend(self._gates[name].explain_one(window, top=top))
        # Non-finite values would break the alert contract; drop them before choosing the top ones.
        finite = [r for r in reasons if all(map(math.isfinite, (r.value, r.expected, r.deviation)))]
        finite.sort(key=lambda r: abs(r.deviation), reverse=True)
        return tuple(finite[:top])

    def _scores(self, session: _Session) -> dict[str, float]:
        out = {"evidence": session.risk.evidence, **session.risk.modality_risk(self.config.risk)}
        for name, (score, p_value) in session.last_p.items():
            out[f"score_{name}"] = score
            out[f"p_{name}"] = p_value
        return {key: round(value, 6) for key, value in out.items()}

    def _model_version(self, names: tuple[str, ...]) -> str:
        parts = []
        for name in names:
            scorer = self._gates[name].scorer
            version = getattr(scorer, "model_version", None) or type(scorer).__name__
            parts.append(f"{name}={version}")
        return f"{self.config.model_version} {' '.join(parts)}"[:200]

    # -- session lifecycle ---------------------------------------------------------------------

    def end_session(self, session_id: str, now_ms: float) -> list[Alert]:
        """Close a session now (e.g. the collector's end marker); resolves its incident if one is open."""
        session = self._sessions.get(session_id)
        if session is None:
            return []
        alerts = self._close(session, now_ms)
        self.counters.alerts += len(alerts)
        return alerts

    def expire(self, now_ms: float) -> list[Alert]:
        """Close sessions idle at wall-clock ``now_ms``; for a timer when a partition has gone quiet.

        Unlike the capture-time expiry inside :meth:`process`, this depends on when it is called.
        """
        alerts = self._expire_before(now_ms, now_ms)
        self.counters.alerts += len(alerts)
        return alerts

    def _expire_before(self, clock: float, now_ms: float) -> list[Alert]:
        alerts: list[Alert] = []
        cfg = self.config
        for session in list(self._sessions.values()):
            idle = clock - session.last_event >= cfg.session_idle_ms
            ended = session.ending_since is not None and clock - session.ending_since >= cfg.end_grace_ms
            if idle or ended:
                self.counters.sessions_expired += int(idle and not ended)
                alerts.extend(self._close(session, now_ms))
        return alerts

    def _close(self, session: _Session, now_ms: float) -> list[Alert]:
        self._settle(session, closing=True)
        alerts = []
        if session.peak is not Level.NONE:
            alerts.append(self._resolved(session, now_ms, session.last_window_id, session.last_event))
        del self._sessions[session.session_id]
        self.counters.sessions_closed += 1
        if self.config.closed_memory:
            self._closed[session.session_id] = session.last_event
            while len(self._closed) > self.config.closed_memory:
                self._closed.popitem(last=False)
        return alerts

    def confirm_genuine(self, session_id: str, now_ms: float) -> list[Alert]:
        """An analyst says the session is its owner: learn what was withheld, reset the risk, resolve.

        For a session already closed there is nothing left to teach (its withheld windows went
        with it); nothing happens and no alert is returned.
        """
        session = self._sessions.get(session_id)
        if session is None:
            log.info("confirm_genuine: session %s is not open; nothing to learn", session_id)
            return []
        self._admit(session.probation.vouch(), vouched=True)
        session.risk.reset()
        alerts = []
        if session.peak is not Level.NONE:
            alerts.append(self._resolved(session, now_ms, session.last_window_id, session.last_event))
        self.counters.alerts += len(alerts)
        return alerts

    # -- views ---------------------------------------------------------------------------------

    def status(self, user: str) -> UserStatus:
        """Enrolment of the user per modality (``enrolling`` with progress, or ``enrolled``)."""
        modalities = {}
        for name, gate in self._gates.items():
            modalities[name] = ModalityStatus(
                modality=name,
                state="enrolled" if gate.enrolled(user) else "enrolling",
                progress=1.0 if gate.enrolled(user) else gate.enrolment(user),
                calibration_scores=gate.calibration_size(user),
                windows_learned=gate.learned(user),
            )
        enrolled = any(m.state == "enrolled" for m in modalities.values())
        progress = max(m.progress for m in modalities.values())
        return UserStatus(
            user=user, state="enrolled" if enrolled else "enrolling", progress=progress, modalities=modalities
        )

    def session_view(self) -> list[SessionView]:
        """Every open session, riskiest first."""
        views = [self._view(s) for s in self._sessions.values()]
        views.sort(key=lambda v: (-v.risk, v.session_id))
        return views

    def view(self, session_id: str) -> SessionView | None:
        """One open session, or None if it is unknown or closed."""
        session = self._sessions.get(session_id)
        return None if session is None else self._view(session)

    @staticmethod
    def _view(s: _Session) -> SessionView:
        return SessionView(
            user=s.user,
            host=s.host,
            session_id=s.session_id,
            risk=s.risk.risk,
            level=s.risk.level,
            modality=s.risk.modality,
            windows_seen=s.windows_seen,
            session_age_s=max(0.0, (s.last_event - s.session_start) / 1000.0),
            last_update=s.last_event,
            incident_open=s.peak is not Level.NONE,
            last_score=s.last_score,
        )

    def users(self) -> list[str]:
        """Users with any learned state in this engine."""
        seen: dict[str, None] = {}
        for gate in self._gates.values():
            seen.update(dict.fromkeys(gate.users()))
        return list(seen)

    # -- state ---------------------------------------------------------------------------------

    def checkpoint(self, position: Any = None) -> bytes:
        """An authenticated snapshot of the whole engine (scorers included) and an opaque ``position``.

        ``position`` is whatever lets the caller resume exactly after the last processed
        window (e.g. ``{partition: offset}``); :meth:`restore` hands it back.
        """
        state = {
            "format": _CHECKPOINT_FORMAT,
            "gates": self._gates,
            "sessions": self._sessions,
            "closed": self._closed,
            "clock": self._clock,
            "last_scan": self._last_scan,
            "counters": self.counters,
            "position": position,
        }
        return dump_snapshot(state, self._key, kind=SNAPSHOT_KIND)

    def restore(self, data: bytes) -> Any:
        """Replace this engine's state by a checkpoint's (after verifying it); return its ``position``.

        The running configuration is kept: thresholds may change across a restart. Raises
        :class:`~touchstone.detectors.exceptions.SnapshotError` on a forged, altered or foreign snapshot.
        """
        state = load_snapshot(data, self._key, kind=SNAPSHOT_KIND)
        found = state.get("format") if isinstance(state, dict) else None
        if found != _CHECKPOINT_FORMAT:
            raise DetectorError(f"checkpoint format {found!r}; this build reads format {_CHECKPOINT_FORMAT}")
        gates: dict[str, LearningGate] = state["gates"]
        if set(gates) != set(self._gates):
            log.warning(
                "checkpoint holds scorers for %s; this engine was built with %s", sorted(gates), sorted(self._gates)
            )
        for gate in gates.values():
            gate.config = self.config.gate
        self._gates = gates
        self._sessions = state["sessions"]
        self._closed = state["closed"]
        self._clock = state["clock"]
        self._last_scan = state["last_scan"]
        self.counters = state["counters"]
        return state["position"]
