"""Per-session batching of captured events into ``raw/1`` batches, by count and by time.

The batcher is plain and single-threaded: the collector's sender thread feeds it events
(monotonic nanoseconds at capture) and asks it for batches. It owns the session identity
(user, host, session id, collector version, privacy mode) and the sequence numbers, and
anchors every batch to the wall clock (``wall``/``mono``), so the pipeline can place events in
real time and tell an idle session (heartbeats keep coming) from a dead collector (they stop).

Batches are :class:`WireBatch` es: plain lists, encoded straight to ``raw/1`` JSON. The live
collector never imports numpy (``touchstone.contracts`` does): numpy alone is a third of the
collector's memory budget. ``WireBatch.encode()`` gives the same bytes as
``touchstone.contracts.encode_raw`` of the equivalent :class:`~touchstone.contracts.RawBatch`
(``WireBatch.to_raw()``), which ``tests/collectors/test_batcher.py`` checks.
"""

from __future__ import annotations

import getpass
import logging
import math
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

import touchstone

if TYPE_CHECKING:
    from touchstone.config import Settings
    from touchstone.contracts import RawBatch

__all__ = [
    "COLLECTOR_VERSION", "PRIVACY_MODES", "MOVE", "PRESS", "RELEASE", "SCROLL", "BatchPolicy", "Session",
    "WireBatch", "Batcher", "default_user", "default_host",
]  # fmt: skip

log = logging.getLogger(__name__)

COLLECTOR_VERSION = f"touchstone-collector/{touchstone.__version__}"
RAW_SCHEMA = "raw/1"
# The raw/1 vocabulary (touchstone.contracts.raw), restated here to keep numpy out of the collector;
# a test checks they agree.
PRIVACY_MODES = frozenset({"timing", "keyed", "full"})
MOVE, PRESS, RELEASE, SCROLL = 0, 1, 2, 3
_NS_PER_MS = 1_000_000
# raw/1 keeps mouse.b within +-10000 (it holds the scroll amount for SCROLL events).
_MAX_BUTTON_VALUE = 10_000


