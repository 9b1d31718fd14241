"""Aalto 136M Keystrokes evaluation, TypeNet-like protocol, on the production code path.

Each participant's typing is replayed as raw batches (``collectors.replay_aalto``),
windowed by the production :class:`KeystrokeWindower` (one window = one sequence of
M keystrokes) and scored by the production :class:`KeystrokeFleetScorer`.

Protocol (``/work/shared/datasets/README.md``):

* ``M = 50`` (sentences): each sentence gives one sequence, its first 50 keystrokes
  in press order; enrolment = the user's first G = 5 sequences, genuine trials = the
  remaining ones;
* ``M = 100`` and ``150`` (streams): a user's sentences are typed one after the
  other and cut into consecutive sequences of M keystrokes. Too few sequences exist
  for G = 5 (a user types about 730 keystrokes), so enrolment keeps the same amount
  of typing as the sentence protocol: G = ceil(5 * 50 / M) sequences (3 and 2);
* impostor trials: one test sequence of each of up to 200 other users, drawn with
  a fixed seed;
* population learning (combiner, population statistics) sees only enrolment
  sequences, round-robin across users as a fleet enrolling together, plus every
  sequence of a disjoint ``population_dir`` if given; test sequences are never learned.

Reported: the mean of per-user EERs and the EER of all trials pooled (fractions).
"""

from __future__ import annotations

import hashlib
import logging
import math
import pickle
import random
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from touchstone.collectors.privacy import KeyTokenizer
from touchstone.collectors.replay_aalto import AaltoFile, batches_from_sentences, parse_aalto_file
from touchstone.contracts import FeatureWindow
from touchstone.detectors.keys import KeystrokeFleetScorer
from touchstone.streams.base import ClosedWindow
from touchstone.streams.keystroke_features import KeystrokeWindower

__all__ = ["equal_error_rate", "evaluate_aalto"]

log = logging.getLogger(__name__)

ENROL_SEQUENCES = 5
SENTENCE_KEYS = 50
STREAM_KEYS = (100, 150)
IMPOSTOR_USERS = 200
RHYTHM_WINDOWS = 3000  # enough for a stable rate, few enough to keep the run short
# A fixed evaluation secret: the keyed tokens only need to be stable within one run.
_EVAL_SECRET = hashlib.sha256(b"touchstone aalto evaluation").digest()


def equal_error_rate(genuine: Sequence[float], impostor: Sequence[float]) -> float:
    """EER of scores where higher = more likely an impostor: where false rejects meet false accepts.

    >>> equal_error_rate([0.1, 0.2, 0.3], [0.7, 0.8, 0.9])
    0.0
    >>> equal_error_rate([0.5, 0.5], [0.5, 0.5])
    0.5
    """
    gen = np.sort(np.asarray(genuine, dtype=np.float64))
    imp = np.sort(np.asarray(impostor, dtype=np.float64))
    if not gen.size or not imp.size:
        raise ValueError("need genuine and impostor scores")
    thresholds = np.concatenate([np.unique(np.concatenate([gen, imp])), [np.inf]])
    # Reject when score >= threshold.
    frr = np.searchsorted(gen, thresholds, side="left") / gen.size
    frr = 1.0 - frr
    far = np.searchsorted(imp, thresholds, side="left") / imp.size
    diff = frr - far  # decreasing from >= 0 to <= 0
    crossing = int(np.argmax(diff <= 0.0))
    if crossing == 0 or diff[crossing] == 0.0:
        return float((frr[crossing] + far[crossing]) / 2.0)
    # Interpolate between the last threshold with FRR > FAR and the first with FRR <= FAR.
    a, b = crossing - 1, crossing
    weight = diff[a] / (diff[a] - diff[b])
    return float(frr[a] + weight * (frr[b] - frr[a]))


@dataclass(frozen=True, slots=True)
class _Config:
    keys: int
    enrol: int
    per_sentence: bool

    @property
    def label(self) -> str:
        return str(self.keys)


def _configs() -> list[_Config]:
    return [_Config(SENTENCE_KEYS, ENROL_SEQUENCES, True)] + [
        _Config(m, math.ceil(ENROL_SEQUENCES * SENTENCE_KEYS / m), False) for m in STREAM_KEYS
    ]


