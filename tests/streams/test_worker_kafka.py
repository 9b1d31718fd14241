"""The stream stage on the real broker: Faust workers turn raw batches into the same windows as in-process code,
dead-letter hostile input while valid traffic flows, and survive a worker's SIGKILL without loss or duplicates."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import orjson
import pytest

from touchstone.config import Settings
from touchstone.contracts import KeyEvents, MouseEvents, MouseKind, RawBatch, decode_window, encode_raw
from touchstone.contracts.deadletter import decode_deadletter
from touchstone.kafka.io import Record, consume, make_producer, produce_batches, produce_values
from touchstone.procs import ManagedProcess, start_touchstone
from touchstone.streams.processor import RawProcessor

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
START = 1.75e12


def session_batches(session: int, n_batches: int, seed: int) -> list[RawBatch]:
    """A session of strokes and clicks plus typing, cut into 250 ms batches."""
    rng = np.random.default_rng(seed)
    batches, t, x, y, key_t = [], 0.0, 500.0, 400.0, 0.0
    for seq in range(n_batches):
        mt, kinds, xs, ys, buttons = [], [], [], [], []
        for _ in range(rng.integers(10, 30)):
            t += rng.uniform(6, 12)
            x += rng.normal(4, 3)
            y += rng.normal(-2, 3)
            mt.append(t), kinds.append(MouseKind.MOVE), xs.append(x), ys.append(y), buttons.append(0)
        if rng.random() < 0.3:  # a pause, then a click
            t += rng.uniform(400, 900)
            for kind in (MouseKind.PRESS, MouseKind.RELEASE):
                t += rng.uniform(60, 120)
                mt.append(t), kinds.append(kind), xs.append(x), ys.append(y), buttons.append(1)
        kt, down, keys = [], [], []
        for _ in range(rng.integers(2, 6)):
            key_t = max(key_t, t - 200) + rng.uniform(80, 250)
            hold = rng.uniform(60, 140)
            token = str(rng.choice(["L.home", "R.home", "space", "L.top"]))
            kt += [key_t, key_t + hold]
            down += [True, False]
            keys += [token, token]
        order = np.argsort(kt, kind="stable")
        mono = max(t, max(kt)) + 1.0
        batches.append(
            RawBatch(
                session_id=f"sess-{session}",
                user=f"user-{session % 5}",
                host=f"ws-{session}",
                seq=seq,
                collector="test",
                privacy="timing",
                session_start=START,
                wall=START + mono,
                mono=mono,
                keys=KeyEvents(
                    t=np.asarray(kt)[order], down=np.asarray(down)[order], key=tuple(np.asarray(keys)[order])
                ),
                mouse=MouseEvents(
                    t=np.asarray(mt),
                    kind=np.asarray(kinds, np.int8),
                    x=np.round(xs),
                    y=np.round(ys),
                    button=np.asarray(buttons, np.int16),
                ),
                end=seq == n_batches - 1,
            )
        )
        t = mono
    return batches


def reference_windows(settings: Settings, batches: list[RawBatch]) -> dict[str, dict]:
    processor = RawProcessor(settings, {})
    out = {}
    for b in batches:
        result = processor.process(encode_raw(b), now_ms=0.0)
        assert result.reason is None, result.detail
        for w in result.windows:
            out[w.window_id] = w.features
    return out


def by_window_id(records: list[Record]) -> dict[str, dict]:
    windows = [decode_window(r.value) for r in records]
    return {w.window_id: w.features for w in windows}


def start_worker(settings: Settings, tmp_path: Path, name: str, app_id: str) -> ManagedProcess:
    return start_touchstone(
        name, ["worker", "--stages", "streams", "--app-id", app_id, "--log-level", "warning"], settings, tmp_path
    )


def interleave(sessions: list[list[RawBatch]]) -> list[RawBatch]:
    out = []
    for i in range(max(len(s) for s in sessions)):
        out += [s[i] for s in sessions if i < len(s)]
    return out


@pytest.fixture
def stream_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.replace(group_session_timeout_s=6.0, state_dir=str(tmp_path / "state"))


def test_worker_windows_equal_in_process_windows_and_hostile_input_is_dead_lettered(stream_settings, tmp_path):
    settings = stream_settings
    batches = interleave([session_batches(s, 40, seed=s) for s in range(6)])
    expected = reference_windows(settings, batches)
    valid = [(b.session_id.encode(), encode_raw(b)) for b in batches]
    backwards = orjson.loads(encode_raw(batches[0]))
    backwards["session_id"] = "sess-hostile"
    backwards["mouse"]["t"] = list(reversed(backwards["mouse"]["t"]))
    huge = orjson.loads(encode_raw(batches[0]))
    huge["session_id"] = "sess-huge"
    huge["mouse"] = {k: v * 400 for k, v in huge["mouse"].items()}
    hostile = [
        (b"x", b"\x00\xffgarbage"),
        (b"y", orjson.dumps({**orjson.loads(encode_raw(batches[1])), "schema": "raw/9"})),
        (b"sess-huge", orjson.dumps(huge)),
        (b"sess-hostile", orjson.dumps(backwards)),
    ]
    mixed = valid[:50] + hostile + valid[50:]
    worker = start_worker(settings, tmp_path, "w1", "ts-test-roundtrip")
    try:
        producer = make_producer(settings.bootstrap)
        produce_values(producer, settings.topic_raw, mixed)
        producer.flush(30)
        got = consume(
            settings.bootstrap,
            [settings.topic_features],
            until=lambda r: len(by_window_id(r)) >= len(expected),
            timeout_s=120,
            abort=lambda: not worker.alive(),
        )
        letters = consume(settings.bootstrap, [settings.topic_dead_letter], until=lambda r: len(r) >= 4, timeout_s=30)
    finally:
        worker.stop()
    assert worker.popen.returncode in (0, -15), worker.log_tail()
    assert by_window_id(got) == expected
    reasons = sorted(decode_deadletter(r.value).reason for r in letters)
    assert reasons == ["non_monotonic", "not_json", "oversize", "unknown_version"]
    assert decode_deadletter(letters[0].value).value in {v for _, v in hostile}  # kept whole


def test_sigkill_of_one_worker_loses_and_duplicates_nothing(stream_settings, tmp_path):
    settings = stream_settings
    sessions = [session_batches(s, 60, seed=100 + s) for s in range(12)]
    batches = interleave(sessions)
    expected = reference_windows(settings, batches)
    app_id = "ts-test-kill"
    first = start_worker(settings, tmp_path, "w1", app_id)
    second = start_worker(settings, tmp_path, "w2", app_id)
    producer = make_producer(settings.bootstrap)
    try:
        half = len(batches) // 2
        produce_batches(producer, settings.topic_raw, batches[:half])
        producer.flush(30)
        consume(
            settings.bootstrap,
            [settings.topic_features],
            until=lambda r: len(r) >= len(expected) // 4,
            timeout_s=120,
            abort=lambda: not first.alive(),
        )
        first.kill()
        produce_batches(producer, settings.topic_raw, batches[half:])
        producer.flush(30)
        got = consume(
            settings.bootstrap,
            [settings.topic_features],
            until=lambda r: len(by_window_id(r)) >= len(expected),
            timeout_s=180,
            abort=lambda: not second.alive(),
        )
        time.sleep(1)
    finally:
        first.kill()
        second.stop()
    assert set(by_window_id(got)) == set(expected), second.log_tail()
    assert by_window_id(got) == expected