def default_user() -> str:
    """The OS login of this process: the agent id when none is configured."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (containers)
        return "unknown"


def default_host() -> str:
    return socket.gethostname() or "unknown"


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """When to cut a batch: ``max_events`` events, the oldest pending event ``max_interval_s`` old,
    or (idle) a heartbeat ``heartbeat_s`` after the last batch."""

    max_events: int = 200
    max_interval_s: float = 0.5  # the default of Settings.batch_interval_s
    heartbeat_s: float = 5.0

    def __post_init__(self) -> None:
        if self.max_events < 1:
            raise ValueError(f"max_events must be at least 1, got {self.max_events}")
        if not self.max_interval_s > 0 or not self.heartbeat_s > 0:
            raise ValueError("max_interval_s and heartbeat_s must be positive")

    @classmethod
    def from_settings(cls, settings: Settings) -> BatchPolicy:
        """The configured interval; at most 200 events (or the workers' limit, if lower) per batch."""
        return cls(max_events=min(200, settings.max_batch_events), max_interval_s=settings.batch_interval_s)


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    user: str
    host: str
    privacy: str
    collector: str
    start_ns: int  # monotonic clock at session start
    start_wall_ms: float  # epoch ms at the same instant


def _round3(value: float) -> float:
    scaled = round(value * 1000.0)  # round half to even, as numpy's rint
    # numpy keeps the sign of a value that rounds to zero (-0.0); Python's int 0 would lose it.
    return scaled / 1000.0 if scaled else math.copysign(0.0, value)


def _compact(values: list[float]) -> list[float] | list[int]:
    """Times and coordinates as ``encode_raw`` writes them: rounded to 3 decimals (microseconds,
    micropixels) the way numpy rounds (scale, round half to even, unscale), integers when all are whole."""
    if all(type(v) is int and -(2**53) < v < 2**53 for v in values):
        return values  # X reports pixel coordinates as ints: nothing to round
    rounded = [_round3(v) for v in values]
    if all(r == math.floor(r) and abs(r) < 2**53 for r in rounded):
        return [int(r) for r in rounded]
    return rounded


@dataclass(frozen=True, slots=True)
class WireBatch:
    """One ``raw/1`` batch as plain lists (see the module docstring); fields as in ``RawBatch``."""

    session_id: str
    user: str
    host: str
    seq: int
    collector: str
    privacy: str
    session_start: float
    wall: float
    mono: float
    key_t: list[float] = field(default_factory=list)
    key_down: list[bool] = field(default_factory=list)
    key_token: list[str] = field(default_factory=list)
    mouse_t: list[float] = field(default_factory=list)
    mouse_kind: list[int] = field(default_factory=list)
    mouse_x: list[float] = field(default_factory=list)
    mouse_y: list[float] = field(default_factory=list)
    mouse_button: list[int] = field(default_factory=list)
    heartbeat: bool = False
    end: bool = False

    @property
    def n_events(self) -> int:
        return len(self.key_t) + len(self.mouse_t)

    def encode(self) -> bytes:
        doc: dict[str, Any] = {
            "schema": RAW_SCHEMA,
            "session_id": self.session_id,
            "user": self.user,
            "host": self.host,
            "seq": self.seq,
            "collector": self.collector,
            "privacy": self.privacy,
            "session_start": self.session_start,
            "wall": self.wall,
            "mono": self.mono,
        }
        if self.key_t:
            doc["keys"] = {"t": _compact(self.key_t), "d": [int(d) for d in self.key_down], "k": self.key_token}
        if self.mouse_t:
            doc["mouse"] = {
                "t": _compact(self.mouse_t),
                "e": self.mouse_kind,
                "x": _compact(self.mouse_x),
                "y": _compact(self.mouse_y),
                "b": self.mouse_button,
            }
        if self.heartbeat:
            doc["heartbeat"] = True
        if self.end:
            doc["end"] = True
        return orjson.dumps(doc)

    def to_raw(self) -> RawBatch:
        """The same batch as a :class:`~touchstone.contracts.RawBatch` (imports numpy; not for the live path)."""
        import numpy as np

        from touchstone import contracts

        keys = contracts.KeyEvents()
        if self.key_t:
            keys = contracts.KeyEvents(
                t=np.asarray(self.key_t, dtype=np.float64),
                down=np.asarray(self.key_down, dtype=bool),
                key=tuple(self.key_token),
            )
        mouse = contracts.MouseEvents()
        if self.mouse_t:
            mouse = contracts.MouseEvents(
                t=np.asarray(self.mouse_t, dtype=np.float64),
                kind=np.asarray(self.mouse_kind, dtype=np.int8),
                x=np.asarray(self.mouse_x, dtype=np.float64),
                y=np.asarray(self.mouse_y, dtype=np.float64),
                button=np.asarray(self.mouse_button, dtype=np.int16),
            )
        return contracts.RawBatch(
            session_id=self.session_id, user=self.user, host=self.host, seq=self.seq, collector=self.collector,
            privacy=self.privacy, session_start=self.session_start, wall=self.wall, mono=self.mono, keys=keys,
            mouse=mouse, heartbeat=self.heartbeat, end=self.end,
        )  # fmt: skip


class _Columns:
    """Pending events of one batch (cheap appends; the lists become the batch's columns)."""

    __slots__ = ("key_down", "key_t", "key_token", "mouse_button", "mouse_kind", "mouse_t", "mouse_x", "mouse_y")

    def __init__(self) -> None:
        self.key_t: list[float] = []
        self.key_down: list[bool] = []
        self.key_token: list[str] = []
        self.mouse_t: list[float] = []
        self.mouse_kind: list[int] = []
        self.mouse_x: list[float] = []
        self.mouse_y: list[float] = []
        self.mouse_button: list[int] = []

    def __len__(self) -> int:
        return len(self.key_t) + len(self.mouse_t)


class Batcher:
    """Cuts one session's events into :class:`WireBatch` es.

    ``add_key``/``add_mouse`` return a batch when the count bound is reached; :meth:`poll`
    returns one when the time bound or the heartbeat is due; :meth:`end` closes the session.

    >>> clock = iter(range(0, 10**12, 10**6)).__next__   # 1 ms per call
    >>> b = Batcher(user="ann", host="ws1", privacy="timing", mono_ns=clock, wall_ns=lambda: 1.7e18)
    >>> b.add_key(clock(), True, "L.home") is None
    True
    >>> batch = b.end()
    >>> (batch.seq, batch.end, batch.n_events)
    (0, True, 1)
    """

    def __init__(
        self,
        *,
        user: str,
        host: str,
        privacy: str,
        policy: BatchPolicy = BatchPolicy(),
        collector: str = COLLECTOR_VERSION,
        mono_ns: Callable[[], int] = time.monotonic_ns,
        wall_ns: Callable[[], float] = time.time_ns,
    ) -> None:
        if privacy not in PRIVACY_MODES:
            raise ValueError(f"privacy must be one of {sorted(PRIVACY_MODES)}, got {privacy!r}")
        if not user or not host:
            raise ValueError("user and host must not be empty")
        self.policy = policy
        self._mono_ns = mono_ns
        self._wall_ns = wall_ns
        self._collector = collector
        self._privacy = privacy
        self._host = host
        self.reordered = 0  # events whose capture time went backwards within a stream (clamped)
        self._session = self._new_session(user)

    # --- identity ---

    @property
    def session(self) -> Session:
        return self._session

    def _new_session(self, user: str) -> Session:
        start_ns = self._mono_ns()
        session = Session(
            session_id=str(uuid.uuid4()),
            user=user,
            host=self._host,
            privacy=self._privacy,
            collector=self._collector,
            start_ns=start_ns,
            start_wall_ms=self._wall_ns() / _NS_PER_MS,
        )
        self._seq = 0
        self._pending = _Columns()
        self._oldest_pending_ns: int | None = None
        self._last_batch_ns = start_ns
        self._last_key_t = 0.0
        self._last_mouse_t = 0.0
        log.info("session %s started for user %r on %s (%s)", session.session_id, user, self._host, self._privacy)
        return session

    def switch_user(self, user: str) -> WireBatch:
        """End the current session (returns its ``end`` batch) and start a new one for ``user``."""
        final = self.end()
        self._session = self._new_session(user)
        return final

    # --- events ---

    def _session_ms(self, t_ns: int) -> float:
        return max(0.0, (t_ns - self._session.start_ns) / _NS_PER_MS)

    def _note_pending(self, t_ns: int) -> WireBatch | None:
        if self._oldest_pending_ns is None:
            self._oldest_pending_ns = t_ns
        if len(self._pending) >= self.policy.max_events:
            return self._cut()
        return None

    def add_key(self, t_ns: int, down: bool, token: str) -> WireBatch | None:
        t = self._session_ms(t_ns)
        if t < self._last_key_t:
            self.reordered += 1
            t = self._last_key_t
        self._last_key_t = t
        p = self._pending
        p.key_t.append(t)
        p.key_down.append(down)
        p.key_token.append(token)
        return self._note_pending(t_ns)

    def add_mouse(self, t_ns: int, kind: int, x: float, y: float, button: int = 0) -> WireBatch | None:
        t = self._session_ms(t_ns)
        if t < self._last_mouse_t:
            self.reordered += 1
            t = self._last_mouse_t
        self._last_mouse_t = t
        if kind == SCROLL:
            button = max(-_MAX_BUTTON_VALUE, min(_MAX_BUTTON_VALUE, int(button)))
        p = self._pending
        p.mouse_t.append(t)
        p.mouse_kind.append(int(kind))
        p.mouse_x.append(x)
        p.mouse_y.append(y)
        p.mouse_button.append(int(button))
        return self._note_pending(t_ns)

    @property
    def pending(self) -> int:
        return len(self._pending)

    # --- cutting ---

    def poll(self, now_ns: int | None = None) -> WireBatch | None:
        """A batch when the oldest pending event reached the interval, a heartbeat when idle, else None."""
        now_ns = self._mono_ns() if now_ns is None else now_ns
        if self._oldest_pending_ns is not None:
            if now_ns - self._oldest_pending_ns >= self.policy.max_interval_s * 1e9:
                return self._cut()
            return None
        if now_ns - self._last_batch_ns >= self.policy.heartbeat_s * 1e9:
            return self._cut(heartbeat=True)
        return None

    def flush(self) -> WireBatch | None:
        """The pending events as a batch now, or None when there are none."""
        return self._cut() if len(self._pending) else None

    def end(self) -> WireBatch:
        """The session's last batch (pending events included), marked ``end``."""
        return self._cut(end=True)

    def _cut(self, *, heartbeat: bool = False, end: bool = False) -> WireBatch:
        # One anchor per batch: wall and mono read back to back, so capture_time() maps session ms to epoch ms.
        now_ns = self._mono_ns()
        wall_ms = self._wall_ns() / _NS_PER_MS
        s = self._session
        p = self._pending
        batch = WireBatch(
            session_id=s.session_id,
            user=s.user,
            host=s.host,
            seq=self._seq,
            collector=s.collector,
            privacy=s.privacy,
            session_start=s.start_wall_ms,
            wall=wall_ms,
            mono=max(self._session_ms(now_ns), self._last_key_t, self._last_mouse_t),
            key_t=p.key_t,
            key_down=p.key_down,
            key_token=p.key_token,
            mouse_t=p.mouse_t,
            mouse_kind=p.mouse_kind,
            mouse_x=p.mouse_x,
            mouse_y=p.mouse_y,
            mouse_button=p.mouse_button,
            heartbeat=heartbeat and not len(p),
            end=end,
        )
        self._seq += 1
        self._pending = _Columns()
        self._oldest_pending_ns = None
        self._last_batch_ns = now_ns
        return batch
