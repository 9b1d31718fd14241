"""Benchmark: what the live collector costs a workstation.

Real input, not synthetic callbacks: runs the collector as a subprocess on a private Xvfb display
against a real Kafka broker (the one at ``--bootstrap`` if it answers, else a temporary one), drives
continuous mouse motion at ~125 Hz plus steady typing (~8 characters/s) with xdotool, and measures
the collector process alone: CPU as a percentage of one core (``/proc/<pid>/stat`` over the
measurement window), resident memory (``VmRSS``, sampled every 0.5 s) and the events its listener
queue dropped. Prints JSON.

    python -m touchstone.bench.collector_cost [--duration 30] [--entry lean|cli|in-process|all]
        [--capture-backend auto|xrecord|pynput|all] [--bootstrap HOST:PORT]

Entry points: ``lean`` (``python -m touchstone.collectors.collect``, argparse), ``cli`` (``touchstone
collect``, i.e. ``python -m touchstone.cli collect``, which execs the lean entry) and ``in-process``
(``touchstone collect --in-process``: the whole Typer CLI stays resident; for comparison only).
Without ``--entry``/``--capture-backend`` the default set runs: lean with XRecord, lean with pynput,
and the CLI with the default backend. Captured rates come from the collector's own ``/metrics``.

From the main benchmark: :func:`collector_cost` (``collector_cost(settings=None, *, quick=False)``).

Targets (issue 3): ≤ 2 % of one core, ≤ 60 MB RSS, zero events dropped.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from touchstone.config import Settings
from touchstone.kafka import LocalBroker, free_port, is_reachable

__all__ = ["measure_collector_cost", "collector_cost", "main"]

log = logging.getLogger(__name__)

TARGET_CPU_PERCENT = 2.0
TARGET_RSS_MB = 60.0
REPO = Path(__file__).resolve().parents[1]
ENTRIES = {
    "lean": ["-m", "touchstone.collectors.collect"],
    "cli": ["-m", "touchstone.cli", "collect"],
    "in-process": ["-m", "touchstone.cli", "collect", "--in-process"],
}
BACKENDS = ("auto", "xrecord", "pynput")
DEFAULT_RUNS = (("lean", "xrecord"), ("lean", "pynput"), ("cli", "auto"))
TEXT = "please confirm the delivery address and the order number for the refund "
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- environment ---------------------------------------------------------------------------------


def _ensure_tools() -> None:
    if not (shutil.which("Xvfb") and shutil.which("xdotool")):
        subprocess.run(["bash", str(REPO / "deploy" / "xvfb" / "ensure-xvfb.sh")], check=True)


@contextmanager
def _xvfb() -> Iterator[str]:
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            number = pipe.readline().strip()  # Xvfb writes its display number once it accepts clients
        if not number:
            raise RuntimeError("Xvfb did not start")
        yield f":{int(number)}"
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def _broker(bootstrap: str | None) -> Iterator[str]:
    if bootstrap and is_reachable(bootstrap):
        yield bootstrap
        return
    with tempfile.TemporaryDirectory(prefix="touchstone-bench-kafka-") as data_dir:
        broker = LocalBroker(port=free_port(), controller_port=free_port(), data_dir=Path(data_dir))
        broker.start(wait=True, timeout=120)
        try:
            yield broker.bootstrap
        finally:
            broker.stop()


# --- input drivers -------------------------------------------------------------------------------


def _drive_mouse(display: str, hz: float, stop: threading.Event) -> None:
    # Runs of chained mousemoves, about one second each; the pause between moves is corrected after
    # every run for xdotool's own per-command overhead. Every move changes x: each is a real motion.
    env = {**os.environ, "DISPLAY": display}
    period = 1.0 / hz
    pause = period * 0.9
    i = 0
    while not stop.is_set():
        args: list[str] = []
        n = max(1, int(hz))
        for _ in range(n):
            i += 1
            args += ["mousemove", str(200 + i % 800), str(300 + (i // 800) % 400), "sleep", f"{pause:.5f}"]
        started = time.monotonic()
        subprocess.run(["xdotool", *args], env=env, check=True)
        achieved = (time.monotonic() - started) / n
        pause = max(0.0, pause + (period - achieved))


def _drive_keys(display: str, delay_ms: int, stop: threading.Event) -> None:
    env = {**os.environ, "DISPLAY": display}
    while not stop.is_set():
        subprocess.run(["xdotool", "type", "--delay", str(delay_ms), TEXT], env=env, check=True)


# --- measurement ---------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def _rss_mb(pid: int) -> float:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else 0.0


def _start_collector(
    display: str, bootstrap: str, state_dir: str, entry: str, metrics_port: int, backend: str
) -> tuple[subprocess.Popen[str], list[str]]:
    env = {
        **os.environ,
        "DISPLAY": display,
        "TOUCHSTONE_STATE_DIR": state_dir,
        "TOUCHSTONE_TOPIC_RAW": "touchstone.bench.collector",
        "TOUCHSTONE_LOG_LEVEL": "INFO",
    }
    proc = subprocess.Popen(
        [sys.executable, *ENTRIES[entry], "--user", "bench-agent", "--bootstrap", bootstrap,
         "--metrics-port", str(metrics_port), "--capture-backend", backend],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "capturing keyboard and mouse" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(60):
        proc.kill()
        raise RuntimeError("collector did not start:\n" + "".join(lines[-20:]))
    return proc, lines


def _captured(metrics_port: int) -> dict[str, float]:
    """Events captured so far by type, from the collector's Prometheus endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.findall(r'touchstone_collector_events_captured_total\{type="(\w+)"\} ([0-9.e+]+)', text)
    return {kind: float(value) for kind, value in found}


