"""Fault drill: the only worker (both stages) is SIGKILLed mid-stream and a fresh one takes over.

Topics have one partition, so the fresh worker sees the windows in the order an uninterrupted
in-process run does. The drill checks that the feature windows are exactly the in-process ones
and that the detector resumes from the checkpoint in its table's changelog: every window after
that checkpoint is scored exactly as an engine that never stopped scores it.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest
from drill_kit import committed_offset, fresh_topics, reads_all, start_worker, wait_for, windows_by_id

from touchstone.collectors.simulate import Fleet, Takeover
from touchstone.config import Settings
from touchstone.contracts import decode_window
from touchstone.detectors.engine import DetectorEngine, EngineConfig
from touchstone.detectors.factory import build_scorers
from touchstone.detectors.snapshot import load_snapshot_key
from touchstone.detectors.state import Manifest, join_snapshot
from touchstone.detectors.via_kafka import in_process_reference
from touchstone.kafka.io import Record, consume, make_producer, produce_batches

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

# The detect stage checkpoints every 1000 windows (CheckpointPolicy default); the run must pass that
# mark well before it ends, so the kill lands after a checkpoint with windows still to come.
CHECKPOINT_EVERY = 1000
START_MS = 1.75e12


def window_id(record: Record) -> str:
    return decode_window(record.value).window_id


def checkpoint_position(settings: Settings, changelog: list[Record]) -> tuple[int, int]:
    """(generation, features offset) of the last complete checkpoint in the detector table's changelog."""
    table: dict[str, bytes | None] = {}
    for record in changelog:  # replay the changelog as Faust does on recovery: last write per key wins
        table[orjson.loads(record.key)] = record.value
    stored = table.get("detector/p0/manifest")
    assert stored is not None, "no detector checkpoint reached the changelog"
    manifest = Manifest.from_dict(orjson.loads(stored))
    chunks = [table.get(f"detector/p0/g{manifest.generation}/c{i}") for i in range(manifest.chunks)]
    engine = DetectorEngine(
        build_scorers(settings), EngineConfig.from_settings(settings), snapshot_key=load_snapshot_key(settings)
    )
    position = engine.restore(join_snapshot(manifest, chunks))
    return manifest.generation, int(position["offset"])


