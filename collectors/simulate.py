"""Synthetic behaviour: simulated agents whose keyboard and mouse activity becomes ``raw/1`` batches.

Used by tests, ``make demo``, ``touchstone simulate`` and benchmarks. Each user has a
:class:`UserProfile` drawn deterministically from population distributions (typing rhythm in
:mod:`sim_typing`, mouse motion in :mod:`sim_mouse`, activity mix in :mod:`sim_activity`), so users
overlap in every single feature and differ in many jointly. A :class:`SimulatedSession` turns one
user's activity into batches cut exactly as the live collector cuts them (:class:`BatchPolicy`),
with heartbeats while idle and an ``end`` batch; an impostor may take the session over at a given
time while the batches keep the victim's identity. A :class:`Fleet` runs many sessions and yields
their batches in capture-time order, as fast as possible or in real time.

>>> fleet = Fleet(3, seed=7, start_ms=1.7e12)
>>> batches = list(fleet.iter_batches(20.0))
>>> sorted({b.user for b in batches}), all(b.collector == SIM_COLLECTOR_VERSION for b in batches)
(['agent-000', 'agent-001', 'agent-002'], True)
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from touchstone.collectors.batcher import BatchPolicy
from touchstone.collectors.sim_activity import ActivityProfile, Actor
from touchstone.collectors.sim_keyboard import KEY_NAMES
from touchstone.collectors.sim_mouse import MouseChunk, MouseProfile, Workstation
from touchstone.collectors.sim_typing import Keystrokes, TypingProfile
from touchstone.contracts import PRIVACY_MODES, KeyEvents, MouseEvents, MouseKind, RawBatch

__all__ = [
    "SIM_COLLECTOR_VERSION",
    "UserProfile",
    "Workstation",
    "Takeover",
    "BatchTruth",
    "SimulatedSession",
    "Fleet",
    "parse_takeover",
    "rng_for",
]

log = logging.getLogger(__name__)

SIM_COLLECTOR_VERSION = "touchstone-sim/0.1"
_SEGMENT_MS = 10_000.0  # generate and cut this much session time at once (bounds memory, keeps numpy busy)
_DEFAULT_POLICY = BatchPolicy()
_NO_KEYS = KeyEvents()
_NO_MOUSE = MouseEvents()
_POLL_MS = 10.0  # the collector's sender loop notices a due batch within this time


def rng_for(seed: int, *labels: str | int) -> np.random.Generator:
    """An independent, reproducible random stream for ``seed`` and a path of labels."""
    words = [seed & 0xFFFFFFFF]
    for label in labels:
        digest = hashlib.blake2b(str(label).encode(), digest_size=8).digest()
        words.append(int.from_bytes(digest, "little") & 0xFFFFFFFFFFFFFFFF)
    return np.random.default_rng(words)


@dataclass(frozen=True, eq=False, slots=True)
class UserProfile:
    """Everything that makes one simulated person's behaviour their own."""

    user_id: str
    typing: TypingProfile
    mouse: MouseProfile
    activity: ActivityProfile

    @classmethod
    def draw(cls, user_id: str, seed: int = 0) -> UserProfile:
        """The profile of ``user_id`` in the population of ``seed`` (same arguments, same person)."""
        rng = rng_for(seed, "user", user_id)
        return cls(
            user_id=user_id,
            typing=TypingProfile.draw(rng),
            mouse=MouseProfile.draw(rng),
            activity=ActivityProfile.draw(rng),
        )


@dataclass(frozen=True, slots=True)
class Takeover:
    """``at_s`` seconds after the fleet starts, ``impostor`` (a user id) takes over ``user``'s desk."""

    user: str
    at_s: float
    impostor: str


def parse_takeover(spec: str) -> Takeover:
    """``USER@SECONDS[:IMPOSTOR]``; the impostor defaults to an outsider named after the victim.

    >>> parse_takeover("agent-003@90:agent-011")
    Takeover(user='agent-003', at_s=90.0, impostor='agent-011')
    >>> parse_takeover("agent-003@90").impostor
    'outsider-agent-003'
    """
    user, sep, rest = spec.partition("@")
    at, _, impostor = rest.partition(":")
    try:
        at_s = float(at)
    except ValueError:
        at_s = math.nan
    if not user or not sep or not math.isfinite(at_s) or at_s < 0:
        raise ValueError(f"takeover must look like USER@SECONDS[:IMPOSTOR], got {spec!r}")
    return Takeover(user=user, at_s=at_s, impostor=impostor or f"outsider-{user}")


