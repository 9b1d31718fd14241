"""Acceptance: `touchstone collect` captures real X input (xdotool under Xvfb) and publishes it faithfully.

The collector runs as a subprocess, ``python -m touchstone.cli collect`` (the ``touchstone collect``
console script; it execs the lean collector), with pynput or XRecord on a private Xvfb display; the
test drives the display with xdotool, stops the collector with SIGTERM, and reads the batches back
from Kafka. Skipped only when Xvfb or xdotool is missing and cannot be installed; an Xvfb that is
installed but will not start fails the test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from kafka_readback import read_batches
from xvfb_session import ensure_tools, xdotool, xdotool_major_version, xvfb_display

from touchstone.collectors.privacy import CLASS_TOKENS, key_class, normalise_key_name
from touchstone.contracts import Button, MouseKind, RawBatch

pytestmark = [pytest.mark.xvfb, pytest.mark.kafka]

PHRASE = "Quartz jinx, vow!"
TYPE_DELAY_MS = 120
CHAIN_KEYS = "asdf"
HOLD_S, FLIGHT_S = 0.15, 0.10
MOVE_GAP_S = 0.2
MOVES = [(100, 100), (300, 200), (500, 400)]
CLI = ("-m", "touchstone.cli", "collect")


@pytest.fixture(scope="module")
def display():
    reason = ensure_tools()
    if reason:
        pytest.skip(reason)
    with xvfb_display() as name:  # installed but broken is a failure, not a skip
        yield name


class CollectorProcess:
    def __init__(self, display: str, settings, tmp_path, privacy: str, extra: tuple[str, ...] = ()) -> None:
        env = {
            **os.environ,
            "DISPLAY": display,
            "TOUCHSTONE_TOPIC_RAW": settings.topic_raw,
            "TOUCHSTONE_TOPIC_RAW_FULL": settings.topic_raw_full,
            "TOUCHSTONE_STATE_DIR": str(tmp_path / "state"),
            "TOUCHSTONE_LOG_LEVEL": "INFO",
        }
        cmd = [sys.executable, *CLI, "--user", "agent-7", "--privacy", privacy, "--bootstrap", settings.bootstrap]
        self.proc = subprocess.Popen([*cmd, *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stderr: list[str] = []
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)
            if "capturing keyboard and mouse" in line:
                self._ready.set()

    def wait_ready(self, timeout: float = 30.0) -> None:
        if not self._ready.wait(timeout):
            self.proc.kill()
            pytest.fail("collector did not start capturing:\n" + "".join(self.stderr[-30:]))

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=60)
        self._reader.join(5)
        assert self.proc.returncode == 0, "".join(self.stderr[-30:])
        return out


def drive_input(display: str) -> dict[str, float]:
    """The scripted input; returns the wall-clock time (epoch ms) at which each part began."""
    marks = {}
    marks["type"] = time.time() * 1000
    xdotool(display, "type", "--delay", str(TYPE_DELAY_MS), PHRASE)
    time.sleep(0.5)
    marks["chain"] = time.time() * 1000
    chain: list[str] = []
    for key in CHAIN_KEYS:
        chain += ["keydown", key, "sleep", str(HOLD_S), "keyup", key, "sleep", str(FLIGHT_S)]
    xdotool(display, *chain)
    time.sleep(0.3)
    # One xdotool run per move: chained mousemoves reach the server late in xdotool 3.x, so each
    # move is timed on its own against the wall clock instead.
    for i, (x, y) in enumerate(MOVES):
        marks[f"move{i}"] = time.time() * 1000
        xdotool(display, "mousemove", str(x), str(y))
        time.sleep(MOVE_GAP_S)
    xdotool(display, "click", "1", "sleep", "0.1", "click", "3", "sleep", "0.1", "click", "4")
    time.sleep(0.5)
    return marks


def key_stream(batches: list[RawBatch]) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """All key events of the session: session ms, pressed, token, and capture wall time (epoch ms)."""
    t = np.concatenate([b.keys.t for b in batches])
    down = np.concatenate([b.keys.down for b in batches])
    tokens = [k for b in batches for k in b.keys.key]
    wall = np.concatenate([[b.capture_time(x) for x in b.keys.t] for b in batches])
    return t, down, tokens, wall


def json_values(value) -> set[str]:
    """Every string value in a decoded JSON document."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict | list):
        items = value.values() if isinstance(value, dict) else value
        return set().union(*(json_values(v) for v in items))
    return set()


def expected_tokens(text: str) -> list[str]:
    return [key_class(normalise_key_name(c)) for c in text]


def run_session(display, settings, tmp_path, privacy, extra=()) -> tuple[list[RawBatch], list[bytes], dict, str]:
    collector = CollectorProcess(display, settings, tmp_path, privacy, extra)
    collector.wait_ready()
    marks = drive_input(display)
    summary = collector.stop()
    backend = extra[extra.index("--capture-backend") + 1] if "--capture-backend" in extra else None
    if backend is not None:
        assert any(f"via {backend}" in line for line in collector.stderr), "collector used another backend"
    topic = settings.topic_raw_full if privacy == "full" else settings.topic_raw
    got = read_batches(settings.bootstrap, topic, until_end=1, timeout=30)
    return [b for _, b in got], [m.value() for m, _ in got], marks, summary