@pytest.mark.timeout(150)
def test_sigkilled_worker_is_replaced_and_the_detector_resumes_from_its_changelog(settings: Settings, tmp_path: Path):
    drill = fresh_topics(
        settings, partitions=1, key_window=20, mouse_window=4, group_session_timeout_s=6.0,
        state_dir=str(tmp_path / "state"),
    )  # fmt: skip
    # Capture times in the past: the engine caps its clock at wall time + skew, and the worker and the
    # reference run at different wall times.
    # Enough windows (about 2,100) that the kill after the first checkpoint (1,000) leaves half to resume.
    fleet = Fleet(24, seed=5, start_ms=START_MS, takeovers=[Takeover("agent-001", 60.0, "agent-005")])
    batches = [*fleet.history(240.0, sessions=2, gap_s=30.0), *(b for b, _ in fleet.iter_labelled(240.0))]
    # The reference is CPU work of its own; it runs while the worker does.
    pool = ThreadPoolExecutor(1)
    reference = pool.submit(in_process_reference, drill, batches)
    pool.shutdown(wait=False)
    app_id = f"drill-restart-{uuid.uuid4().hex[:6]}"
    changelog_topic = f"{app_id}-detector-checkpoints-changelog"

    first = start_worker(drill, tmp_path, "w1", app_id, "streams,detect")
    second = None
    try:
        producer = make_producer(drill.bootstrap)
        produce_batches(producer, drill.topic_raw, batches)
        assert producer.flush(30) == 0
        consume(
            drill.bootstrap, [changelog_topic], until=lambda r: any(b"manifest" in (x.key or b"") for x in r),
            timeout_s=90, abort=lambda: not first.alive(),
        )  # fmt: skip
        # Kill once the checkpointed windows are committed too (within a commit interval); until then a
        # restart would re-read them all from the start, which tells nothing about the checkpoint.
        wait_for(lambda: committed_offset(drill.bootstrap, app_id, drill.topic_features) > 0, 15,
                 "the worker to commit its checkpointed windows", every=0.2)  # fmt: skip
        assert first.alive(), first.log_tail()
        first.kill()
        risk_before = consume(drill.bootstrap, [drill.topic_risk], idle_s=1.5, timeout_s=30)
        changelog = consume(drill.bootstrap, [changelog_topic], idle_s=1.5, timeout_s=30)
        committed = committed_offset(drill.bootstrap, app_id, drill.topic_features)
        expected_windows, expected_risk = reference.result()
        generation, checkpoint_offset = checkpoint_position(drill, changelog)
        assert len(expected_windows) > CHECKPOINT_EVERY * 1.3, "the run is too short to kill after a checkpoint"
        assert len(risk_before) < len(expected_risk), "the worker finished before the kill: nothing left to resume"

        second = start_worker(drill, tmp_path, "w2", app_id, "streams,detect")
        risk = consume(
            drill.bootstrap, [drill.topic_risk],
            until=reads_all(set(expected_risk), lambda x: orjson.loads(x.value)["window_id"]),
            timeout_s=90, abort=lambda: not second.alive(),
        )  # fmt: skip
        time.sleep(1.0)  # let any replayed duplicates land, so the windows check sees them too
        features = consume(drill.bootstrap, [drill.topic_features], idle_s=1.5, timeout_s=30)
    finally:
        first.kill()
        if second is not None:
            second.stop()

    assert windows_by_id(features) == expected_windows, second.log_tail() if second else ""
    first_offset: dict[str, int] = {}
    for record in features:
        first_offset.setdefault(window_id(record), record.offset)

    # The rule that makes a restart invisible: offsets are committed only up to the checkpoint.
    assert committed == checkpoint_offset + 1, f"committed {committed}, checkpoint at {checkpoint_offset}"
    # Risk records past those the killed worker published came from the fresh worker. It resumed from
    # the committed offset, not from scratch: it scored only windows it could read from there.
    fresh = [orjson.loads(record.value) for record in risk[len(risk_before) :]]
    # At most one risk record per window read, so windows first seen before the commit may only be
    # scored as often as their replayed copies after it appear.
    copies = sum(1 for r in features if r.offset >= committed and first_offset[window_id(r)] < committed)
    old = sum(1 for doc in fresh if first_offset[doc["window_id"]] < committed)
    assert old <= copies, f"the fresh worker scored {old} windows from before its commit, only {copies} copies after"
    # The first record for a window first seen after the checkpoint is its genuine scoring; later
    # copies answer replayed duplicates, which the engine ignores.
    resumed: dict[str, dict] = {}
    for doc in fresh:
        if first_offset[doc["window_id"]] > checkpoint_offset:
            resumed.setdefault(doc["window_id"], doc)
    after_checkpoint = {w for w, off in first_offset.items() if off > checkpoint_offset and w in expected_risk}
    assert set(resumed) == after_checkpoint, "windows after the checkpoint the fresh worker did not score"
    scored_before = {orjson.loads(r.value)["window_id"] for r in risk_before}
    rescored = set(resumed) & scored_before
    differing = sorted(w for w, doc in resumed.items() if doc != expected_risk[w])
    enrolled = sum(1 for doc in resumed.values() if doc["enrolment"] == "enrolled")
    summary = (
        f"checkpoint generation {generation} at features offset {checkpoint_offset}, committed {committed}; "
        f"{len(resumed)} windows scored after restart ({len(rescored)} re-scored, {enrolled} of enrolled users)"
    )
    assert not differing, f"{summary}; differ from the uninterrupted engine: {differing[:5]}"
    assert enrolled > 0, f"{summary}: no enrolled user's risk was compared"
    assert checkpoint_offset >= CHECKPOINT_EVERY - 1, summary
