"""Balabit Mouse Dynamics Challenge evaluation, in process, with the production extractor and scorer.

Protocol (``../shared/datasets/README.md``):

1. **Learn.** Every training session (``training_files/userN/session_*``) is replayed as
   raw batches (:func:`~touchstone.collectors.replay_balabit.iter_balabit_batches`)
   through a fresh :class:`~touchstone.streams.mouse_features.MouseWindower`; its windows
   go to :meth:`MouseFleetScorer.learn_one` as the worker would send them (score, then
   learn). The users' streams are interleaved by progress, as a fleet working at the same
   time would produce them, so no user's data all arrives first.
2. **Score.** Every labelled test session is replayed the same way as a live session of
   its account, score-only: nothing is learned from test sessions, and labels are read
   only to compute the AUCs.
3. **Report.** A session's score is the mean anomaly score of its actions; ``auc`` uses
   all of them, ``auc_by_actions[k]`` only the first k (what a live system knows after k
   actions). The ROC AUC pools all labelled sessions, as the challenge did.
"""

from __future__ import annotations

import csv
import heapq
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from touchstone.collectors.replay_balabit import BALABIT_SESSION_START_MS, COLLECTOR, parse_balabit_session
from touchstone.contracts import PRIVACY_MODES, FeatureWindow, MouseEvents
from touchstone.detectors.mouse import MouseFleetScorer
from touchstone.streams.base import ClosedWindow
from touchstone.streams.mouse_features import MouseWindower

__all__ = ["ACTION_COUNTS", "evaluate_balabit", "evaluate_balabit_command", "read_labels", "roc_auc"]

log = logging.getLogger(__name__)

