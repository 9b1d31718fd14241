"""``make bench``: speed figures from one run on the real broker, printed as one JSON report.

Every figure in a report comes from the same run on the same machine, so ratios
(pipeline / ceiling, 2 workers / 1 worker) compare like with like on a noisy host.

- ``in_process``: the feature and scoring code alone (no Kafka): the ceiling of the work.
- ``bare_consume``: a confluent-kafka consume + orjson decode loop on the same raw topic:
  the ceiling of the transport.
- ``streams_stage``: raw batches → feature windows through one worker running only the streams
  stage (the stream workers' own capacity), for the configured collector batch interval and for
  0.25 s and 1 s batches of the same behaviour: a worker pays per message, so events per message
  set its events per second.
- ``pipeline``: raw batches → Faust workers (streams + detect) → risk updates and alerts,
  for 1 and 2 worker processes; events/s from first produce to last window scored.
- ``latency``: event-to-decision latency at a steady real-time load: capture time of a
  window's last event → the detector's risk update for it, for keystroke windows closed by
  count (decided on that event); ``latency_by_window_kind`` gives every kind of window,
  including those that by nature wait for a pause to end.
- ``realtime_agents``: the largest simulated fleet one worker keeps up with in real time
  with that p99 latency under 1 s (stepped loads).
- ``memory``: stream state per open session and detector state per user profile.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
import uuid
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from rich.console import Console

from touchstone.config import Settings
from touchstone.contracts import decode_window, encode_raw
from touchstone.detectors.engine import DetectorEngine, EngineConfig
from touchstone.detectors.factory import build_scorers
from touchstone.kafka import ensure_topics
from touchstone.kafka.ephemeral import broker_for_run
from touchstone.kafka.io import consume, make_producer, produce_values
from touchstone.procs import ManagedProcess, start_touchstone
from touchstone.streams.processor import RawProcessor

__all__ = ["run_bench"]

log = logging.getLogger(__name__)
console = Console(stderr=True)

Encoded = list[tuple[bytes, bytes, float, int]]  # key, value, wall (ms), events


def _workload(agents: int, duration_s: float, sessions: int, seed: int, interval_s: float) -> Encoded:
    """Simulated batches cut as a collector with batch interval ``interval_s`` cuts them."""
    from touchstone.collectors.batcher import BatchPolicy
    from touchstone.collectors.simulate import Fleet

    fleet = Fleet(agents, seed=seed, start_ms=time.time() * 1000.0, policy=BatchPolicy(max_interval_s=interval_s))
    return [
        (b.session_id.encode(), encode_raw(b), b.wall, b.n_events)
        for b in fleet.history(duration_s, sessions=sessions, gap_s=30.0)
    ]


def _events(work: Encoded) -> int:
    return sum(n for *_, n in work)


def _in_process(settings: Settings, work: Encoded) -> dict[str, Any]:
    """Features alone, then features + scoring, on the same encoded batches."""
    # Write-behind, as in the worker; the state is flushed (and its size sampled) now and then.
    processor = RawProcessor(settings, {}, write_behind=True)
    started = time.perf_counter()
    windows = []
    state_sizes: list[int] = []
    sampling_s = 0.0
    for i, (_, value, _, _) in enumerate(work):
        windows.extend(processor.process(value, now_ms=0.0).windows)
        if i % 5000 == 4999:
            sample_start = time.perf_counter()
            processor.flush()
            state_sizes.extend(len(v) for v in processor.states.values())
            sampling_s += time.perf_counter() - sample_start
    features_s = time.perf_counter() - started - sampling_s

    engine = DetectorEngine(build_scorers(settings), EngineConfig.from_settings(settings), snapshot_key=b"b" * 32)
    started = time.perf_counter()
    risk_updates = 0
    for window in windows:
        engine.process(window, now_ms=window.end)
        # What the worker publishes per window (none once a session has closed): the count to wait for.
        risk_updates += engine.view(window.session_id) is not None
    scoring_s = time.perf_counter() - started
    checkpoint = engine.checkpoint()
    users = max(1, len(engine.users()))
    events = _events(work)
    return {
        "events": events,
        "batches": len(work),
        "windows": len(windows),
        "risk_updates": risk_updates,
        "features_events_per_s": round(events / features_s),
        "scoring_windows_per_s": round(len(windows) / scoring_s),
        "features_and_scoring_events_per_s": round(events / (features_s + scoring_s)),
        "_state_sizes": state_sizes,
        "_profile_bytes": len(checkpoint) / users,
        "_users": users,
    }


def _bare_consume(settings: Settings, work: Encoded) -> dict[str, Any]:
    """The transport ceiling: one confluent-kafka consumer reading the raw topic and orjson-decoding
    every batch, timed from its first message to its last (partitions assigned directly: no group
    join in the figure)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap,
            "group.id": f"bench-bare-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    try:
        partitions = consumer.list_topics(settings.topic_raw, timeout=30).topics[settings.topic_raw].partitions
        consumer.assign([TopicPartition(settings.topic_raw, p, OFFSET_BEGINNING) for p in partitions])
        messages = events = 0
        started: float | None = None
        deadline = time.monotonic() + 300
        while messages < len(work) and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                if msg.error() is not None:
                    continue
                if started is None:
                    started = time.perf_counter()
                doc = orjson.loads(msg.value())
                events += len(doc.get("mouse", {}).get("t", ())) + len(doc.get("keys", {}).get("t", ()))
                messages += 1
        elapsed = time.perf_counter() - (started if started is not None else time.perf_counter())
    finally:
        consumer.close()
    return {
        "events": events,
        "messages": messages,
        "seconds": round(elapsed, 3),
        "events_per_s": round(events / max(elapsed, 1e-9)),
    }


