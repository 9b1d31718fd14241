"""``evaluate … --via-kafka``: the streaming pipeline on the real broker gives the in-process scores.

A small subset of a dataset is replayed as collector-format raw batches twice:

* in process, through the very objects a worker runs (:class:`~touchstone.streams.processor.RawProcessor`
  and :class:`~touchstone.detectors.engine.DetectorEngine` built by ``build_scorers``), and
* through Kafka: published to a fresh raw topic, turned into windows and scored by a
  ``touchstone worker`` process (streams and detect stages), read back from the features
  and risk topics.

Every topic of the check has one partition, so the worker sees the windows in the same order
as the in-process run and the (order-dependent) fleet models must agree exactly. The report
says how many windows and risk updates were compared and the largest difference found.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from touchstone.config import Settings
from touchstone.contracts import RawBatch, decode_window, encode_raw, encode_window
from touchstone.detectors.agent import risk_update
from touchstone.detectors.engine import DetectorEngine, EngineConfig
from touchstone.detectors.factory import build_scorers
from touchstone.detectors.snapshot import load_snapshot_key
from touchstone.kafka import ensure_topics
from touchstone.kafka.ephemeral import broker_for_run
from touchstone.kafka.io import consume, make_producer, produce_batches
from touchstone.procs import start_touchstone
from touchstone.streams.processor import RawProcessor

__all__ = ["check_aalto_via_kafka", "check_balabit_via_kafka", "compare_through_pipeline", "in_process_reference"]

log = logging.getLogger(__name__)

_TOPICS = ("topic_raw", "topic_raw_full", "topic_features", "topic_alerts", "topic_siem", "topic_risk",
           "topic_dead_letter")
# Risk and features both travel as JSON floats (orjson round-trips doubles exactly); anything
# above this is a real difference, not formatting.
_TOLERANCE = 1e-9


def in_process_reference(
    settings: Settings, batches: list[RawBatch]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Windows (by id → features) and risk updates (by window id) exactly as one worker computes them."""
    processor = RawProcessor(settings, {})
    engine = DetectorEngine(build_scorers(settings), EngineConfig.from_settings(settings),
                            snapshot_key=load_snapshot_key(settings))
    windows: dict[str, Any] = {}
    risks: dict[str, dict[str, Any]] = {}
    for batch in batches:
        result = processor.process(encode_raw(batch), now_ms=time.time() * 1000.0)
        if result.reason is not None:
            raise ValueError(f"subset batch rejected in process: {result.reason}: {result.detail}")
        for window in result.windows:
            # The same encode/decode the features topic applies, so both sides see identical floats.
            window = decode_window(encode_window(window))
            windows[window.window_id] = window.features
            engine.process(window, now_ms=time.time() * 1000.0)
            update = risk_update(engine, window)
            if update is not None:
                risks[window.window_id] = orjson.loads(update)
    return windows, risks


