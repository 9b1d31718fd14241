"""Fault drill: a sustained stream of poison, one poison message per valid batch, into a running worker.

Every poison message must end in the dead-letter topic with its reason and its bytes, every valid
window must still come out exactly as in process, and valid traffic must keep a fair share of the
clean rate. Both runs go through the same warmed-up worker, so they differ only in the poison.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest
from drill_kit import fresh_topics, has_windows, reference_windows, start_worker, windows_by_id

from touchstone.collectors.simulate import Fleet
from touchstone.config import Settings
from touchstone.contracts import RawBatch, decode_window, encode_raw
from touchstone.contracts.deadletter import decode_deadletter
from touchstone.kafka.io import consume, make_producer, produce_batches, produce_values
from touchstone.procs import ManagedProcess

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

MAX_MESSAGE_BYTES = 4096  # a simulated batch is ~1 kB; a low limit keeps the oversize poison cheap
MIN_SHARE = 0.3


def poison_for(batch: RawBatch, index: int) -> tuple[bytes, bytes, str] | None:
    """(key, value, expected dead-letter reason) of the index-th poison message, shaped after ``batch``."""
    doc = orjson.loads(encode_raw(batch))
    kind = index % 5
    if kind == 0:
        return b"noise", b"\x00\xff\xfe garbage %d" % index, "not_json"
    if kind == 1:
        return batch.session_id.encode(), orjson.dumps({**doc, "schema": "raw/9", "n": index}), "unknown_version"
    if kind == 2:
        padded = orjson.dumps({**doc, "pad": "x" * MAX_MESSAGE_BYTES, "n": index})
        return batch.session_id.encode(), padded, "oversize"
    if kind == 3:
        times = doc.get("mouse", {}).get("t", [])
        if len(set(times)) < 2:
            return None  # nothing to turn backwards
        doc["mouse"]["t"] = sorted(times, reverse=True)
        return batch.session_id.encode(), orjson.dumps({**doc, "n": index}), "non_monotonic"
    if batch.end:
        return None  # an ended session may be forgotten; a claim on it would open a new one
    # The same session claimed by someone else, after its real owner opened it.
    forged = {**doc, "user": f"intruder-{index}", "seq": batch.seq}
    return batch.session_id.encode(), orjson.dumps(forged), "identity_mismatch"


def mixed_stream(batches: list[RawBatch]) -> tuple[list[tuple[bytes, bytes]], Counter]:
    """Valid batches, each followed by a poison message; and the (reason, value) pairs expected back."""
    items: list[tuple[bytes, bytes]] = []
    expected: Counter = Counter()
    index = 0
    for batch in batches:
        items.append((batch.session_id.encode(), encode_raw(batch)))
        for _ in range(5):  # the next kind that applies to this batch
            poison = poison_for(batch, index)
            index += 1
            if poison is not None:
                key, value, reason = poison
                items.append((key, value))
                expected[(reason, value)] += 1
                break
    return items, expected


def run_rate(
    drill: Settings, worker: ManagedProcess, items: list[tuple[bytes, bytes]], expected: dict[str, dict], valid: int
) -> tuple[float, dict[str, dict]]:
    """Produce ``items``, wait for the windows in ``expected``; valid batches per second and the windows seen."""
    producer = make_producer(drill.bootstrap)
    started = time.time()
    produce_values(producer, drill.topic_raw, items)
    assert producer.flush(30) == 0
    wanted = set(expected)
    records = consume(
        drill.bootstrap, [drill.topic_features],
        until=has_windows(wanted), timeout_s=60, abort=lambda: not worker.alive(),
    )  # fmt: skip
    mine = [r for r in records if decode_window(r.value).window_id in wanted]
    assert mine, worker.log_tail()
    finished = max(r.timestamp_ms for r in mine) / 1000.0  # when the worker sent the last window
    return valid / max(finished - started, 1e-3), windows_by_id(mine)


@pytest.mark.timeout(150)
def test_poison_is_dead_lettered_while_valid_windows_flow_at_a_fair_rate(settings: Settings, tmp_path: Path):
    drill = fresh_topics(
        settings, max_message_bytes=MAX_MESSAGE_BYTES, group_session_timeout_s=6.0, state_dir=str(tmp_path / "state")
    )
    warmup, clean, poisoned = (
        [*Fleet(n, seed=seed, start_ms=1.75e12).iter_batches(seconds)]
        for n, seed, seconds in ((2, 1, 20.0), (12, 2, 150.0), (12, 3, 150.0))
    )
    worker = start_worker(drill, tmp_path, "w1", f"drill-poison-{uuid.uuid4().hex[:6]}", "streams")
    try:
        # Warm up: the worker has joined its group and owns every partition before anything is timed.
        producer = make_producer(drill.bootstrap)
        produce_batches(producer, drill.topic_raw, warmup)
        assert producer.flush(30) == 0
        warm = set(reference_windows(drill, warmup))
        consume(
            drill.bootstrap, [drill.topic_features], until=has_windows(warm), timeout_s=60,
            abort=lambda: not worker.alive(),
        )  # fmt: skip

        clean_expected = reference_windows(drill, clean)
        clean_rate, clean_got = run_rate(
            drill, worker, [(b.session_id.encode(), encode_raw(b)) for b in clean], clean_expected, len(clean)
        )
        items, poison_expected = mixed_stream(poisoned)
        poisoned_expected = reference_windows(drill, poisoned)
        poisoned_rate, poisoned_got = run_rate(drill, worker, items, poisoned_expected, len(poisoned))
        total_poison = sum(poison_expected.values())
        letters = consume(
            drill.bootstrap, [drill.topic_dead_letter], until=lambda r: len(r) >= total_poison, timeout_s=30
        )
        time.sleep(0.5)
        assert worker.alive(), worker.log_tail()
    finally:
        worker.stop()

    assert clean_got == clean_expected
    assert poisoned_got == poisoned_expected, "valid windows changed or went missing among the poison"
    got_letters = Counter((d.reason, d.value) for d in map(decode_deadletter, (r.value for r in letters)))
    assert got_letters == poison_expected, (
        f"dead letters by reason: got {Counter(r for r, _ in got_letters.elements())}, "
        f"expected {Counter(r for r, _ in poison_expected.elements())}"
    )
    share = poisoned_rate / clean_rate
    print(f"valid batches/s: clean {clean_rate:.0f}, with {total_poison} poison {poisoned_rate:.0f} ({share:.2f}x)")
    assert share >= MIN_SHARE, (
        f"valid batches/s with 1:1 poison {poisoned_rate:.0f} vs clean {clean_rate:.0f}: {share:.2f}x < {MIN_SHARE}x"
    )
