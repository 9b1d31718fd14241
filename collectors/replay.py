"""Publishing recorded sessions to the raw topic, at recorded speed, N× speed, or as fast as possible.

Batches are published exactly as the parsers built them (same times, same anchors, same
sequence numbers), so a replay reproduces the source timings; pacing only decides *when* each
batch is sent: batch ``b`` of a session leaves ``(b.mono - first.mono) / speed`` seconds after the
session's first batch. Sessions are replayed one after another.

Session ids are deterministic (derived from the file), so the pipeline recognises a second replay
of the same file as duplicates; pass ``run_tag`` to replay a file again as new sessions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from touchstone.collectors.metrics import CollectorMetrics
from touchstone.collectors.publisher import Publisher
from touchstone.collectors.spool import Spool
from touchstone.config import Settings
from touchstone.contracts import RawBatch

__all__ = ["ReplayReport", "replay_batches", "balabit_session_files", "replay_balabit", "replay_aalto"]

log = logging.getLogger(__name__)

# Unacknowledged batches allowed before a fast replay waits for Kafka (keeps memory flat).
_BACKLOG = 1024


@dataclass
class ReplayReport:
    sessions: int = 0
    batches: int = 0
    events: int = 0
    delivered: int = 0
    undelivered: int = 0
    duration_s: float = 0.0


def _progress(total_sessions: int | None, enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("sessions · {task.fields[batches]} batches · {task.fields[events]} events"),
        TimeElapsedColumn(),
        disable=not enabled,
        transient=False,
    )


def replay_batches(
    batches: Iterable[RawBatch],
    settings: Settings,
    speed: float | None = 1.0,
    *,
    total_sessions: int | None = None,
    description: str = "replay",
    show_progress: bool = True,
    publisher: Publisher | None = None,
    flush_timeout: float = 60.0,
) -> ReplayReport:
    """Publish ``batches`` to the raw topic (``full`` batches to the restricted one).

    ``speed=1`` replays at recorded speed, ``speed=N`` N times faster, ``None`` as fast as Kafka
    takes them. Returns counts; ``undelivered`` > 0 means Kafka did not acknowledge everything
    within ``flush_timeout``.
    """
    if speed is not None and not speed > 0:
        raise ValueError(f"speed must be positive or None, got {speed}")
    own_spool = publisher is None
    if publisher is None:
        publisher = Publisher(settings, Spool(None, max_bytes=1 << 62), metrics=CollectorMetrics(), window=256)
    report = ReplayReport()
    started = time.monotonic()
    session: str | None = None
    session_mono0 = 0.0
    session_t0 = 0.0
    try:
        with _progress(total_sessions, show_progress) as progress:
            task = progress.add_task(description, total=total_sessions, batches=0, events=0)
            for batch in batches:
                if batch.session_id != session:
                    session = batch.session_id
                    session_mono0 = batch.mono
                    session_t0 = time.monotonic()
                    report.sessions += 1
                if speed is not None:
                    _wait_until(publisher, session_t0 + (batch.mono - session_mono0) / 1000.0 / speed)
                while publisher.spool.depth >= _BACKLOG:
                    publisher.service(0.01)
                publisher.submit(batch)
                report.batches += 1
                report.events += batch.n_events
                progress.update(task, batches=report.batches, events=report.events, advance=1 if batch.end else 0)
            report.undelivered = publisher.flush(flush_timeout)
    finally:
        if own_spool:
            publisher.spool.close()
    report.delivered = publisher.delivered
    report.duration_s = time.monotonic() - started
    log.info(
        "replayed %d sessions, %d batches, %d events in %.1fs (%d undelivered)",
        report.sessions, report.batches, report.events, report.duration_s, report.undelivered,
    )  # fmt: skip
    return report


def _wait_until(publisher: Publisher, target: float) -> None:
    while True:
        left = target - time.monotonic()
        if left <= 0:
            return
        publisher.service(min(left, 0.05))


def _tagged(batches: Iterable[RawBatch], run_tag: str | None) -> Iterator[RawBatch]:
    for batch in batches:
        yield batch if run_tag is None else replace(batch, session_id=f"{batch.session_id}#{run_tag}")


def balabit_session_files(data_dir: Path | str, limit_files: int | None = None) -> list[Path]:
    """Balabit session files under ``data_dir`` (the dataset root, a split or one user's folder), sorted."""
    root = Path(data_dir)
    if not root.exists():
        raise FileNotFoundError(f"no Balabit data at {root}")
    files = sorted(p for p in root.rglob("session_*") if p.is_file())
    return files[:limit_files] if limit_files is not None else files


def _balabit_batches(files: list[Path], root: Path) -> Iterator[RawBatch]:
    from touchstone.collectors.replay_balabit import iter_balabit_batches

    for path in files:
        user = path.parent.name
        relative = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
        yield from iter_balabit_batches(path, user, f"balabit/{relative.as_posix()}")


def replay_balabit(
    data_dir: Path | str,
    settings: Settings,
    speed: float | None = 1.0,
    limit_files: int | None = None,
    *,
    run_tag: str | None = None,
    show_progress: bool = True,
) -> ReplayReport:
    """Replay Balabit session files, each as one session of its folder's user (``userN``)."""
    root = Path(data_dir)
    files = balabit_session_files(root, limit_files)
    log.info("replaying %d Balabit session files from %s", len(files), root)
    return replay_batches(
        _tagged(_balabit_batches(files, root), run_tag),
        settings,
        speed,
        total_sessions=len(files),
        description="balabit",
        show_progress=show_progress,
    )


def aalto_files(data_dir: Path | str, limit_files: int | None = None) -> list[Path]:
    """Aalto participant files (``*_keystrokes.txt``) under ``data_dir``, sorted."""
    root = Path(data_dir)
    if not root.exists():
        raise FileNotFoundError(f"no Aalto data at {root}")
    files = sorted(p for p in root.rglob("*_keystrokes.txt") if p.is_file())
    return files[:limit_files] if limit_files is not None else files


def replay_aalto(
    data_dir: Path | str,
    settings: Settings,
    speed: float | None = 1.0,
    limit_files: int | None = None,
    *,
    privacy: str | None = None,
    per_sentence: bool = False,
    run_tag: str | None = None,
    show_progress: bool = True,
) -> ReplayReport:
    """Replay Aalto participant files, keys tokenised for ``privacy`` (default ``settings.privacy``).

    One session per participant file (``per_sentence`` = one per typed sentence).
    """
    from touchstone.collectors.collect import make_tokenizer
    from touchstone.collectors.replay_aalto import iter_aalto_batches

    tokenizer = make_tokenizer(settings, privacy, allow_full=False)
    files = aalto_files(data_dir, limit_files)
    log.info("replaying %d Aalto participant files from %s (%s)", len(files), data_dir, tokenizer.mode)

    def batches() -> Iterator[RawBatch]:
        for path in files:
            yield from iter_aalto_batches(path, tokenizer, per_sentence=per_sentence)

    return replay_batches(
        _tagged(batches(), run_tag),
        settings,
        speed,
        total_sessions=None if per_sentence else len(files),
        description="aalto",
        show_progress=show_progress,
    )
