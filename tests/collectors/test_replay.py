"""Replays publish the parsers' batches unchanged, paced as asked (synthetic dataset files only)."""

from __future__ import annotations

from collections import defaultdict

import pytest
from kafka_readback import read_batches

from touchstone.collectors.privacy import KeyTokenizer
from touchstone.collectors.replay import balabit_session_files, replay_aalto, replay_balabit, replay_batches
from touchstone.collectors.replay_aalto import iter_aalto_batches
from touchstone.collectors.replay_balabit import iter_balabit_batches
from touchstone.contracts import RawBatch, encode_raw

pytestmark = pytest.mark.kafka

BALABIT_HEADER = "record timestamp,client timestamp,button,state,x,y\n"
AALTO_HEADER = (
    "PARTICIPANT_ID\tTEST_SECTION_ID\tSENTENCE\tUSER_INPUT\tKEYSTROKE_ID\tPRESS_TIME\tRELEASE_TIME\tLETTER\tKEYCODE\n"
)


def write_balabit(root, user: str, name: str, n: int, step_s: float) -> None:
    folder = root / "training_files" / user
    folder.mkdir(parents=True, exist_ok=True)
    lines = [BALABIT_HEADER]
    for i in range(n):
        t = round(i * step_s, 3)
        state = "Pressed" if i % 50 == 49 else "Released" if i % 50 == 0 and i else "Move"
        button = "Left" if state != "Move" else "NoButton"
        lines.append(f"{t},{t},{button},{state},{100 + i % 300},{200 + (i * 7) % 400}\n")
    (folder / name).write_text("".join(lines))


def write_aalto(root, participant: int, sentences: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    lines = [AALTO_HEADER]
    t = 1_476_000_000_000
    key_id = 0
    for section in range(sentences):
        text = "the quick fox"
        for ch in text:
            key_id += 1
            code = 32 if ch == " " else ord(ch.upper())
            lines.append(f"{participant}\t{section + 1}\t{text}\t{text}\t{key_id}\t{t}\t{t + 95}\t{ch}\t{code}\n")
            t += 173
        t += 4000
    (root / f"{participant}_keystrokes.txt").write_text("".join(lines))


def by_session(pairs) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = defaultdict(list)
    for msg, batch in pairs:
        out[batch.session_id].append(msg.value())
    return dict(out)


def test_balabit_replay_publishes_the_parsed_batches_byte_for_byte(tmp_path, settings):
    write_balabit(tmp_path, "user7", "session_0041", n=450, step_s=0.0125)
    write_balabit(tmp_path, "user9", "session_0007", n=120, step_s=0.031)
    report = replay_balabit(tmp_path, settings, speed=None, show_progress=False)
    assert report.sessions == 2 and report.undelivered == 0
    expected: dict[str, list[bytes]] = {}
    for path in balabit_session_files(tmp_path):
        session = f"balabit/{path.relative_to(tmp_path).as_posix()}"
        expected[session] = [encode_raw(b) for b in iter_balabit_batches(path, path.parent.name, session)]
    got = by_session(read_batches(settings.bootstrap, settings.topic_raw, until_end=2))
    assert got == expected
    assert sum(len(v) for v in expected.values()) == report.batches


def test_aalto_replay_publishes_the_parsed_batches_byte_for_byte(tmp_path, settings):
    write_aalto(tmp_path / "keystrokes", 101, sentences=3)
    write_aalto(tmp_path / "keystrokes", 202, sentences=2)
    report = replay_aalto(tmp_path / "keystrokes", settings, speed=None, show_progress=False)
    assert report.sessions == 2 and report.undelivered == 0
    tokenizer = KeyTokenizer("timing")
    expected = {}
    for participant in (101, 202):
        path = tmp_path / "keystrokes" / f"{participant}_keystrokes.txt"
        batches = list(iter_aalto_batches(path, tokenizer))
        expected[batches[0].session_id] = [encode_raw(b) for b in batches]
    got = by_session(read_batches(settings.bootstrap, settings.topic_raw, until_end=2))
    assert got == expected


def paced_batches(session: str, monos: list[float]) -> list[RawBatch]:
    return [
        RawBatch(
            session_id=session,
            user="u",
            host="h",
            seq=i,
            collector="test/1",
            privacy="timing",
            session_start=1.7e12,
            wall=1.7e12 + m,
            mono=m,
            end=i == len(monos) - 1,
        )
        for i, m in enumerate(monos)
    ]


def test_speed_scales_the_recorded_pace(settings):
    monos = [0.0, 400.0, 800.0, 1200.0, 1600.0]
    replay_batches(paced_batches("paced-2x", monos), settings, speed=2.0, show_progress=False)
    replay_batches(paced_batches("paced-fast", monos), settings, speed=None, show_progress=False)
    sent: dict[str, list[float]] = defaultdict(list)
    for msg, batch in read_batches(settings.bootstrap, settings.topic_raw, until_end=2):
        sent[batch.session_id].append(msg.timestamp()[1])  # producer CreateTime, ms
    # the producer stamps each batch when the replay hands it over: 400 ms recorded = 200 ms at 2x
    gaps = [b - a for a, b in zip(sent["paced-2x"], sent["paced-2x"][1:], strict=False)]
    assert all(abs(g - 200) <= 40 for g in gaps), gaps
    fast = sent["paced-fast"]
    assert fast[-1] - fast[0] < 100
    with pytest.raises(ValueError):
        replay_batches([], settings, speed=0)


def test_run_tag_replays_as_new_sessions(tmp_path, settings):
    write_balabit(tmp_path, "user7", "session_1", n=30, step_s=0.01)
    replay_balabit(tmp_path, settings, speed=None, run_tag="again", show_progress=False)
    got = by_session(read_batches(settings.bootstrap, settings.topic_raw, until_end=1))
    assert list(got) == ["balabit/training_files/user7/session_1#again"]