@dataclass(frozen=True, slots=True)
class BatchTruth:
    """Ground truth of one batch.

    ``actor`` is who controls the session when the batch is cut: the genuine ``user`` until the
    takeover time, the impostor from then on (the desk may be empty during the handover).
    ``impostor_events`` counts the batch's events produced by the impostor.
    """

    session_id: str
    seq: int
    user: str
    actor: str
    events: int
    impostor_events: int

    @property
    def compromised(self) -> bool:
        return self.actor != self.user


def _default_tokenizer(privacy: str) -> Callable[[str], str]:
    if privacy == "full":
        return str  # simulated key names are already normalised
    if privacy != "timing":
        raise ValueError(f"privacy {privacy!r} needs an explicit tokenize function (keyed mode needs a secret)")
    from touchstone.collectors.privacy import KeyTokenizer

    return KeyTokenizer("timing").token


def _truncate_keys(keys: Keystrokes, stop: float) -> Keystrokes:
    """Key events before ``stop``, cut where no key is held so that every press keeps its release."""
    end = int(np.searchsorted(keys.t, stop, side="left"))
    held = np.cumsum(np.where(keys.down[:end], 1, -1))
    idle = np.flatnonzero(held == 0)
    keep = int(idle[-1]) + 1 if idle.size else 0
    return Keystrokes(t=keys.t[:keep], down=keys.down[:keep], code=keys.code[:keep])


def _truncate_mouse(chunk: MouseChunk, stop: float) -> MouseChunk:
    """Mouse events before ``stop``, without a press whose release would come after it."""
    end = int(np.searchsorted(chunk.t, stop, side="left"))
    kind = chunk.kind[:end]
    pressed = np.cumsum((kind == MouseKind.PRESS).astype(int) - (kind == MouseKind.RELEASE))
    if end and pressed[-1] > 0:
        end = int(np.flatnonzero(kind == MouseKind.PRESS)[-1])
    return MouseChunk(chunk.t[:end], chunk.kind[:end], chunk.x[:end], chunk.y[:end], chunk.button[:end])


class _Pending:
    """Events generated but not yet batched, per stream, in time order."""

    def __init__(self) -> None:
        self.keys: list[Keystrokes] = []
        self.mouse: list[MouseChunk] = []

    def add(self, keys: Keystrokes | None, mouse: MouseChunk | None) -> None:
        if keys is not None and keys.t.size:
            self.keys.append(keys)
        if mouse is not None and mouse.t.size:
            self.mouse.append(mouse)

    def take(self) -> tuple[Keystrokes, MouseChunk]:
        keys = Keystrokes(
            t=np.concatenate([k.t for k in self.keys]) if self.keys else np.zeros(0),
            down=np.concatenate([k.down for k in self.keys]) if self.keys else np.zeros(0, dtype=bool),
            code=np.concatenate([k.code for k in self.keys]) if self.keys else np.zeros(0, dtype=np.int16),
        )
        m = self.mouse
        mouse = MouseChunk(
            t=np.concatenate([c.t for c in m]) if m else np.zeros(0),
            kind=np.concatenate([c.kind for c in m]) if m else np.zeros(0, dtype=np.int8),
            x=np.concatenate([c.x for c in m]) if m else np.zeros(0),
            y=np.concatenate([c.y for c in m]) if m else np.zeros(0),
            button=np.concatenate([c.button for c in m]) if m else np.zeros(0, dtype=np.int16),
        )
        self.keys, self.mouse = [], []
        return keys, mouse


@dataclass(frozen=True, slots=True)
class _Segment:
    """Events of a stretch of session time, merged in time order; ``prefix[i]`` = key events among the first i."""

    keys: Keystrokes
    mouse: MouseChunk
    times: np.ndarray
    prefix: list[int]
    first_impostor: int  # index of the first event produced by the impostor