def _fresh_topics(settings: Settings, tag: str) -> Settings:
    names = {
        f.name: f"{getattr(settings, f.name)}.bench-{tag}" for f in fields(Settings) if f.name.startswith("topic_")
    }
    fresh = settings.replace(**names)
    ensure_topics(fresh)
    return fresh


def _start_workers(
    settings: Settings, count: int, app_id: str, log_dir: Path, stages: str = "streams,detect"
) -> list[ManagedProcess]:
    args = ["worker", "--app-id", app_id, "--stages", stages, "--log-level", "warning"]
    return [start_touchstone(f"{app_id}-{i}", args, settings, log_dir) for i in range(count)]


def _drain(
    settings: Settings, topic: str, target: int, procs: list[ManagedProcess], timeout_s: float
) -> tuple[int, float] | None:
    """Read ``topic`` until ``target`` messages (or 20 s without news): (count, newest record's epoch ms).

    None if a worker died. The newest record's own timestamp, not the time the reader gave up,
    marks when the pipeline finished.
    """
    records = consume(
        settings.bootstrap,
        [topic],
        until=lambda r: len(r) >= target,
        timeout_s=timeout_s,
        idle_s=20.0,
        abort=lambda: not all(p.alive() for p in procs),
    )
    if not all(p.alive() for p in procs):
        return None
    return len(records), max((r.timestamp_ms for r in records), default=0)


def _timed_load(
    run: Settings,
    procs: list[ManagedProcess],
    topic: str,
    warmup: tuple[Encoded, int],
    work: tuple[Encoded, int],
    timeout_s: float,
) -> dict[str, Any]:
    """Warm the workers up, then publish ``work`` and read ``topic`` until its expected count.

    ``warmup`` and ``work`` are (batches, records expected on ``topic``). Returns the count seen and
    the seconds from the first produce to the newest record's own timestamp, or the error.
    """
    (warm_batches, warm_expected), (batches, expected) = warmup, work
    producer = make_producer(run.bootstrap)
    produce_values(producer, run.topic_raw, ((k, v) for k, v, _, _ in warm_batches))
    producer.flush(30)
    if _drain(run, topic, warm_expected, procs, 180) is None:
        return {"error": "a worker died during warm-up", "log": procs[0].log_tail(20)}
    started_ms = time.time() * 1000.0
    produce_values(producer, run.topic_raw, ((k, v) for k, v, _, _ in batches))
    producer.flush(60)
    produced_s = time.time() - started_ms / 1000.0
    drained = _drain(run, topic, warm_expected + expected, procs, timeout_s)
    if drained is None:
        return {"error": "a worker died", "log": "\n".join(p.log_tail(20) for p in procs)}
    count, last_ms = drained
    return {
        "seen": count - warm_expected,
        "complete": count >= warm_expected + expected,
        "seconds": max(last_ms - started_ms, 1.0) / 1000.0,
        "produce_seconds": produced_s,
    }