@pytest.mark.parametrize("backend", ["xrecord", "pynput"])
def test_timing_mode_captures_real_input_in_order_with_faithful_timings(display, settings, tmp_path, backend):
    batches, payloads, marks, summary = run_session(
        display, settings, tmp_path, "timing", extra=("--capture-backend", backend)
    )
    assert "0 dropped by the listener queue" in summary
    assert [b.seq for b in batches] == list(range(len(batches))) and batches[-1].end
    assert {(b.user, b.privacy) for b in batches} == {("agent-7", "timing")}
    assert batches[0].collector.startswith("touchstone-collector/")

    t, down, tokens, wall = key_stream(batches)
    typed = wall < marks["chain"]
    # --- the phrase: presses of the non-modifier keys, in order, each released ---
    presses = [(tt, k) for tt, d, k, m in zip(t, down, tokens, typed, strict=True) if d and m and k != "shift_l"]
    assert [k for _, k in presses] == expected_tokens(PHRASE)
    releases = [k for d, k, m in zip(down, tokens, typed, strict=True) if not d and m and k != "shift_l"]
    assert sorted(releases) == sorted(expected_tokens(PHRASE))
    assert tokens.count("shift_l") == 4  # Q and ! are typed with shift: press + release each
    # xdotool 3.x `type` spends half of --delay per character; later versions the whole of it.
    period = TYPE_DELAY_MS / 2 if xdotool_major_version(display) == 3 else TYPE_DELAY_MS
    intervals = np.diff([tt for tt, _ in presses])
    assert abs(float(np.median(intervals)) - period) < 8, intervals
    assert np.all(np.abs(intervals - period) < 25), intervals

    # --- the keydown/keyup chain: holds and flights as scripted ---
    chain = ~typed
    ct, cd = t[chain], down[chain]
    assert [k for k, c in zip(tokens, chain, strict=True) if c] == [
        tok for key in expected_tokens(CHAIN_KEYS) for tok in (key, key)
    ]
    assert cd.tolist() == [True, False] * len(CHAIN_KEYS)
    holds = ct[1::2] - ct[0::2]
    flights = ct[2::2] - ct[1:-1:2]
    np.testing.assert_allclose(holds, HOLD_S * 1000, atol=25)
    np.testing.assert_allclose(flights, FLIGHT_S * 1000, atol=25)
    # the wall-clock anchor places the chain right after the moment it was started
    assert 0 <= wall[chain][0] - marks["chain"] < 1000

    # --- mouse: moves, then left and right clicks, then a wheel step, in order ---
    mt = np.concatenate([b.mouse.t for b in batches])
    kind = np.concatenate([b.mouse.kind for b in batches]).tolist()
    xy = list(
        zip(np.concatenate([b.mouse.x for b in batches]), np.concatenate([b.mouse.y for b in batches]), strict=True)
    )
    button = np.concatenate([b.mouse.button for b in batches]).tolist()
    mwall = np.concatenate([[b.capture_time(x) for x in b.mouse.t] for b in batches])
    moves = [i for i, k in enumerate(kind) if k == MouseKind.MOVE]
    assert [xy[i] for i in moves] == MOVES
    # each move is captured just after its xdotool run began (process start + X round trip)
    lags = [mwall[i] - marks[f"move{n}"] for n, i in enumerate(moves)]
    assert all(0 <= lag < 150 for lag in lags), lags
    assert np.all(np.diff(mt[moves]) > MOVE_GAP_S * 1000 - 50)
    rest = [(kind[i], button[i], xy[i]) for i in range(len(kind)) if kind[i] != MouseKind.MOVE]
    last = MOVES[-1]
    assert rest == [
        (MouseKind.PRESS, Button.LEFT, last), (MouseKind.RELEASE, Button.LEFT, last),
        (MouseKind.PRESS, Button.RIGHT, last), (MouseKind.RELEASE, Button.RIGHT, last),
        (MouseKind.SCROLL, 1, last),
    ]  # fmt: skip
    assert moves == sorted(moves) and max(moves) < kind.index(MouseKind.PRESS)

    # --- privacy: nothing typed leaves the machine ---
    assert set(tokens) <= CLASS_TOKENS
    assert len(payloads) == len(batches)
    blob = b"".join(payloads)
    for word in ("quartz", "jinx", "vow", CHAIN_KEYS):
        assert word.encode() not in blob.lower()
    # no string value anywhere in a payload is a typed character or its key name, in any case
    # (class tokens such as "space" name a class of keys, not a character: they are the design)
    values = set().union(*(json_values(json.loads(payload)) for payload in payloads))
    typed = set(PHRASE + CHAIN_KEYS) | set(PHRASE.lower()) | {normalise_key_name(c) for c in PHRASE + CHAIN_KEYS}
    assert not values & (typed - CLASS_TOKENS), values & typed


def test_full_mode_needs_the_flag_and_goes_to_the_restricted_topic(display, settings, tmp_path):
    refused = subprocess.run(
        [sys.executable, *CLI, "--privacy", "full", "--bootstrap", settings.bootstrap, "--duration", "1"],
        env={**os.environ, "DISPLAY": display, "TOUCHSTONE_STATE_DIR": str(tmp_path / "refused")},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == 2 and "i-have-authorisation-for-full-capture" in refused.stderr

    batches, _, marks, _ = run_session(
        display, settings, tmp_path, "full", extra=("--i-have-authorisation-for-full-capture",)
    )
    assert {b.privacy for b in batches} == {"full"}
    _, down, tokens, wall = key_stream(batches)
    typed = [k for d, k, w in zip(down, tokens, wall, strict=True) if d and w < marks["chain"] and k != "shift_l"]
    assert typed == [normalise_key_name(c) for c in PHRASE]
    # and nothing went to the ordinary raw topic
    leaked = read_batches(settings.bootstrap, settings.topic_raw, until_end=1, timeout=3)
    assert leaked == []
