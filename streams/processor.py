"""Raw bytes in, feature windows and dead letters out: the stream stage without Faust.

:class:`RawProcessor` decodes, validates, de-duplicates and windows raw batches
against a mapping of session states (a Faust table in the worker, a dict in tests
and benchmarks). It never raises on bad input: it returns the dead letter instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field

import orjson

from touchstone.config import Settings
from touchstone.contracts import FeatureWindow, Limits, RawBatch, decode_raw
from touchstone.errors import ContractError
from touchstone.streams import metrics
from touchstone.streams.session import SessionState, WindowerKit

__all__ = [
    "CONTROL_FLUSH",
    "CONTROL_IDLE",
    "ProcessResult",
    "RawProcessor",
    "flush_control_message",
    "idle_control_message",
]

log = logging.getLogger(__name__)

CONTROL_SCHEMA = "control/1"
CONTROL_IDLE = "idle_check"
CONTROL_FLUSH = "flush"


def flush_control_message() -> bytes:
    """Sent by the worker into a quiet partition, so its held messages are flushed and acknowledged in-stream."""
    return orjson.dumps({"schema": CONTROL_SCHEMA, "op": CONTROL_FLUSH})


def idle_control_message(session_id: str) -> bytes:
    """Sent by the worker's idle timer into the session's own partition, so closing happens in-stream."""
    return orjson.dumps({"schema": CONTROL_SCHEMA, "op": CONTROL_IDLE, "session_id": session_id})


@dataclass(slots=True)
class ProcessResult:
    windows: list[FeatureWindow] = field(default_factory=list)
    reason: str | None = None  # set when the message belongs in the dead-letter topic
    detail: str = ""
    session_id: str | None = None
    redact: bool = False  # the dead letter must not carry the message's value (it holds typed text)


class RawProcessor:
    """Session-state machine over raw messages; the state mapping holds orjson bytes per session id."""

    def __init__(
        self,
        settings: Settings,
        states: MutableMapping[str, bytes],
        kit: WindowerKit | None = None,
        *,
        write_behind: bool = False,
    ) -> None:
        """``write_behind``: keep changed sessions in memory until :meth:`flush` writes them.

        The Faust agent uses it to write each session's state once per flush interval instead of
        once per batch (the changelog then carries a fraction of the bytes); it acknowledges a
        partition's messages only after flushing that partition's sessions, so a crash replays
        exactly the batches whose effect was not stored, and sequence numbers drop the rest.
        """
        self.settings = settings
        self.states = states
        self.kit = kit or WindowerKit.default(settings.key_window, settings.mouse_window)
        self.limits = Limits(max_events=settings.max_batch_events, max_bytes=settings.max_message_bytes)
        self.write_behind = write_behind
        # Live objects for sessions whose stored bytes we wrote ourselves: saves a decode per batch.
        # Keyed by session; valid only while the mapping still holds the very bytes object we stored
        # (or, with write-behind, while the session is unflushed: then it is newer than the mapping).
        self._live: dict[str, tuple[bytes | None, SessionState]] = {}
        self._unflushed: set[str] = set()
        self.last_seen: dict[str, float] = {}
        # Sizes of the state this processor wrote, for the table-size gauge.
        self._stored_sizes: dict[str, int] = {}
        self._state_bytes = 0

    @property
    def state_bytes(self) -> int:
        """Bytes of session state this processor last wrote for the sessions it holds."""
        return self._state_bytes

    def _load(self, session_id: str) -> SessionState | None:
        if session_id in self._unflushed:
            return self._live[session_id][1]
        stored = self.states.get(session_id)
        if stored is None:
            self._live.pop(session_id, None)
            return None
        cached = self._live.get(session_id)
        if cached is not None and cached[0] is stored:
            return cached[1]
        return SessionState.from_state(orjson.loads(stored), self.kit)

    def _store(self, state: SessionState) -> None:
        if self.write_behind:
            self._live[state.session_id] = (None, state)
            self._unflushed.add(state.session_id)
            return
        self._write(state)

    def _write(self, state: SessionState) -> None:
        data = orjson.dumps(state.to_state(), option=orjson.OPT_SERIALIZE_NUMPY)
        self.states[state.session_id] = data
        self._state_bytes += len(data) - self._stored_sizes.get(state.session_id, 0)
        self._stored_sizes[state.session_id] = len(data)
        self._live[state.session_id] = (data, state)

    def flush(self, session_ids: Iterable[str] | None = None) -> int:
        """Write unflushed sessions (all, or those of ``session_ids``) to the state mapping; returns how many."""
        chosen = set(self._unflushed) if session_ids is None else self._unflushed.intersection(session_ids)
        for session_id in chosen:
            self._write(self._live[session_id][1])
        self._unflushed -= chosen
        return len(chosen)

    def discard(self, session_ids: Iterable[str]) -> None:
        """Forget the in-memory copies (e.g. of partitions handed to another worker), writing nothing."""
        for session_id in session_ids:
            self._state_bytes -= self._stored_sizes.pop(session_id, 0)
            self._unflushed.discard(session_id)
            self._live.pop(session_id, None)
            self.last_seen.pop(session_id, None)

    def _forget(self, session_id: str) -> None:
        self._state_bytes -= self._stored_sizes.pop(session_id, 0)
        self._unflushed.discard(session_id)
        self._live.pop(session_id, None)
        self.last_seen.pop(session_id, None)
        if session_id in self.states:
            del self.states[session_id]

    def process(self, value: bytes, now_ms: float | None = None, *, restricted: bool = False) -> ProcessResult:
        """One raw message; ``restricted`` says it came from the restricted full-capture topic."""
        started = time.perf_counter()
        try:
            if value[:40].find(b'"control/1"') >= 0:
                return self._control(value, now_ms)
            try:
                batch = decode_raw(value, self.limits)
            except ContractError as err:
                metrics.DEAD_LETTERS.labels("streams", err.reason).inc()
                return ProcessResult(reason=err.reason, detail=err.detail)
            if batch.privacy == "full" and not restricted:
                # Raw key names on the shared topic are a leak; the caller must not keep the message whole.
                metrics.DEAD_LETTERS.labels("streams", "full_capture_on_shared_topic").inc()
                return ProcessResult(
                    reason="full_capture_on_shared_topic",
                    detail=f"session {batch.session_id}: a full-mode batch belongs on the restricted topic only",
                    redact=True,
                )
            state = self._load(batch.session_id)
            if state is None:
                state = SessionState.open(batch, self.kit)
            elif state.user != batch.user:
                # A session id is bound to one user; a different user means a forged or broken collector.
                metrics.DEAD_LETTERS.labels("streams", "identity_mismatch").inc()
                return ProcessResult(
                    reason="identity_mismatch",
                    detail=f"session {batch.session_id} belongs to {state.user!r}, batch claims {batch.user!r}",
                )
            counters = state.counters
            before = (counters.batches, counters.duplicates, counters.gaps, counters.regressions)
            windows = state.accept(batch, now_ms)
            self._count(before, state, batch)
            self.last_seen[batch.session_id] = time.time() * 1000.0
            self._store(state)
            return ProcessResult(windows=windows, session_id=batch.session_id)
        except Exception as exc:  # a bug in feature code must not stop the worker: keep the message
            log.exception("raw batch processing failed")
            metrics.DEAD_LETTERS.labels("streams", "processing_error").inc()
            return ProcessResult(reason="processing_error", detail=f"{type(exc).__name__}: {exc}")
        finally:
            metrics.BATCH_SECONDS.observe(time.perf_counter() - started)

    def _count(self, before: tuple[int, int, int, int], state: SessionState, batch: RawBatch) -> None:
        # Only non-zero increments: each prometheus call takes a lock, and most batches change one counter.
        counters = state.counters
        if counters.batches != before[0]:
            metrics.BATCHES_IN.inc(counters.batches - before[0])
        if len(batch.keys):
            metrics.KEY_EVENTS_IN.inc(len(batch.keys))
        if len(batch.mouse):
            metrics.MOUSE_EVENTS_IN.inc(len(batch.mouse))
        for metric, value, old in (
            (metrics.DUPLICATES, counters.duplicates, before[1]),
            (metrics.GAPS, counters.gaps, before[2]),
            (metrics.REGRESSIONS, counters.regressions, before[3]),
        ):
            if value != old:
                metric.inc(value - old)

    def _control(self, value: bytes, now_ms: float | None) -> ProcessResult:
        doc = orjson.loads(value)
        if doc.get("op") == CONTROL_FLUSH:  # nothing to compute: its arrival is the point
            return ProcessResult()
        session_id = doc.get("session_id")
        state = self._load(session_id) if isinstance(session_id, str) else None
        if state is None:
            return ProcessResult()
        idle_for = (time.time() * 1000.0 if now_ms is None else now_ms) - state.last_seen_wall
        if not state.ended and idle_for < self.settings.session_idle_s * 1000.0:
            return ProcessResult()
        windows = [] if state.ended else state.close_idle(now_ms)
        self._forget(session_id)
        return ProcessResult(windows=windows, session_id=session_id)

    def idle_sessions(self, now_ms: float | None = None) -> list[str]:
        """Sessions this worker last saw longer ago than the idle timeout (by its own clock)."""
        now = time.time() * 1000.0 if now_ms is None else now_ms
        horizon = self.settings.session_idle_s * 1000.0
        return [sid for sid, seen in self.last_seen.items() if now - seen >= horizon]

    def end_finished(self, session_id: str) -> None:
        """Drop the state of a session that ended (after its final windows went out)."""
        state = self._load(session_id)
        if state is not None and state.ended:
            self._forget(session_id)
