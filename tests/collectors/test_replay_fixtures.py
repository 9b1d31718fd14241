"""`touchstone replay balabit|aalto --data DIR` on synthetic files in each dataset's layout.

The expected events are read from the fixture files here, independently of the replay parsers, and
compared with what the real broker returns: every event's time must come back exactly (the fixtures
carry millisecond times, within the raw contract's microsecond resolution), and the wall-clock
anchor must map each event back to its source timestamp. The replay runs through the CLI, at
``--fast``, ``--speed 1`` (recorded pace) and ``--speed 4``.

The files are written at test time by ``dataset_layouts`` (seeded, made up; no dataset file is kept
in the repository): two Balabit session files under ``training_files/userN/``, two Aalto
participant files and one short participant file for the pacing checks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from dataset_layouts import write_aalto, write_balabit
from kafka_readback import read_batches

from touchstone.collectors.privacy import CLASS_TOKENS, token_base
from touchstone.collectors.replay_balabit import BALABIT_SESSION_START_MS
from touchstone.contracts import Button, MouseKind

pytestmark = pytest.mark.kafka



@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("layouts")
    return {
        "balabit": write_balabit(root / "balabit"),
        "aalto": write_aalto(root / "aalto"),
        "aalto-paced": write_aalto(root / "aalto-paced", paced=True),
    }

_KIND = {"Move": MouseKind.MOVE, "Drag": MouseKind.MOVE, "Pressed": MouseKind.PRESS,
         "Released": MouseKind.RELEASE, "Down": MouseKind.SCROLL, "Up": MouseKind.SCROLL}  # fmt: skip
_BUTTON = {"Left": Button.LEFT, "Right": Button.RIGHT, "Middle": Button.MIDDLE}


def replay_cli(settings, dataset: str, data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TOUCHSTONE_TOPIC_RAW": settings.topic_raw}
    cmd = [sys.executable, "-m", "touchstone.cli", "replay", dataset, "--data", str(data), *args]
    proc = subprocess.run(
        [*cmd, "--bootstrap", settings.bootstrap], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def balabit_source(path: Path) -> list[tuple[float, int, float, float, int]]:
    """(ms, kind, x, y, button) of every row, straight from the CSV."""
    events = []
    for line in path.read_text().splitlines()[1:]:
        _, client, button, state, x, y = line.split(",")
        kind = _KIND[state]
        code = (-1 if state == "Down" else 1) if kind == MouseKind.SCROLL else _BUTTON.get(button, Button.NONE)
        if kind == MouseKind.MOVE:
            code = Button.NONE
        events.append((float(Decimal(client) * 1000), int(kind), float(x), float(y), int(code)))
    return events


def aalto_source(path: Path) -> list[tuple[int, bool]]:
    """(epoch ms, pressed) of every press and release, in time order (a press first on a tie)."""
    timed = []
    for order, line in enumerate(path.read_text().splitlines()[1:]):
        fields = line.split("\t")
        timed.append((int(fields[5]), 2 * order, True))
        timed.append((int(fields[6]), 2 * order + 1, False))
    return [(t, down) for t, _, down in sorted(timed)]


def test_balabit_replay_reproduces_the_source_timings_exactly(settings, layouts):
    root = layouts["balabit"]
    proc = replay_cli(settings, "balabit", root, "--fast")
    assert "2 sessions" in proc.stdout and "0 undelivered" in proc.stdout
    assert "balabit" in proc.stdout and "2/2" in proc.stdout  # the progress bar's last frame
    got = read_batches(settings.bootstrap, settings.topic_raw, until_end=2)
    files = sorted(root.rglob("session_*"))
    assert {b.session_id for _, b in got} == {f"balabit/{f.relative_to(root).as_posix()}" for f in files}
    for path in files:
        batches = [b for _, b in got if b.session_id == f"balabit/{path.relative_to(root).as_posix()}"]
        assert [b.seq for b in batches] == list(range(len(batches))) and batches[-1].end
        assert {b.user for b in batches} == {path.parent.name}
        replayed = [
            (float(t), int(k), float(x), float(y), int(btn))
            for b in batches
            for t, k, x, y, btn in zip(b.mouse.t, b.mouse.kind, b.mouse.x, b.mouse.y, b.mouse.button, strict=True)
        ]
        source = balabit_source(path)
        assert replayed == source  # times (ms), kinds, positions, buttons: all exact
        wall = [b.capture_time(float(t)) for b in batches for t in b.mouse.t]
        assert wall == [BALABIT_SESSION_START_MS + e[0] for e in source]


def test_aalto_replay_reproduces_the_source_timings_exactly(settings, layouts):
    root = layouts["aalto"]
    proc = replay_cli(settings, "aalto", root, "--fast")
    assert "2 sessions" in proc.stdout and "0 undelivered" in proc.stdout
    got = read_batches(settings.bootstrap, settings.topic_raw, until_end=2)
    for path in sorted(root.rglob("*_keystrokes.txt")):
        participant = path.name.split("_")[0]
        batches = [b for _, b in got if b.session_id == f"aalto-{participant}"]
        assert batches and [b.seq for b in batches] == list(range(len(batches))) and batches[-1].end
        source = aalto_source(path)
        origin = source[0][0]
        assert {b.session_start for b in batches} == {float(origin)}
        replayed = [(float(t), bool(d)) for b in batches for t, d in zip(b.keys.t, b.keys.down, strict=True)]
        assert replayed == [(float(t - origin), down) for t, down in source]
        # the anchor maps every event back to its recorded epoch millisecond
        wall = [b.capture_time(float(t)) for b in batches for t in b.keys.t]
        assert wall == [float(t) for t, _ in source]
        tokens = [k for b in batches for k in b.keys.key]
        assert {token_base(k) for k in tokens} <= CLASS_TOKENS and {b.privacy for b in batches} == {"timing"}


@pytest.mark.parametrize("speed", [1.0, 4.0])
def test_replay_paces_batches_at_the_recorded_speed_or_n_times_it(settings, layouts, speed):
    proc = replay_cli(settings, "aalto", layouts["aalto-paced"], "--speed", str(speed), "--run-tag", "paced")
    assert "1 sessions" in proc.stdout
    got = read_batches(settings.bootstrap, settings.topic_raw, until_end=1)
    sent = [msg.timestamp()[1] for msg, _ in got]  # producer CreateTime: when the replay handed it over
    monos = [b.mono for _, b in got]
    assert len(got) >= 5 and monos[-1] - monos[0] > 1500  # enough recorded time to tell the speeds apart
    expected = [(m - monos[0]) / speed for m in monos]
    actual = [s - sent[0] for s in sent]
    assert all(abs(a - e) <= 50 for a, e in zip(actual, expected, strict=True)), (actual, expected)