def _files(directory: Path, max_users: int | None) -> list[Path]:
    if not directory.is_dir():
        raise FileNotFoundError(f"no Aalto keystroke directory at {directory}")
    files = sorted(directory.glob("*_keystrokes.txt"), key=lambda p: (len(p.name), p.name))
    if not files:
        raise FileNotFoundError(f"no *_keystrokes.txt files in {directory}")
    return files[:max_users] if max_users is not None else files


def _feature_window(closed: ClosedWindow, user: str, session_id: str, privacy: str, origin: float) -> FeatureWindow:
    return FeatureWindow(
        user=user,
        host=f"aalto-{user}",
        session_id=session_id,
        modality=closed.modality,
        index=closed.index,
        privacy=privacy,
        session_start=origin,
        start=origin + closed.start_t,
        end=origin + closed.end_t,
        n_events=closed.n_events,
        closed_by=closed.closed_by,
        features=closed.features,
        grams=closed.grams,
    )


def _sequences(parsed: AaltoFile, config: _Config, tokenizer: KeyTokenizer) -> tuple[list[FeatureWindow], int]:
    """The user's sequences as feature windows, and the number of key events replayed."""
    user = parsed.participant
    groups = [[s] for s in parsed.sentences] if config.per_sentence else [list(parsed.sentences)]
    windows: list[FeatureWindow] = []
    events = 0
    for group in groups:
        session_id = f"aalto-{user}-{group[0].section_id}" if config.per_sentence else f"aalto-{user}"
        windower = KeystrokeWindower(
            config.keys, close_pause_ms=None, min_keys=1 if config.per_sentence else config.keys
        )
        origin = 0.0
        for batch in batches_from_sentences(
            group,
            tokenizer,
            user=user,
            session_id=session_id,
            max_keys=config.keys if config.per_sentence else None,
        ):
            origin = batch.session_start
            events += len(batch.keys)
            closed = windower.push(batch.keys)
            if batch.end:
                closed += windower.flush("session_end")
            windows.extend(_feature_window(c, user, session_id, tokenizer.mode, origin) for c in closed)
    return windows, events


@contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    ) as progress:
        yield progress


def _track(progress: Any, items: Sequence[Any], description: str) -> Iterator[Any]:
    if progress is None:
        yield from items
        return
    task = progress.add_task(description, total=len(items))
    for item in items:
        yield item
        progress.advance(task)