def _max_difference(a: Any, b: Any) -> float:
    """Largest absolute difference between two JSON-like values of the same shape (inf if shapes differ)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return math.inf
        return max((_max_difference(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return math.inf
        return max((_max_difference(x, y) for x, y in zip(a, b, strict=True)), default=0.0)
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, int | float) or not isinstance(b, int | float):
        return 0.0 if a == b else math.inf
    if math.isnan(a) and math.isnan(b):
        return 0.0
    return abs(float(a) - float(b))


def compare_through_pipeline(
    settings: Settings, batches: Iterable[RawBatch], *, label: str, timeout_s: float = 600.0
) -> dict[str, Any]:
    """Run ``batches`` in process and through a worker on the real broker; report whether they agree."""
    began = time.perf_counter()
    batches = list(batches)
    run_id = uuid.uuid4().hex[:6]
    run_dir = Path(settings.state_dir) / "via-kafka" / run_id
    expected_windows, expected_risk = in_process_reference(settings, batches)
    with broker_for_run(settings, run_dir) as base:
        check = base.replace(
            partitions=1,
            state_dir=str(run_dir / "state"),
            **{name: f"{getattr(base, name)}.check-{label}-{run_id}" for name in _TOPICS},
        )
        ensure_topics(check)
        worker = start_touchstone(
            "worker", ["worker", "--app-id", f"touchstone-check-{run_id}", "--log-level", "warning"], check, run_dir
        )
        try:
            producer = make_producer(check.bootstrap)
            produce_batches(producer, check.topic_raw, batches)
            producer.flush(60)
            risk_records = consume(
                check.bootstrap,
                [check.topic_risk],
                until=lambda r: len(r) >= len(expected_risk),
                timeout_s=timeout_s,
                abort=lambda: not worker.alive(),
            )
            feature_records = consume(
                check.bootstrap, [check.topic_features], until=lambda r: len(r) >= len(expected_windows),
                timeout_s=60.0,
            )
        finally:
            worker.stop()
    got_windows = {w.window_id: w.features for w in map(decode_window, (r.value for r in feature_records))}
    got_risk = {doc["window_id"]: doc for doc in (orjson.loads(r.value) for r in risk_records)}
    compared = sorted(set(expected_risk) & set(got_risk))
    risk_diff = max(
        (_max_difference(_scored(expected_risk[k]), _scored(got_risk[k])) for k in compared), default=0.0
    )
    feature_diff = max(
        (_max_difference(expected_windows[k], got_windows[k]) for k in set(expected_windows) & set(got_windows)),
        default=0.0,
    )
    enrolled = sum(1 for k in compared if expected_risk[k]["enrolment"] == "enrolled")
    scored = sum(1 for k in compared if expected_risk[k]["score"] is not None)
    agree = (
        set(got_windows) == set(expected_windows)
        and set(got_risk) == set(expected_risk)
        and feature_diff <= _TOLERANCE
        and risk_diff <= _TOLERANCE
    )
    if not agree:
        log.warning("via-kafka check %s: the pipeline and the in-process run differ; worker log: %s", label,
                    run_dir / "worker.log")
    return {
        "agree": agree,
        "raw_batches": len(batches),
        "raw_events": sum(b.n_events for b in batches),
        "windows_in_process": len(expected_windows),
        "windows_via_kafka": len(got_windows),
        "risk_updates_in_process": len(expected_risk),
        "risk_updates_via_kafka": len(got_risk),
        "risk_updates_of_enrolled_users": enrolled,
        "windows_scored": scored,
        "max_feature_difference": feature_diff,
        "max_risk_difference": risk_diff,
        "nonzero_risk_updates": sum(1 for k in compared if expected_risk[k]["risk"] > 0),
        "runtime_s": round(time.perf_counter() - began, 1),
        "logs": str(run_dir),
    }


def _scored(update: dict[str, Any]) -> dict[str, Any]:
    """The parts of a risk update that the models decide (not the wall-clock fields)."""
    keep = ("risk", "score", "level", "windows_seen", "enrolment", "enrolment_progress", "modality", "session_age_s")
    return {k: update.get(k) for k in keep}


def check_balabit_via_kafka(
    data_dir: str | Path, labels_csv: str | Path, settings: Settings, *, test_sessions: int = 6
) -> dict[str, Any]:
    """Every user's training sessions (the fleet, so the models exist) then a few labelled test sessions."""
    from touchstone.collectors.replay import balabit_session_files
    from touchstone.collectors.replay_balabit import iter_balabit_batches
    from touchstone.detectors.evaluate_balabit import read_labels

    root = Path(data_dir)
    labels = read_labels(Path(labels_csv))
    training = balabit_session_files(root / "training_files")
    tests = [p for p in balabit_session_files(root / "test_files") if p.name in labels]
    # Alternate genuine and illegal sessions so the subset has both.
    genuine = [p for p in tests if labels[p.name] == 0]
    illegal = [p for p in tests if labels[p.name] == 1]
    chosen = [p for pair in zip(genuine, illegal, strict=False) for p in pair][:test_sessions]
    batches: list[RawBatch] = []
    for path in [*training, *chosen]:
        batches.extend(iter_balabit_batches(path, path.parent.name, f"{path.parent.parent.name}/{path.parent.name}/"
                                            f"{path.name}"))
    report = compare_through_pipeline(settings, batches, label="balabit")
    report["subset"] = {"training_sessions": len(training), "test_sessions": [p.name for p in chosen]}
    return report


def check_aalto_via_kafka(
    data_dir: str | Path, settings: Settings, *, privacy: str = "keyed", users: int = 40
) -> dict[str, Any]:
    """The first ``users`` participants' typing, each file replayed as one session."""
    from touchstone.collectors.privacy import KeyTokenizer
    from touchstone.collectors.replay import aalto_files
    from touchstone.collectors.replay_aalto import iter_aalto_batches

    secret = b"touchstone-via-kafka-check-secret" if privacy == "keyed" else None
    tokenizer = KeyTokenizer(privacy, secret=secret, allow_full=True)
    files = aalto_files(data_dir, limit_files=users)
    batches = [b for path in files for b in iter_aalto_batches(path, tokenizer)]
    report = compare_through_pipeline(settings, batches, label="aalto")
    report["subset"] = {"users": len(files), "privacy": privacy}
    return report