class _Cutter:
    """The live collector's batch policy, applied to known event times."""

    def __init__(self, policy: BatchPolicy, rng: np.random.Generator) -> None:
        self.interval_ms = policy.max_interval_s * 1000.0
        self.heartbeat_ms = policy.heartbeat_s * 1000.0
        self.cap = policy.max_events
        self.last_cut = 0.0
        self._rng = rng
        self._latencies: list[float] = []

    def _latency(self) -> float:
        if not self._latencies:
            self._latencies = (self._rng.random(256) * _POLL_MS).tolist()
        return self._latencies[-1]

    def cut(self, times: list[float], limit: float) -> list[tuple[int, int, float]]:
        """(first, end, mono) of every batch due by ``limit``; events after the last cut stay pending."""
        cuts: list[tuple[int, int, float]] = []
        i, n, cap = 0, len(times), self.cap
        while True:
            latency = self._latency()
            heartbeat_due = self.last_cut + self.heartbeat_ms + latency
            if i < n and times[i] <= heartbeat_due:
                deadline = times[i] + self.interval_ms + latency
                if i + cap <= n and times[i + cap - 1] <= deadline:
                    j, mono = i + cap, times[i + cap - 1]
                elif deadline <= limit:
                    j, mono = bisect.bisect_right(times, deadline, lo=i), deadline
                else:
                    return cuts
            elif heartbeat_due <= limit:
                j, mono = i, heartbeat_due
            else:
                return cuts
            cuts.append((i, j, mono))
            self._latencies.pop()
            self.last_cut = mono
            i = j