def _profile_bytes(scorer: KeystrokeFleetScorer, users: Sequence[str]) -> dict[str, float]:
    sizes = []
    for user in users[:: max(1, len(users) // 50)]:
        profile = scorer.profile(user)
        if profile is not None:
            sizes.append(len(pickle.dumps(profile, protocol=pickle.HIGHEST_PROTOCOL)))
    total = len(pickle.dumps(scorer, protocol=pickle.HIGHEST_PROTOCOL))
    return {
        "profile_bytes_mean": float(np.mean(sizes)) if sizes else 0.0,
        "profile_bytes_max": float(max(sizes)) if sizes else 0.0,
        "scorer_bytes_per_user": total / max(1, len(scorer.users)),
    }


def _full_profile_bytes(windows: Sequence[FeatureWindow], max_windows: int) -> float:
    """Pickled size of a profile that holds ``max_windows`` windows (the most a profile keeps).

    The dataset has too few windows per user to fill one, so it is filled with windows of
    many users: more distinct n-grams than one typist's, so an upper bound.
    """
    scorer = KeystrokeFleetScorer(enrol_windows=1, max_windows=max_windows)
    for window in windows[:max_windows]:
        scorer.learn_one(replace(window, user="probe"))
    return float(len(pickle.dumps(scorer.profile("probe"), protocol=pickle.HIGHEST_PROTOCOL)))


def _rhythm_rates(scorer: KeystrokeFleetScorer, windows: Sequence[FeatureWindow]) -> dict[str, float | None]:
    """Windows per second scored then learned, as a detector worker handles each window.

    Measured on copies of the enrolled scorer (the reported EERs never see these windows
    learned): as the harness leaves it, where every learned window still teaches the
    combiner (warm-up), and past the warm-up, where a ``combiner_rate`` share does.
    """
    rates: dict[str, float | None] = {}
    for label, warmup in (("windows_scored_and_learned_per_s", None), ("windows_scored_and_learned_steady_per_s", 0)):
        copy: KeystrokeFleetScorer = pickle.loads(pickle.dumps(scorer, protocol=pickle.HIGHEST_PROTOCOL))
        if warmup is not None:
            copy.combiner_warmup = warmup
        started = time.perf_counter()
        for window in windows:
            copy.score_one(window)
            copy.learn_one(window)
        elapsed = time.perf_counter() - started
        rates[label] = round(len(windows) / elapsed) if elapsed > 0 and windows else None
    return rates


def _run_config(
    config: _Config,
    parsed: list[AaltoFile],
    population: list[AaltoFile],
    tokenizer: KeyTokenizer,
    *,
    seed: int,
    progress: Any,
) -> dict[str, Any]:
    started = time.perf_counter()
    sequences: dict[str, list[FeatureWindow]] = {}
    events = 0
    for item in _track(progress, parsed, f"M={config.keys}: windows"):
        windows, n = _sequences(item, config, tokenizer)
        sequences[item.participant] = windows
        events += n
    windowing_s = time.perf_counter() - started
    users = [u for u, w in sequences.items() if len(w) > config.enrol]
    skipped_users = len(sequences) - len(users)

    scorer = KeystrokeFleetScorer(enrol_windows=config.enrol, seed=seed)
    learn_started = time.perf_counter()
    learned = 0
    for item in population:
        for window in _sequences(item, config, tokenizer)[0]:
            scorer.learn_one(replace(window, user=f"population-{window.user}"))
            learned += 1
    # The fleet enrols together: every user's first window, then every user's second, ...
    for k in _track(progress, range(config.enrol), f"M={config.keys}: enrol"):
        for user in users:
            scorer.learn_one(sequences[user][k])
            learned += 1
    learn_s = time.perf_counter() - learn_started

    rng = random.Random(seed)
    trials: list[tuple[str, list[FeatureWindow], list[FeatureWindow]]] = []
    for user in users:
        others = rng.sample([u for u in users if u != user], min(IMPOSTOR_USERS, len(users) - 1))
        impostors = [rng.choice(sequences[o][config.enrol :]) for o in others]
        trials.append((user, sequences[user][config.enrol :], impostors))

    score_started = time.perf_counter()
    per_user: list[float] = []
    genuine_all: list[float] = []
    impostor_all: list[float] = []
    scored = 0
    for user, genuine, impostors in _track(progress, trials, f"M={config.keys}: score"):
        genuine_scores = [_score(scorer, w, user) for w in genuine]
        impostor_scores = [_score(scorer, w, user) for w in impostors]
        scored += len(genuine_scores) + len(impostor_scores)
        if impostor_scores:
            per_user.append(equal_error_rate(genuine_scores, impostor_scores))
        genuine_all += genuine_scores
        impostor_all += impostor_scores
    score_s = time.perf_counter() - score_started
    # Genuine test windows in round-robin order, as a fleet's windows reach a worker.
    later = [sequences[u][config.enrol :] for u in users]
    stream = [ws[k] for k in range(max((len(ws) for ws in later), default=0)) for ws in later if k < len(ws)]
    rhythm = _rhythm_rates(scorer, stream[:RHYTHM_WINDOWS])
    n_keys = [w.n_events for u in users for w in sequences[u]]
    return {
        "keystrokes_per_sequence": config.keys,
        "sequences": "sentence" if config.per_sentence else "consecutive",
        "enrol_sequences": config.enrol,
        "users": len(users),
        "users_skipped_too_few_sequences": skipped_users,
        "mean_user_eer": float(np.mean(per_user)) if per_user else None,
        "median_user_eer": float(np.median(per_user)) if per_user else None,
        "global_eer": equal_error_rate(genuine_all, impostor_all) if genuine_all and impostor_all else None,
        "genuine_trials": len(genuine_all),
        "impostor_trials": len(impostor_all),
        "mean_keys_per_sequence": float(np.mean(n_keys)) if n_keys else 0.0,
        "combiner_examples": dict(scorer.examples),
        "population_users": len(population),
        "windowing_s": round(windowing_s, 2),
        "key_events": events,
        "key_events_per_s": round(events / windowing_s) if windowing_s else None,
        "learn_s": round(learn_s, 2),
        "windows_learned_per_s": round(learned / learn_s) if learn_s else None,
        "score_s": round(score_s, 2),
        "windows_scored_per_s": round(scored / score_s) if score_s else None,
        **rhythm,
        **_profile_bytes(scorer, users),
        "profile_bytes_full": _full_profile_bytes(stream, scorer.max_windows),
    }


def _score(scorer: KeystrokeFleetScorer, window: FeatureWindow, claimed: str) -> float:
    score = scorer.score_one(window if window.user == claimed else replace(window, user=claimed))
    if score is None:
        raise RuntimeError(f"user {claimed} is not enrolled")
    return score


def _parse_all(files: Sequence[Path], progress: Any, description: str) -> tuple[list[AaltoFile], dict[str, int]]:
    parsed = []
    skipped: Counter[str] = Counter()
    repaired: Counter[str] = Counter()
    rows = 0
    for path in _track(progress, files, description):
        item = parse_aalto_file(path)
        parsed.append(item)
        skipped.update(item.skipped)
        repaired.update(item.repaired)
        rows += item.rows
    return parsed, {"rows": rows, "skipped": dict(skipped), "repaired": dict(repaired)}


def evaluate_aalto(
    data_dir: str | Path,
    *,
    population_dir: str | Path | None = None,
    privacy: str = "keyed",
    max_users: int | None = None,
    progress: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Run the protocol on every ``<id>_keystrokes.txt`` in ``data_dir``; return the JSON-able report.

    ``population_dir`` holds disjoint participants whose every sequence may be learned
    (population statistics and combiner); without it, population learning uses the
    evaluated users' enrolment sequences only.
    """
    started = time.perf_counter()
    tokenizer = KeyTokenizer(privacy, secret=_EVAL_SECRET if privacy == "keyed" else None, allow_full=True)
    files = _files(Path(data_dir), max_users)
    population_files = _files(Path(population_dir), None) if population_dir is not None else []
    evaluated_ids = {p.name for p in files}
    population_files = [p for p in population_files if p.name not in evaluated_ids]
    report: dict[str, Any] = {
        "dataset": "aalto-136m-keystrokes",
        "protocol": "typenet-like; M=50 sentences with G=5, M=100/150 consecutive with G=ceil(250/M)",
        "privacy": privacy,
        "seed": seed,
        "data_dir": str(data_dir),
        "population_dir": str(population_dir) if population_dir is not None else None,
    }
    with _progress(progress) as bar:
        parsed, parse_report = _parse_all(files, bar, "parse")
        population, population_report = _parse_all(population_files, bar, "parse population")
        configs = {}
        for config in _configs():
            configs[config.label] = _run_config(config, parsed, population, tokenizer, seed=seed, progress=bar)
            log.info("aalto M=%d: %s", config.keys, configs[config.label])
    main = configs[str(SENTENCE_KEYS)]
    report.update(
        {
            "users": len(parsed),
            "rows": parse_report,
            "population_rows": population_report if population else None,
            "mean_user_eer": main["mean_user_eer"],
            "global_eer": main["global_eer"],
            "configs": configs,
            "runtime_s": round(time.perf_counter() - started, 1),
            "windows_scored_per_s": main["windows_scored_per_s"],
            "windows_learned_per_s": main["windows_learned_per_s"],
            "windows_scored_and_learned_per_s": main["windows_scored_and_learned_per_s"],
            "windows_scored_and_learned_steady_per_s": main["windows_scored_and_learned_steady_per_s"],
            "profile_bytes_mean": main["profile_bytes_mean"],
            "profile_bytes_full": main["profile_bytes_full"],
        }
    )
    return report


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m touchstone.detectors.evaluate_aalto DIR [--privacy MODE] [--max-users N] [--json OUT]``."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--population")
    parser.add_argument("--privacy", default="keyed", choices=("timing", "keyed", "full"))
    parser.add_argument("--max-users", type=int)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    report = evaluate_aalto(
        args.data, population_dir=args.population, privacy=args.privacy, max_users=args.max_users
    )
    text = json.dumps(report, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