def _summary_numbers(stdout: str) -> dict[str, int]:
    found = re.search(
        r"(\d+) events, (\d+) batches, (\d+) delivered, (\d+) left in the spool, (\d+) dropped by the listener", stdout
    )
    if not found:
        raise RuntimeError(f"unexpected collector summary: {stdout!r}")
    names = ("events_captured", "batches", "delivered", "spool_left", "listener_dropped")
    return dict(zip(names, map(int, found.groups()), strict=True))


def measure_collector_cost(
    *, entry: str = "lean", backend: str = "auto", duration_s: float = 30.0, warmup_s: float = 3.0,
    mouse_hz: float = 125.0, type_delay_ms: int = 240, bootstrap: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Run the benchmark and return its figures (see the module docstring)."""
    _ensure_tools()
    with ExitStack() as stack:
        display = stack.enter_context(_xvfb())
        bootstrap = stack.enter_context(_broker(bootstrap))
        state_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="touchstone-bench-state-"))
        metrics_port = free_port()
        proc, lines = _start_collector(display, bootstrap, state_dir, entry, metrics_port, backend)
        used = re.search(r"capturing keyboard and mouse via (\w+)", "".join(lines))
        stop = threading.Event()
        drivers = [
            threading.Thread(target=_drive_mouse, args=(display, mouse_hz, stop), daemon=True),
            threading.Thread(target=_drive_keys, args=(display, type_delay_ms, stop), daemon=True),
        ]
        for driver in drivers:
            driver.start()
        time.sleep(warmup_s)
        seen0 = _captured(metrics_port)
        cpu0, wall0 = _cpu_seconds(proc.pid), time.monotonic()
        rss: list[float] = []
        while time.monotonic() - wall0 < duration_s:
            rss.append(_rss_mb(proc.pid))
            time.sleep(0.5)
        cpu1, wall1 = _cpu_seconds(proc.pid), time.monotonic()
        seen1 = _captured(metrics_port)
        stop.set()
        for driver in drivers:
            driver.join(60)
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=60)
    window = wall1 - wall0
    cpu_percent = 100.0 * (cpu1 - cpu0) / window
    counts = _summary_numbers(stdout)
    rate = {kind: (seen1.get(kind, 0.0) - seen0.get(kind, 0.0)) / window for kind in seen1}
    return {
        "benchmark": "collector_cost",
        "entry": entry,
        "capture_backend": backend,
        "capture_backend_used": used.group(1) if used else "unknown",
        "input": "real X events: xdotool on Xvfb",
        "duration_s": round(window, 2),
        "mouse_moves_per_s": round(rate.get("mouse_move", 0.0), 1),
        "key_events_per_s": round(rate.get("key_press", 0.0) + rate.get("key_release", 0.0), 2),
        "cpu_percent_of_one_core": round(cpu_percent, 2),
        "rss_mb_max": round(max(rss), 1),
        "rss_mb_mean": round(sum(rss) / len(rss), 1),
        **counts,
        "targets": {"cpu_percent_of_one_core": TARGET_CPU_PERCENT, "rss_mb": TARGET_RSS_MB, "listener_dropped": 0},
        "meets_targets": cpu_percent <= TARGET_CPU_PERCENT
        and max(rss) <= TARGET_RSS_MB
        and counts["listener_dropped"] == 0,
    }


def _verdict(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"benchmark": "collector_cost", "runs": runs, "meets_targets": all(r["meets_targets"] for r in runs)}


def collector_cost(settings: Settings | None = None, *, quick: bool = False) -> dict[str, Any]:
    """The default runs (see the module docstring) for the main benchmark: 10 s each when ``quick``, else 30 s.

    Uses ``settings.bootstrap`` when that broker answers, else starts a temporary one per run.
    """
    bootstrap = settings.bootstrap if settings is not None else None
    duration = 10.0 if quick else 30.0
    runs = [
        measure_collector_cost(entry=entry, backend=backend, duration_s=duration, bootstrap=bootstrap)
        for entry, backend in DEFAULT_RUNS
    ]
    return _verdict(runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30.0, help="measurement window, seconds")
    parser.add_argument("--mouse-hz", type=float, default=125.0)
    parser.add_argument("--type-delay-ms", type=int, default=240, help="xdotool type --delay")
    parser.add_argument("--entry", choices=(*ENTRIES, "all"), help="default: the default set of runs")
    parser.add_argument("--capture-backend", choices=(*BACKENDS, "all"), help="default: the default set of runs")
    parser.add_argument("--bootstrap", default=os.environ.get("TOUCHSTONE_BOOTSTRAP"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.entry is None and args.capture_backend is None:
        plan = list(DEFAULT_RUNS)
    else:
        entries = list(ENTRIES) if args.entry == "all" else [args.entry or "lean"]
        backends = list(BACKENDS) if args.capture_backend == "all" else [args.capture_backend or "auto"]
        plan = [(entry, backend) for entry in entries for backend in backends]
    runs = [
        measure_collector_cost(
            entry=entry, backend=backend, duration_s=args.duration, mouse_hz=args.mouse_hz,
            type_delay_ms=args.type_delay_ms, bootstrap=args.bootstrap,
        )
        for entry, backend in plan
    ]  # fmt: skip
    report = _verdict(runs)
    print(json.dumps(report, indent=2))
    return 0 if report["meets_targets"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