ACTION_COUNTS: tuple[int | None, ...] = (1, 5, 10, 20, None)
BATCH_EVENTS = 200


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (label 1 = positive = should score high), ties counted half.

    >>> roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    0.75
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    n_pos = int(labels.sum())
    n_neg = int(labels.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranked = scores[order]
    ranks = np.empty(scores.size, dtype=np.float64)
    # Average rank within each run of equal scores.
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    ends = np.r_[starts[1:], scores.size]
    average = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(average, ends - starts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _natural_key(name: str) -> tuple[Any, ...]:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def read_labels(path: Path) -> dict[str, int]:
    """The public labels CSV (filename,is_illegal) as file name → 1 for an impostor session, 0 genuine."""
    labels: dict[str, int] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            name = (row.get("filename") or "").strip()
            flag = (row.get("is_illegal") or "").strip()
            if name and flag in {"0", "1"}:
                labels[name] = int(flag)
    return labels


@dataclass(slots=True)
class _Tally:
    """What replay saw: sessions, events, actions, windows, and rows the parser skipped by reason."""

    sessions: int = 0
    events: int = 0
    actions: int = 0
    windows: int = 0
    dropped_short_moves: int = 0
    skipped_rows: Counter[str] = field(default_factory=Counter)
    windowing_s: float = 0.0
    max_state_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "sessions": self.sessions,
            "events": self.events,
            "actions": self.actions,
            "windows": self.windows,
            "dropped_short_moves": self.dropped_short_moves,
            "skipped_rows": dict(self.skipped_rows),
        }


def _to_feature_window(closed: ClosedWindow, *, user: str, session_id: str, privacy: str) -> FeatureWindow:
    return FeatureWindow(
        user=user,
        host=f"balabit-{user}",
        session_id=session_id,
        modality=closed.modality,
        index=closed.index,
        privacy=privacy,
        session_start=BALABIT_SESSION_START_MS,
        start=BALABIT_SESSION_START_MS + closed.start_t,
        end=BALABIT_SESSION_START_MS + closed.end_t,
        n_events=closed.n_events,
        closed_by=closed.closed_by,
        features=closed.features,
        actions=closed.actions,
        action_fields=closed.action_fields,
    )


def _replay_session(
    path: Path, user: str, privacy: str, windower_factory: Callable[[], MouseWindower], tally: _Tally
) -> Iterator[tuple[float, FeatureWindow]]:
    """Replay one session file through a fresh windower: (fraction of the session's events seen, window)."""
    parsed = parse_balabit_session(path)
    tally.sessions += 1
    tally.skipped_rows.update(parsed.skipped)
    events = parsed.events
    n = len(events)
    tally.events += n
    session_id = f"{user}/{path.name}"
    windower = windower_factory()
    for start in range(0, max(n, 1), BATCH_EVENTS):
        stop = min(start + BATCH_EVENTS, n)
        batch = MouseEvents(
            t=events.t[start:stop], kind=events.kind[start:stop], x=events.x[start:stop],
            y=events.y[start:stop], button=events.button[start:stop],
        )
        began = time.perf_counter()
        closed = windower.push(batch) if stop < n else windower.push(batch) + windower.flush("session_end")
        tally.windowing_s += time.perf_counter() - began
        if start % (BATCH_EVENTS * 50) == 0:
            tally.max_state_bytes = max(tally.max_state_bytes, len(orjson.dumps(windower.to_state())))
        for window in closed:
            tally.windows += 1
            tally.actions += len(window.actions)
            yield stop / max(n, 1), _to_feature_window(window, user=user, session_id=session_id, privacy=privacy)
    tally.dropped_short_moves += windower.dropped_short


def _user_stream(
    user: str, sessions: list[Path], privacy: str, windower_factory: Callable[[], MouseWindower], tally: _Tally
) -> Iterator[tuple[float, str, int, FeatureWindow]]:
    """A user's training windows keyed by progress through their data (file bytes), for interleaving."""
    sizes = [max(p.stat().st_size, 1) for p in sessions]
    total = float(sum(sizes))
    done = 0.0
    for seq, (path, size) in enumerate(zip(sessions, sizes, strict=True)):
        for fraction, window in _replay_session(path, user, privacy, windower_factory, tally):
            yield (done + fraction * size) / total, user, seq, window
        done += size


def _progress(enabled: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        disable=not enabled, transient=False,
    )


def evaluate_balabit(
    data_dir: str | Path,
    labels_csv: str | Path,
    *,
    privacy: str = "timing",
    limit_users: int | None = None,
    progress: bool = True,
    scorer: MouseFleetScorer | None = None,
    windower_factory: Callable[[], MouseWindower] | None = None,
) -> dict[str, Any]:
    """Learn the fleet from ``training_files``, score the labelled ``test_files`` sessions, return the report."""
    if privacy not in PRIVACY_MODES:
        raise ValueError(f"privacy must be one of {sorted(PRIVACY_MODES)}, not {privacy!r}")
    began = time.perf_counter()
    data_dir = Path(data_dir)
    labels = read_labels(Path(labels_csv))
    training_root, test_root = data_dir / "training_files", data_dir / "test_files"
    if not training_root.is_dir():
        raise FileNotFoundError(f"{training_root} is not a directory (expected the challenge layout)")
    users = sorted((p.name for p in training_root.iterdir() if p.is_dir()), key=_natural_key)
    if limit_users is not None:
        users = users[: max(limit_users, 2)]
    training = {
        u: sorted((p for p in (training_root / u).iterdir() if p.is_file()), key=lambda p: p.name) for u in users
    }
    trials = [
        (u, p, labels[p.name])
        for u in users
        if (test_root / u).is_dir()
        for p in sorted((test_root / u).iterdir(), key=lambda p: p.name)
        if p.is_file() and p.name in labels
    ]
    scorer = scorer if scorer is not None else MouseFleetScorer()
    windower_factory = windower_factory if windower_factory is not None else MouseWindower
    train_tally, test_tally = _Tally(), _Tally()

    # 1. Learn: the fleet's training windows, interleaved by progress, score-then-learn as in the worker.
    learn_s = 0.0
    scored_learned = 0
    score_learn_s = 0.0
    n_train_sessions = sum(len(s) for s in training.values())
    with _progress(progress) as bar:
        task = bar.add_task("learn (training sessions)", total=n_train_sessions)
        streams = [_user_stream(u, training[u], privacy, windower_factory, train_tally) for u in users]
        seen_sessions = 0
        for _, _, _, window in heapq.merge(*streams, key=lambda item: item[0]):
            t0 = time.perf_counter()
            was_ready = scorer.ready
            score = scorer.score_one(window)
            scorer.learn_one(window)
            elapsed = time.perf_counter() - t0
            learn_s += elapsed
            if score is not None and was_ready and scorer.ready:
                scored_learned += 1
                score_learn_s += elapsed
            if train_tally.sessions != seen_sessions:
                bar.update(task, completed=train_tally.sessions)
                seen_sessions = train_tally.sessions
        bar.update(task, completed=train_tally.sessions)
        if not scorer.ready and not scorer.finish_warmup():
            log.warning("the fleet is too small to grow the mouse model: every test session will be skipped")

        # 2. Score: each labelled test session as a live session of its account, score-only.
        task = bar.add_task("score (test sessions)", total=len(trials))
        session_scores: list[np.ndarray] = []
        session_labels: list[int] = []
        session_users: list[str] = []
        skipped: Counter[str] = Counter()
        score_s = 0.0
        windows_scored = 0
        actions_scored = 0
        for user, path, label in trials:
            windows = [w for _, w in _replay_session(path, user, privacy, windower_factory, test_tally)]
            t0 = time.perf_counter()
            per_window = [scorer.score_one(w) for w in windows]
            actions = [row for w in windows for row in w.actions]
            fields = windows[0].action_fields if windows else []
            matrix = _as_matrix(actions, fields, scorer)
            scores = scorer.score_actions(user, matrix)
            score_s += time.perf_counter() - t0
            windows_scored += sum(s is not None for s in per_window)
            bar.advance(task)
            if scores is None:
                skipped["user_not_enrolled"] += 1
                continue
            if scores.shape[0] == 0:
                skipped["no_actions_scored_neutral"] += 1
                scores = np.zeros(1)
            actions_scored += matrix.shape[0]
            session_scores.append(scores)
            session_labels.append(label)
            session_users.append(user)

    y = np.asarray(session_labels, dtype=np.int64)
    by_actions: dict[str, float] = {}
    for k in ACTION_COUNTS:
        aggregated = np.asarray([s[:k].mean() if k else s.mean() for s in session_scores])
        by_actions[str(k) if k else "all"] = _round(roc_auc(aggregated, y)) if len(y) else float("nan")
    all_scores = np.asarray([s.mean() for s in session_scores])
    by_user = {
        u: _round(roc_auc(all_scores[mask], y[mask]))
        for u in sorted(set(session_users), key=_natural_key)
        if 0 < y[(mask := np.asarray(session_users) == u)].sum() < mask.sum()
    }
    profile_sizes = [scorer.profile_nbytes(u) for u in users if u in scorer.profiles]
    windowing_events = train_tally.events + test_tally.events
    windowing_s = train_tally.windowing_s + test_tally.windowing_s
    report = {
        "dataset": "balabit",
        "data": str(data_dir),
        "labels": str(labels_csv),
        "privacy": privacy,
        "protocol": "learn training_files (fleet, interleaved by progress, score-then-learn); "
        "score labelled test_files sessions as live sessions, score-only; session score = mean action score",
        "auc": by_actions["all"],
        "auc_by_actions": by_actions,
        "auc_by_user": by_user,
        "n_sessions": len(y),
        "n_illegal": int(y.sum()),
        "n_genuine": int(len(y) - y.sum()),
        "sessions_skipped": dict(skipped),
        "users": len(users),
        "training": train_tally.to_dict(),
        "test": test_tally.to_dict(),
        "runtime_s": {
            "total": round(time.perf_counter() - began, 2),
            "windowing": round(windowing_s, 2),
            "learn": round(learn_s, 2),
            "score": round(score_s, 2),
        },
        "throughput": {
            "raw_events_windowed_per_s": round(windowing_events / max(windowing_s, 1e-9)),
            "windows_scored_learned_per_s": round(scored_learned / max(score_learn_s, 1e-9)),
            "windows_scored_per_s": round(windows_scored / max(score_s, 1e-9)),
            "actions_scored_per_s": round(actions_scored / max(score_s, 1e-9)),
        },
        "memory": {
            "profile_bytes_mean": round(float(np.mean(profile_sizes))) if profile_sizes else 0,
            "profile_bytes_max": max(profile_sizes, default=0),
            "windower_state_bytes_max": max(train_tally.max_state_bytes, test_tally.max_state_bytes),
        },
        "model": scorer.settings(),
        "windower": _windower_settings(windower_factory()),
        "collector": COLLECTOR,
        "timestamps": "client timestamp (capture time on the user's machine), seconds x 1000, to the microsecond",
    }
    return report


def _as_matrix(actions: list[list[float]], fields: list[str], scorer: MouseFleetScorer) -> np.ndarray:
    """Action rows reordered to the scorer's field order (the windower and scorer share ACTION_FIELDS today)."""
    if not actions:
        return np.zeros((0, len(scorer.fields)))
    raw = np.asarray(actions, dtype=np.float64)
    if list(fields) == list(scorer.fields):
        return raw
    position = {name: i for i, name in enumerate(fields)}
    out = np.zeros((raw.shape[0], len(scorer.fields)))
    for j, name in enumerate(scorer.fields):
        if name in position:
            out[:, j] = raw[:, position[name]]
    return out


def _windower_settings(windower: MouseWindower) -> dict[str, Any]:
    p = windower.params
    return {
        "window_actions": windower.window_actions,
        "pause_ms": p.pause_ms,
        "drag_px": p.drag_px,
        "min_move_points": p.min_move_points,
        "max_points": p.max_points,
        "batch_events": BATCH_EVENTS,
    }


def _round(value: float) -> float:
    return round(value, 4) if np.isfinite(value) else float("nan")


def evaluate_balabit_command(
    data: Path,
    labels: Path,
    json_out: Path | None = None,
    *,
    privacy: str = "timing",
    limit_users: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Body of ``touchstone evaluate balabit --data DIR --labels CSV --json OUT``: run, write OUT, print the JSON."""
    report = evaluate_balabit(data, labels, privacy=privacy, limit_users=limit_users, progress=progress)
    text = orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode()
    if json_out is not None:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(text + "\n", encoding="utf-8")
    print(text)  # CLI output
    return report
