"""The live collector: capture → batcher → spool → Kafka, in one process.

:func:`run_collector` is what ``touchstone collect`` runs. The calling thread is the sender: it
drains the listener queue every few tens of milliseconds, cuts batches, spools and publishes
them, and serves delivery callbacks. On a clean stop it sends the session's ``end`` batch and
flushes; whatever cannot be delivered in time stays in the spool for the next run.

Identity: the first session's user is ``--user``, else the first line of ``--user-file`` (written
by the agent desktop's login hook, say), else the OS login. With a user file the sender loop
re-reads it every couple of seconds (a stat; a read only when it changed); a different user ends
the session (its ``end`` batch) and starts a new one. A restart is always a new session.

Privacy: ``timing`` unless configured otherwise. ``keyed`` needs ``Settings.keyed_secret_file``.
``full`` (raw key names, to a separate restricted topic) needs both ``privacy="full"`` and
``allow_full=True`` (``--i-have-authorisation-for-full-capture``) and is announced loudly.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from touchstone.collectors.batcher import (
    MOVE,
    PRESS,
    RELEASE,
    SCROLL,
    Batcher,
    BatchPolicy,
    WireBatch,
    default_host,
    default_user,
)
from touchstone.collectors.capture import KEY, EventQueue, InputCapture
from touchstone.collectors.metrics import CollectorMetrics
from touchstone.collectors.privacy import KeyTokenizer
from touchstone.collectors.publisher import Publisher
from touchstone.collectors.spool import DEFAULT_MAX_BYTES, Spool
from touchstone.config import Settings
from touchstone.errors import ConfigError

__all__ = [
    "EventSource", "QueueSource", "CollectorReport", "Collector", "make_tokenizer", "read_user_file", "run_collector",
    "main", "summary_line", "spool_path",
]  # fmt: skip

log = logging.getLogger(__name__)

_USER_FILE_POLL_S = 2.0

_MOUSE_TYPES = {MOVE: "mouse_move", PRESS: "mouse_press", RELEASE: "mouse_release", SCROLL: "mouse_scroll"}
_FULL_BANNER = (
    "FULL KEYSTROKE CAPTURE IS ON: raw key names (what is typed) leave this machine, to the restricted "
    "topic %r. This must be authorised by the organisation; stop now if it is not."
)


class EventSource(Protocol):
    """Where events come from: live capture, or a queue a test or simulator fills."""

    queue: EventQueue

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def drain(self) -> list[tuple[Any, ...]]: ...


class QueueSource:
    """An :class:`EventSource` fed by whoever holds its queue (tests, synthetic load)."""

    def __init__(self, queue: EventQueue | None = None) -> None:
        self.queue = queue or EventQueue()

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    def drain(self) -> list[tuple[Any, ...]]:
        return self.queue.drain()


@dataclass
class CollectorReport:
    session_ids: list[str] = field(default_factory=list)
    events: int = 0
    batches: int = 0
    delivered: int = 0
    listener_dropped: int = 0
    spool_left: int = 0
    duration_s: float = 0.0


def make_tokenizer(settings: Settings, privacy: str | None = None, *, allow_full: bool = False) -> KeyTokenizer:
    """The key tokenizer for the requested mode, refusing ``full`` without the explicit authorisation."""
    mode = privacy or settings.privacy
    if mode == "full" and not allow_full:
        raise ConfigError(
            "privacy 'full' records what is typed; it also needs the explicit flag "
            "--i-have-authorisation-for-full-capture (allow_full=True)"
        )
    tokenizer = KeyTokenizer.from_settings(settings.replace(privacy=mode), allow_full=allow_full and mode == "full")
    if mode == "full":
        log.warning(_FULL_BANNER, settings.topic_raw_full)
    return tokenizer


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    # Two collectors sharing one spool would both send its rows; refuse the second.
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another collector holds {lock_path}; one collector per state directory") from None
        yield
    finally:
        os.close(fd)


class Collector:
    """One running collector: owns the batcher and publisher, driven by :meth:`run` in one thread."""

    def __init__(
        self,
        settings: Settings,
        source: EventSource,
        publisher: Publisher,
        *,
        user: str,
        privacy: str,
        policy: BatchPolicy,
        metrics: CollectorMetrics,
        host: str | None = None,
        tick_s: float = 0.1,
        user_file: Path | None = None,
    ) -> None:
        self.settings = settings
        self.user_file = user_file
        self._user_file_read_at = time.monotonic()
        self._user_file_stamp: tuple[int, int] | None = _stamp(user_file)
        self.source = source
        self.publisher = publisher
        self.metrics = metrics
        self.tick_s = min(tick_s, policy.max_interval_s)
        self.batcher = Batcher(user=user, host=host or default_host(), privacy=privacy, policy=policy)
        self.report = CollectorReport(session_ids=[self.batcher.session.session_id])
        self._next_user: str | None = None
        self._user_lock = threading.Lock()
        self._dropped_counted = 0
        self._event_counters = {name: metrics.events_captured.labels(type=name) for name in _MOUSE_TYPES.values()}
        self._event_counters["key_press"] = metrics.events_captured.labels(type="key_press")
        self._event_counters["key_release"] = metrics.events_captured.labels(type="key_release")

    def switch_user(self, user: str) -> None:
        """Ask the sender loop to end the session and start a new one for ``user`` (any thread)."""
        with self._user_lock:
            self._next_user = user

    def _poll_user_file(self) -> None:
        # Sender thread only (file I/O never runs in a listener callback); a stat per poll, a read on change.
        now = time.monotonic()
        if self.user_file is None or now - self._user_file_read_at < _USER_FILE_POLL_S:
            return
        self._user_file_read_at = now
        stamp = _stamp(self.user_file)
        if stamp == self._user_file_stamp:
            return
        self._user_file_stamp = stamp
        user = read_user_file(self.user_file)
        if user is None:
            log.warning("user file %s is missing or empty; keeping user %r", self.user_file, self.batcher.session.user)
        elif user != self.batcher.session.user:
            log.info("user file %s names %r (was %r): new session", self.user_file, user, self.batcher.session.user)
            self.switch_user(user)

    def _publish(self, batch: WireBatch | None) -> None:
        if batch is None:
            return
        kind = "end" if batch.end else "heartbeat" if batch.heartbeat else "data"
        self.metrics.batches_built.labels(kind=kind).inc()
        self.report.batches += 1
        self.publisher.submit(batch)

    def _consume(self, events: list[tuple[Any, ...]]) -> None:
        counts: dict[str, int] = {}
        batcher = self.batcher
        for event in events:
            if event[0] == KEY:
                name = "key_press" if event[2] else "key_release"
                self._publish(batcher.add_key(event[1], event[2], event[3]))
            else:
                name = _MOUSE_TYPES.get(event[2], "mouse_move")
                self._publish(batcher.add_mouse(event[1], event[2], event[3], event[4], event[5]))
            counts[name] = counts.get(name, 0) + 1
        for name, n in counts.items():
            self._event_counters[name].inc(n)
        self.report.events += len(events)

    def _step(self) -> None:
        self._consume(self.source.drain())
        self._poll_user_file()
        self._publish(self.batcher.poll())
        with self._user_lock:
            next_user, self._next_user = self._next_user, None
        if next_user is not None and next_user != self.batcher.session.user:
            self._publish(self.batcher.switch_user(next_user))
            self.report.session_ids.append(self.batcher.session.session_id)
        dropped = self.source.queue.dropped
        if dropped > self._dropped_counted:
            self.metrics.listener_dropped.inc(dropped - self._dropped_counted)
            log.warning("listener queue full: %d events dropped so far", dropped)
            self._dropped_counted = dropped
        self.publisher.service()

    def run(
        self, *, duration_s: float | None = None, stop_event: threading.Event | None = None, flush_timeout: float = 10.0
    ) -> CollectorReport:
        stop_event = stop_event or threading.Event()
        started = time.monotonic()
        deadline = None if duration_s is None else started + duration_s
        self.source.start()
        try:
            while not stop_event.is_set() and (deadline is None or time.monotonic() < deadline):
                self._step()
                stop_event.wait(self.tick_s)
        except KeyboardInterrupt:
            log.info("interrupted; stopping the collector")
        finally:
            self.source.stop()
            self._consume(self.source.drain())
            self._publish(self.batcher.end())
            self.report.spool_left = self.publisher.flush(flush_timeout)
            self.report.delivered = self.publisher.delivered
            self.report.listener_dropped = self.source.queue.dropped
            self.report.duration_s = time.monotonic() - started
            if self.report.spool_left:
                log.warning("%d batches could not be delivered yet; they stay in the spool", self.report.spool_left)
        return self.report


def _stamp(path: Path | None) -> tuple[int, int] | None:
    try:
        st = path.stat() if path is not None else None
    except OSError:
        return None
    return None if st is None else (st.st_mtime_ns, st.st_size)


def read_user_file(path: Path) -> str | None:
    """The user named on the first line of ``path``; None when it is missing, unreadable or empty."""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            line = handle.readline(256).strip()
    except OSError:
        return None
    return line or None


def spool_path(settings: Settings) -> Path:
    return settings.state_path / "collector" / "spool.sqlite3"


def run_collector(
    settings: Settings,
    *,
    user: str | None = None,
    privacy: str | None = None,
    allow_full: bool = False,
    duration_s: float | None = None,
    stop_event: threading.Event | None = None,
    metrics_port: int | None = None,
    source: EventSource | None = None,
    policy: BatchPolicy | None = None,
    metrics: CollectorMetrics | None = None,
    spool_max_bytes: int = DEFAULT_MAX_BYTES,
    producer_overrides: dict[str, Any] | None = None,
    flush_timeout_s: float = 10.0,
    capture_backend: str = "auto",
    user_file: Path | str | None = None,
) -> CollectorReport:
    """Capture input (pynput, unless ``source`` is given) and publish it until stopped.

    Stops after ``duration_s`` seconds, when ``stop_event`` is set, or on Ctrl-C; then sends the
    session's ``end`` batch and flushes. ``metrics_port`` (default ``settings.metrics_port``, 0 = off)
    serves Prometheus ``/metrics``. ``capture_backend``: see :mod:`touchstone.collectors.capture`.
    ``user_file``: see the module docstring.
    """
    mode = privacy or settings.privacy
    user_path = Path(user_file) if user_file else None
    if user is None and user_path is not None:
        user = read_user_file(user_path)
    tokenizer = make_tokenizer(settings, mode, allow_full=allow_full)
    metrics = metrics or CollectorMetrics()
    port = settings.metrics_port if metrics_port is None else metrics_port
    server = metrics.serve(port) if port else None
    path = spool_path(settings)
    try:
        with _exclusive(path.with_suffix(".lock")):
            spool = Spool(path, max_bytes=spool_max_bytes)
            try:
                publisher = Publisher(settings, spool, metrics=metrics, producer_overrides=producer_overrides)
                collector = Collector(
                    settings,
                    source or InputCapture(tokenizer, backend=capture_backend),
                    publisher,
                    user=user or default_user(),
                    privacy=mode,
                    policy=policy or BatchPolicy.from_settings(settings),
                    metrics=metrics,
                    user_file=user_path,
                )
                log.info(
                    "collector %s for user %r → %s (%s), privacy %s",
                    collector.batcher.session.session_id,
                    collector.batcher.session.user,
                    settings.bootstrap,
                    publisher.topic_for(mode),
                    mode,
                )
                return collector.run(duration_s=duration_s, stop_event=stop_event, flush_timeout=flush_timeout_s)
            finally:
                spool.close()
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()


def main(argv: list[str] | None = None) -> int:
    """Lean entry point for workstations: ``python -m touchstone.collectors.collect [options]``.

    Same options as ``touchstone collect`` without loading the Typer/pydantic/rich stack, which adds
    about 10 MB of resident memory to a process that runs all day on every agent's machine.
    """
    import argparse
    import signal

    from touchstone.config import load_settings
    from touchstone.errors import TouchstoneError

    parser = argparse.ArgumentParser(prog="touchstone-collect", description="Capture keyboard and mouse timing.")
    parser.add_argument("--user", help="agent id to stamp on batches (default: --user-file, else the OS login)")
    parser.add_argument("--user-file", help="file naming the agent on its first line; re-read, a change = new session")
    parser.add_argument("--privacy", choices=("timing", "keyed", "full"), help="default: settings (timing)")
    parser.add_argument(
        "--i-have-authorisation-for-full-capture", dest="allow_full", action="store_true",
        help="required with --privacy full: raw key names (what is typed) leave the machine",
    )  # fmt: skip
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port (0 = off)")
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: settings)")
    parser.add_argument("--capture-backend", choices=("auto", "xrecord", "pynput"), default="auto")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(bootstrap=args.bootstrap)
    except TouchstoneError as exc:
        parser.error(str(exc))
    if not logging.getLogger().handlers:
        logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        report = run_collector(
            settings, user=args.user, privacy=args.privacy, allow_full=args.allow_full, duration_s=args.duration,
            stop_event=stop, metrics_port=args.metrics_port, capture_backend=args.capture_backend,
            user_file=args.user_file,
        )  # fmt: skip
    except TouchstoneError as exc:
        print(f"touchstone-collect: {exc}", file=sys.stderr)
        return 2
    print(summary_line(report))
    return 0


def summary_line(report: CollectorReport) -> str:
    return (
        f"sessions {', '.join(report.session_ids)}: {report.events} events, {report.batches} batches, "
        f"{report.delivered} delivered, {report.spool_left} left in the spool, "
        f"{report.listener_dropped} dropped by the listener queue"
    )


if __name__ == "__main__":
    raise SystemExit(main())