def _pipeline(settings: Settings, work: Encoded, decisions: int, workers: int, log_dir: Path) -> dict[str, Any]:
    tag = f"p{workers}-{uuid.uuid4().hex[:6]}"
    run = _fresh_topics(settings, tag)
    procs = _start_workers(run, workers, f"bench-{tag}", log_dir)
    try:
        warmup = _workload(4, 20.0, 1, seed=99, interval_s=settings.batch_interval_s)
        load = (warmup, _in_process(run, warmup)["risk_updates"])
        timed = _timed_load(run, procs, run.topic_risk, load, (work, decisions), 900)
        if "error" in timed:
            return timed
        elapsed = timed["seconds"]
        events = _events(work)
        return {
            "workers": workers,
            "events": events,
            "risk_updates_expected": decisions,
            "risk_updates_seen": timed["seen"],
            "complete": timed["complete"],
            "seconds": round(elapsed, 3),
            "produce_seconds": round(timed["produce_seconds"], 3),
            "events_per_s": round(events / elapsed),
            "windows_per_s": round(decisions / elapsed),
        }
    finally:
        for proc in procs:
            proc.stop()


def _streams_stage(settings: Settings, agents: int, duration_s: float, interval_s: float, log_dir: Path) -> dict:
    """Raw batches → feature windows through one worker running only the streams stage.

    Same fleet, same behaviour; only the collector's batch interval differs between calls, so
    the figures show what a worker's capacity owes to events per message. Timed from the first
    produce to the newest feature window's record timestamp.
    """
    work = _workload(agents, duration_s, 2, seed=1, interval_s=interval_s)
    windows = _window_count(settings, work)
    tag = f"s{int(interval_s * 1000)}-{uuid.uuid4().hex[:6]}"
    run = _fresh_topics(settings, tag)
    procs = _start_workers(run, 1, f"bench-{tag}", log_dir, stages="streams")
    try:
        warmup = _workload(4, 20.0, 1, seed=99, interval_s=interval_s)
        load = (warmup, _window_count(settings, warmup))
        timed = _timed_load(run, procs, run.topic_features, load, (work, windows), 600)
        if "error" in timed:
            return timed
        elapsed = timed["seconds"]
        events = _events(work)
        return {
            "batch_interval_s": interval_s,
            "events": events,
            "messages": len(work),
            "events_per_message": round(events / len(work), 1),
            "windows_expected": windows,
            "windows_seen": timed["seen"],
            "complete": timed["complete"],
            "seconds": round(elapsed, 3),
            "events_per_s": round(events / elapsed),
            "messages_per_s": round(len(work) / elapsed),
        }
    finally:
        for proc in procs:
            proc.stop()


def _window_count(settings: Settings, work: Encoded) -> int:
    processor = RawProcessor(settings, {}, write_behind=True)
    return sum(len(processor.process(value, now_ms=0.0).windows) for _, value, _, _ in work)


def _paced(work: Encoded, settings: Settings) -> float:
    """Publish each batch once the wall clock reaches its ``wall`` time, as a live collector would.

    ``work`` must already lie in real time (see :func:`_shift`). Returns the worst lag behind
    schedule in seconds: above a second, the load generator, not the pipeline, is the bottleneck.
    """
    producer = make_producer(settings.bootstrap, **{"linger.ms": 2})
    worst = 0.0
    for key, value, wall, _ in work:
        delay = (wall - time.time() * 1000.0) / 1000.0
        if delay > 0:
            time.sleep(delay)
        else:
            worst = max(worst, -delay)
        produce_values(producer, settings.topic_raw, [(key, value)])
    producer.flush(60)
    return worst