class SimulatedSession:
    """One collector session of a simulated user, as the batches the live collector would publish.

    Parameters
    ----------
    profile
        The session's genuine user; the batches carry ``profile.user_id`` throughout.
    duration_s
        Session length; the action running at the end is cut where no key or button is held.
    session_start_ms
        Epoch ms of the session start (session time 0).
    workstation
        The desk (host name, screen, mouse polling rate, application layout); drawn from the user
        id when omitted.
    takeover_at_s, impostor_profile
        From ``takeover_at_s`` on the genuine user is gone (their action in progress is cut where no
        key or button is held); after a short handover the impostor's events follow.
    privacy, tokenize
        Privacy stamp of the batches and the key-name → token function; by default the collector's
        own ``KeyTokenizer`` for ``timing`` and key names for ``full``.
    """

    def __init__(
        self,
        profile: UserProfile,
        *,
        duration_s: float,
        session_start_ms: float,
        workstation: Workstation | None = None,
        seed: int = 0,
        session_id: str | None = None,
        takeover_at_s: float | None = None,
        impostor_profile: UserProfile | None = None,
        privacy: str = "timing",
        tokenize: Callable[[str], str] | None = None,
        policy: BatchPolicy = _DEFAULT_POLICY,
        collector: str = SIM_COLLECTOR_VERSION,
    ) -> None:
        if not duration_s > 0:
            raise ValueError(f"duration_s must be positive, got {duration_s}")
        if privacy not in PRIVACY_MODES:
            raise ValueError(f"privacy must be one of {sorted(PRIVACY_MODES)}, got {privacy!r}")
        if (takeover_at_s is None) != (impostor_profile is None):
            raise ValueError("takeover_at_s and impostor_profile go together")
        if takeover_at_s is not None and not 0 <= takeover_at_s < duration_s:
            raise ValueError(f"takeover_at_s must lie within [0, {duration_s}), got {takeover_at_s}")
        self.profile = profile
        self.impostor_profile = impostor_profile
        self.duration_ms = duration_s * 1000.0
        self.session_start_ms = float(session_start_ms)
        self.seed = seed
        self.workstation = workstation or Workstation.draw(
            f"ws-{profile.user_id}", rng_for(seed, "ws", profile.user_id)
        )
        if session_id is None:
            bits = rng_for(seed, "session", profile.user_id, self.session_start_ms).integers(0, 2**63, size=2)
            session_id = str(uuid.UUID(int=int(bits[0]) << 64 | int(bits[1]), version=4))
        self.session_id = session_id
        self.privacy = privacy
        self.policy = policy
        self.collector = collector
        self._tokens = np.asarray([(tokenize or _default_tokenizer(privacy))(name) for name in KEY_NAMES], dtype=object)
        self.takeover_ms: float | None = None
        self.switch_ms: float | None = None
        if takeover_at_s is not None:
            self.takeover_ms = takeover_at_s * 1000.0
            handover = math.exp(math.log(3000.0) + 0.5 * self._rng("handover").standard_normal())
            self.switch_ms = self.takeover_ms + handover

    @property
    def user(self) -> str:
        return self.profile.user_id

    @property
    def host(self) -> str:
        return self.workstation.host

    def _rng(self, label: str) -> np.random.Generator:
        return rng_for(self.seed, "session-run", self.session_id, label)

    # --- activity ---

    def _actor(self, profile: UserProfile, label: str, cursor: tuple[float, float]) -> Actor:
        return Actor(profile.typing, profile.mouse, profile.activity, self.workstation, self._rng(label), cursor)

    def _run(
        self, actor: Actor, start: float, stop: float
    ) -> Iterator[tuple[Keystrokes | None, MouseChunk | None, float]]:
        """The actor's actions from ``start``; the one running at ``stop`` is cut there."""
        for action in actor.actions(start):
            if start >= stop:
                return
            keys, mouse = action.keys, action.mouse
            if action.next_start > stop:
                keys = _truncate_keys(keys, stop) if keys is not None else None
                mouse = _truncate_mouse(mouse, stop) if mouse is not None else None
            yield keys, mouse, min(action.next_start, stop)
            start = action.next_start

    def _activity(self) -> Iterator[tuple[Keystrokes | None, MouseChunk | None, float]]:
        """Actions as (keys, mouse, time before which every later event is known not to fall)."""
        station = self.workstation
        genuine = self._actor(self.profile, "genuine", (station.width / 2, station.height / 2))
        first = math.exp(math.log(800.0) + 0.5 * self._rng("first").standard_normal())
        if self.takeover_ms is None or self.switch_ms is None or self.impostor_profile is None:
            yield from self._run(genuine, first, self.duration_ms)
            return
        yield from self._run(genuine, first, self.takeover_ms)
        impostor = self._actor(self.impostor_profile, "impostor", genuine.cursor)
        yield from self._run(impostor, self.switch_ms, self.duration_ms)

    # --- batching ---

    def iter_labelled(self) -> Iterator[tuple[RawBatch, BatchTruth]]:
        """The session's batches with their ground truth, in order; re-iterating gives the same ones.

        Batches are cut as the live collector cuts them: when the oldest pending event is
        ``max_interval_s`` old (noticed by the sender loop within a few ms), at ``max_events``
        events, or, with nothing pending, as a heartbeat ``heartbeat_s`` after the last batch.
        """
        cutter = _Cutter(self.policy, self._rng("poll"))
        pending = _Pending()
        seq = 0
        activity = self._activity()
        done = False
        last_event = 0.0
        while not done:
            known = 0.0
            horizon = cutter.last_cut + _SEGMENT_MS
            for keys, mouse, known in activity:
                pending.add(keys, mouse)
                if known >= horizon:
                    break
            else:
                done = True
            keys, mouse = pending.take()
            t = np.concatenate([keys.t, mouse.t])
            order = np.argsort(t, kind="stable")
            times = t[order]
            prefix = np.zeros(times.size + 1, dtype=np.int64)
            np.cumsum(order < keys.t.size, out=prefix[1:])
            if times.size:
                last_event = max(last_event, float(times[-1]))
            limit = max(self.duration_ms, last_event, cutter.last_cut) if done else known
            first_impostor = times.size
            if self.switch_ms is not None:
                first_impostor = int(np.searchsorted(times, self.switch_ms, side="left"))
            segment = _Segment(keys, mouse, times, prefix.tolist(), first_impostor)
            cuts = cutter.cut(times.tolist(), limit)
            for i, j, mono in cuts:
                yield self._batch(seq, mono, segment, i, j, end=False)
                seq += 1
            used = cuts[-1][1] if cuts else 0
            if done:
                yield self._batch(seq, limit, segment, used, times.size, end=True)
                return
            k = segment.prefix[used]
            m = used - k
            pending.add(
                Keystrokes(t=keys.t[k:], down=keys.down[k:], code=keys.code[k:]),
                MouseChunk(mouse.t[m:], mouse.kind[m:], mouse.x[m:], mouse.y[m:], mouse.button[m:]),
            )

    def _batch(
        self, seq: int, mono: float, segment: _Segment, i: int, j: int, *, end: bool
    ) -> tuple[RawBatch, BatchTruth]:
        k0, k1 = segment.prefix[i], segment.prefix[j]
        m0, m1 = i - k0, j - k1
        keys, mouse = segment.keys, segment.mouse
        key_events = (
            KeyEvents(t=keys.t[k0:k1], down=keys.down[k0:k1], key=tuple(self._tokens[keys.code[k0:k1]]))
            if k1 > k0
            else _NO_KEYS
        )
        mouse_events = (
            MouseEvents(
                t=mouse.t[m0:m1],
                kind=mouse.kind[m0:m1],
                x=mouse.x[m0:m1],
                y=mouse.y[m0:m1],
                button=mouse.button[m0:m1],
            )
            if m1 > m0
            else _NO_MOUSE
        )
        batch = RawBatch(
            session_id=self.session_id,
            user=self.user,
            host=self.host,
            seq=seq,
            collector=self.collector,
            privacy=self.privacy,
            session_start=self.session_start_ms,
            wall=self.session_start_ms + mono,
            mono=mono,
            keys=key_events,
            mouse=mouse_events,
            heartbeat=j == i and not end,
            end=end,
        )
        actor = self.user
        if self.takeover_ms is not None and mono >= self.takeover_ms and self.impostor_profile is not None:
            actor = self.impostor_profile.user_id
        truth = BatchTruth(
            session_id=self.session_id,
            seq=seq,
            user=self.user,
            actor=actor,
            events=j - i,
            impostor_events=max(0, j - max(i, segment.first_impostor)),
        )
        return batch, truth

    def iter_batches(self) -> Iterator[RawBatch]:
        for batch, _ in self.iter_labelled():
            yield batch

    def events(self) -> tuple[KeyEvents, MouseEvents]:
        """All events of the session in one piece (tokenised keys), e.g. for feature tests."""
        batches = list(self.iter_batches())
        keys = [b.keys for b in batches if len(b.keys)]
        mouse = [b.mouse for b in batches if len(b.mouse)]
        key_events = KeyEvents(
            t=np.concatenate([k.t for k in keys]) if keys else np.zeros(0),
            down=np.concatenate([k.down for k in keys]) if keys else np.zeros(0, dtype=bool),
            key=tuple(token for k in keys for token in k.key),
        )
        mouse_events = MouseEvents(
            t=np.concatenate([m.t for m in mouse]) if mouse else np.zeros(0),
            kind=np.concatenate([m.kind for m in mouse]) if mouse else np.zeros(0, dtype=np.int8),
            x=np.concatenate([m.x for m in mouse]) if mouse else np.zeros(0),
            y=np.concatenate([m.y for m in mouse]) if mouse else np.zeros(0),
            button=np.concatenate([m.button for m in mouse]) if mouse else np.zeros(0, dtype=np.int16),
        )
        return key_events, mouse_events