def _live_workload(agents: int, duration_s: float, seed: int, interval_s: float) -> Encoded:
    from touchstone.collectors.batcher import BatchPolicy
    from touchstone.collectors.simulate import Fleet

    fleet = Fleet(
        agents,
        seed=seed,
        start_ms=time.time() * 1000.0 + 5000.0,
        stagger_s=1.0,
        policy=BatchPolicy(max_interval_s=interval_s),
    )
    return [(b.session_id.encode(), encode_raw(b), b.wall, b.n_events) for b in fleet.iter_batches(duration_s)]


def _shift(work: Encoded, start_ms: float) -> Encoded:
    """Re-anchor pre-generated batches so their capture times start at ``start_ms`` (real time)."""
    offset = start_ms - work[0][2]
    shifted = []
    for key, value, wall, n in work:
        doc = orjson.loads(value)
        doc["session_start"] += offset
        doc["wall"] += offset
        shifted.append((key, orjson.dumps(doc), wall + offset, n))
    return shifted


def _latencies(settings: Settings, since_ms: float) -> dict[str, list[float]]:
    """Event-to-decision latency (ms) of each window scored since ``since_ms``, grouped by how it closed.

    Latency is the risk update's record time minus the capture time of the window's last event.
    A keystroke window closed by count is decided on that very event, so its latency is the
    pipeline's own; windows closed by a pause (and mouse windows, whose last action ends only
    when the pointer rests) also wait for the behaviour itself, which no pipeline can shorten.
    """
    closed_by = {
        doc.window_id: f"{doc.modality}/{doc.closed_by}"
        for doc in (
            decode_window(r.value)
            for r in consume(settings.bootstrap, [settings.topic_features], idle_s=3.0, timeout_s=120)
        )
    }
    out: dict[str, list[float]] = {}
    for record in consume(settings.bootstrap, [settings.topic_risk], idle_s=3.0, timeout_s=120):
        doc = orjson.loads(record.value)
        if doc["event_time"] >= since_ms:
            kind = closed_by.get(doc["window_id"], "unknown")
            out.setdefault(kind, []).append(record.timestamp_ms - doc["event_time"])
    return out


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    arr = np.asarray(values)
    return {
        "n": int(arr.size),
        "p50_ms": round(float(np.percentile(arr, 50)), 1),
        "p99_ms": round(float(np.percentile(arr, 99)), 1),
        "max_ms": round(float(arr.max()), 1),
    }


def _realtime_step(settings: Settings, agents: int, duration_s: float, log_dir: Path, enrol: Encoded) -> dict:
    tag = f"rt{agents}-{uuid.uuid4().hex[:6]}"
    run = _fresh_topics(settings, tag)
    procs = _start_workers(run, 1, f"bench-{tag}", log_dir)
    try:
        console.print(f"[dim]  {agents} agents: generating {duration_s:.0f} s of behaviour …[/]")
        work = _live_workload(agents, duration_s, seed=agents, interval_s=settings.batch_interval_s)
        producer = make_producer(run.bootstrap)
        produce_values(producer, run.topic_raw, ((k, v) for k, v, _, _ in enrol))
        producer.flush(60)
        enrol_decisions = _in_process(run, enrol)["risk_updates"]
        if _drain(run, run.topic_risk, enrol_decisions, procs, 300) is None:
            return {"agents": agents, "error": "worker died during enrolment"}
        start_ms = time.time() * 1000.0 + 500.0
        work = _shift(work, start_ms)
        behind_s = _paced(work, run)
        by_kind = _latencies(run, start_ms)
        lat = _percentiles(by_kind.get("keys/count", []))
        every = [v for values in by_kind.values() for v in values]
        events = _events(work)
        return {
            "agents": agents,
            "seconds": duration_s,
            "events": events,
            "events_per_s": round(events / duration_s),
            "publisher_behind_s": round(behind_s, 3),
            "latency": lat,
            "latency_all_windows": _percentiles(every),
            "latency_by_window_kind": {kind: _percentiles(values) for kind, values in sorted(by_kind.items())},
            "sustained": bool(lat.get("n")) and lat.get("p99_ms", 1e9) < 1000.0 and behind_s < 1.0,
        }
    finally:
        for proc in procs:
            proc.stop()