def _merge(
    sessions: Iterable[SimulatedSession], *, realtime: bool, speed: float, origin_ms: float
) -> Iterator[tuple[RawBatch, BatchTruth]]:
    """Batches of all sessions in capture order (by ``wall``); in real time, each at its own moment."""
    streams = [s.iter_labelled() for s in sessions]
    merged = heapq.merge(*streams, key=lambda item: item[0].wall)
    if not realtime:
        yield from merged
        return
    if not speed > 0:
        raise ValueError(f"speed must be positive, got {speed}")
    clock_origin = time.time() * 1000.0
    for item in merged:
        due = clock_origin + (item[0].wall - origin_ms) / speed
        delay = (due - time.time() * 1000.0) / 1000.0
        if delay > 0:
            time.sleep(delay)
        yield item


class Fleet:
    """``n_agents`` simulated agents (``agent-000`` …), each at their own workstation (``ws-000`` …).

    ``start_ms`` is the epoch ms at which the live sessions begin (the time of construction when
    omitted; give it for reproducible batches; a run may override it). Sessions start up to
    ``stagger_s`` apart. ``takeovers`` name sessions an impostor takes over: an impostor that is a
    fleet member brings that agent's profile (an insider), any other name is an outsider drawn from
    the same population.
    """

    def __init__(
        self,
        n_agents: int = 50,
        *,
        seed: int = 0,
        start_ms: float | None = None,
        takeovers: Sequence[Takeover] = (),
        privacy: str = "timing",
        tokenize: Callable[[str], str] | None = None,
        stagger_s: float = 5.0,
        policy: BatchPolicy = _DEFAULT_POLICY,
    ) -> None:
        if n_agents < 1:
            raise ValueError(f"n_agents must be at least 1, got {n_agents}")
        self.seed = seed
        self.start_ms = time.time() * 1000.0 if start_ms is None else float(start_ms)
        self.privacy = privacy
        self.tokenize = tokenize or _default_tokenizer(privacy)
        self.stagger_s = stagger_s
        self.policy = policy
        self.users = [f"agent-{i:03d}" for i in range(n_agents)]
        self.profiles = {user: UserProfile.draw(user, seed) for user in self.users}
        self.workstations = {
            user: Workstation.draw(f"ws-{i:03d}", rng_for(seed, "ws", i)) for i, user in enumerate(self.users)
        }
        self.takeovers = {t.user: t for t in takeovers}
        unknown = set(self.takeovers) - set(self.users)
        if unknown:
            raise ValueError(f"takeover of unknown user(s): {', '.join(sorted(unknown))}")

    def profile(self, user: str) -> UserProfile:
        """A fleet member's profile, or an outsider's drawn from the same population."""
        return self.profiles.get(user) or UserProfile.draw(user, self.seed)

    def sessions(
        self, duration_s: float, *, start_ms: float | None = None, label: str = "live"
    ) -> list[SimulatedSession]:
        """One session per agent from ``start_ms`` (default: the fleet's), with the takeovers if ``live``."""
        origin = self.start_ms if start_ms is None else start_ms
        out = []
        for user in self.users:
            stagger = float(rng_for(self.seed, "stagger", label, user).uniform(0.0, self.stagger_s))
            takeover = self.takeovers.get(user) if label == "live" else None
            at_s = None
            if takeover is not None:
                at_s = min(max(0.0, takeover.at_s - stagger), duration_s - 1e-3)
            out.append(
                SimulatedSession(
                    self.profiles[user],
                    duration_s=duration_s,
                    session_start_ms=origin + stagger * 1000.0,
                    workstation=self.workstations[user],
                    seed=self.seed,
                    takeover_at_s=at_s,
                    impostor_profile=self.profile(takeover.impostor) if takeover else None,
                    privacy=self.privacy,
                    tokenize=self.tokenize,
                    policy=self.policy,
                )
            )
        return out

    def iter_labelled(
        self, duration_s: float, *, realtime: bool = False, speed: float = 1.0, start_ms: float | None = None
    ) -> Iterator[tuple[RawBatch, BatchTruth]]:
        """Every session's batches and ground truth, in capture order across the fleet.

        ``start_ms`` overrides the fleet's start for this run (e.g. ``time.time() * 1000`` when a
        live run begins long after the fleet was built, so capture times match the clock).
        """
        origin = self.start_ms if start_ms is None else start_ms
        sessions = self.sessions(duration_s, start_ms=origin)
        for session in sessions:
            if session.takeover_ms is not None:
                log.info(
                    "session %s of %s: impostor %s from %.1f s",
                    session.session_id,
                    session.user,
                    session.impostor_profile.user_id if session.impostor_profile else "?",
                    session.takeover_ms / 1000.0,
                )
        yield from _merge(sessions, realtime=realtime, speed=speed, origin_ms=origin)

    def iter_batches(
        self, duration_s: float, *, realtime: bool = False, speed: float = 1.0, start_ms: float | None = None
    ) -> Iterator[RawBatch]:
        """Every session's batches in capture order; ``realtime`` paces them to their wall times / ``speed``.

        ``Takeover.at_s`` counts from the fleet start, so a session that started later is taken over
        at the same moment of fleet time. With ``speed`` above 1, capture times run ahead of the
        clock by that factor (the batches describe simulated time).
        """
        for batch, _ in self.iter_labelled(duration_s, realtime=realtime, speed=speed, start_ms=start_ms):
            yield batch

    def history(self, duration_s: float = 300.0, *, sessions: int = 1, gap_s: float = 600.0) -> Iterator[RawBatch]:
        """Past sessions of every agent (no takeovers), ending before the fleet starts, for enrolment.

        Each agent gets ``sessions`` genuine sessions of ``duration_s``, ``gap_s`` apart, the last
        one ending at least ``gap_s`` before ``start_ms``; yielded in capture order as fast as possible.
        """
        every: list[SimulatedSession] = []
        origin = self.start_ms
        span_ms = (duration_s + self.stagger_s + gap_s) * 1000.0
        for k in range(sessions):
            start = origin - (sessions - k) * span_ms
            every.extend(self.sessions(duration_s, start_ms=start, label=f"history-{k}"))
        for batch, _ in _merge(every, realtime=False, speed=1.0, origin_ms=origin):
            yield batch