def _collector_cost(settings: Settings) -> dict[str, Any]:
    """Collector CPU and memory under real X input (Xvfb + xdotool); the reason instead when impossible."""
    console.print("  collector cost under Xvfb (3 × 30 s) …")
    try:
        from touchstone.bench.collector_cost import collector_cost

        return collector_cost(settings)
    except Exception as exc:  # the rest of the report stands without it
        log.warning("collector benchmark failed: %s", exc)
        return {"error": f"{type(exc).__name__}: {exc}"}


def run_bench(settings: Settings, *, quick: bool = False) -> dict[str, Any]:
    agents, duration = (20, 120.0) if quick else (60, 300.0)
    steps = [50, 200] if quick else [250, 500, 1000, 1500, 2000, 3000]
    live_s = 15.0 if quick else 30.0
    log_dir = Path(settings.state_dir) / "bench" / uuid.uuid4().hex[:6]
    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "quick": quick}}
    with broker_for_run(settings.replace(state_dir=str(log_dir)), log_dir, say=console.print) as base:
        console.print(f"[bold]bench[/]: workload {agents} agents × {duration:.0f} s × 2 sessions")
        work = _workload(agents, duration, 2, seed=1, interval_s=base.batch_interval_s)
        inproc = _in_process(base, work)
        sizes = inproc.pop("_state_sizes")
        report["memory"] = {
            "session_state_bytes_mean": round(statistics.fmean(sizes)) if sizes else 0,
            "session_state_bytes_max": max(sizes, default=0),
            "user_profile_bytes": round(inproc.pop("_profile_bytes")),
            "users": inproc.pop("_users"),
        }
        report["in_process"] = inproc
        console.print(f"  in-process: {inproc}")

        raw = _fresh_topics(base, "bare-" + uuid.uuid4().hex[:6])
        producer = make_producer(raw.bootstrap)
        produce_values(producer, raw.topic_raw, ((k, v) for k, v, _, _ in work))
        producer.flush(60)
        report["bare_consume"] = _bare_consume(raw, work)
        console.print(f"  bare consume + decode: {report['bare_consume']}")

        # The streams stage alone (raw → feature windows), at the configured batch interval and on
        # either side of it, one after the other in this run.
        intervals = sorted({0.25, base.batch_interval_s, 1.0})
        streams_stage = {}
        for interval in intervals:
            console.print(f"  streams stage, 1 worker, {interval:g} s batches …")
            streams_stage[f"{interval:g}"] = _streams_stage(base, agents, duration, interval, log_dir)
            console.print(f"    {streams_stage[f'{interval:g}']}")
        report["streams_stage"] = {
            "default_batch_interval_s": base.batch_interval_s,
            "by_batch_interval_s": streams_stage,
        }

        pipeline = {}
        for workers in (1, 2):
            console.print(f"  pipeline with {workers} worker(s) …")
            pipeline[str(workers)] = _pipeline(base, work, inproc["risk_updates"], workers, log_dir)
            console.print(f"    {pipeline[str(workers)]}")
        report["pipeline"] = pipeline
        one = pipeline["1"].get("events_per_s")
        two = pipeline["2"].get("events_per_s")
        bare = report["bare_consume"]["events_per_s"]
        if not quick:
            report["collector"] = _collector_cost(base)
        report["ratios"] = {
            "pipeline_1_worker_vs_bare_consume": round(one / bare, 3) if one else None,
            "pipeline_1_worker_vs_in_process": round(one / inproc["features_and_scoring_events_per_s"], 3)
            if one
            else None,
            "scaling_2_vs_1_workers": round(two / one, 3) if one and two else None,
        }

        enrol = _workload(min(steps), 120.0, 1, seed=5, interval_s=base.batch_interval_s)
        realtime = []
        for count in steps:
            console.print(f"  real time: {count} agents for {live_s:.0f} s …")
            step = _realtime_step(base, count, live_s, log_dir, enrol)
            realtime.append(step)
            console.print(f"    {step}")
            if not step.get("sustained"):
                break
        report["realtime"] = realtime
        sustained = [s["agents"] for s in realtime if s.get("sustained")]
        report["realtime_agents_per_worker"] = max(sustained, default=0)
        first = next((s for s in realtime if s.get("sustained")), realtime[0] if realtime else None)
        report["latency"] = first["latency"] if first else {}
    report["logs"] = str(log_dir)
    return report
