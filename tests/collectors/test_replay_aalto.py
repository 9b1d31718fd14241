"""Aalto file parsing (defensive, counted) and replay as raw batches with exact source timings."""

from __future__ import annotations

import numpy as np
import pytest

from touchstone.collectors.privacy import CLASS_TOKENS, KeyTokenizer, token_base
from touchstone.collectors.replay_aalto import (
    batches_from_sentences,
    iter_aalto_batches,
    parse_aalto_file,
    read_aalto_file,
)
from touchstone.contracts import decode_raw, encode_raw

HEADER = "\t".join(
    ("PARTICIPANT_ID", "TEST_SECTION_ID", "SENTENCE", "USER_INPUT", "KEYSTROKE_ID", "PRESS_TIME", "RELEASE_TIME",
     "LETTER", "KEYCODE")
)  # fmt: skip
T0 = 1_471_948_585_847


def row(section, ks_id, press, release, letter, keycode, sentence="Hi there.", typed="Hi there."):
    return f"42\t{section}\t{sentence}\t{typed}\t{ks_id}\t{press}\t{release}\t{letter}\t{keycode}"


@pytest.fixture
def aalto_file(tmp_path):
    lines = [
        HEADER,
        # sentence 7: shift rolls over "H"; rows deliberately out of press order
        row(7, 3, T0 + 120, T0 + 190, "i", 73),
        row(7, 1, T0, T0 + 150, "SHIFT", 16),
        row(7, 2, T0 + 60, T0 + 130, "H", 72),
        row(7, 4, T0 + 260, T0 + 330, " ", 32),
        row(7, 5, T0 + 400, T0 + 470, "", 84),  # empty LETTER: the keycode says "t"
        # a tab inside the sentence text: fields are read from both ends
        row(7, 6, T0 + 520, T0 + 600, "h", 72, sentence="Hi\tthere."),
        # a typed tab: LETTER is a tab character
        row(7, 7, T0 + 640, T0 + 700, "\t", 9),
        # malformed: a float time, a short row, a non-numeric keycode, a duplicate id
        row(7, 8, T0 + 720, "1.472e+12", "e", 69),
        "42\t7\tbroken",
        row(7, 9, T0 + 730, T0 + 790, "e", "x"),
        row(7, "2e+05", T0 + 760, T0 + 800, "e", 69),  # unreadable id: kept, counted
        row(7, 2, T0 + 800, T0 + 850, "r", 82),
        # sentence 8, typed later; its release precedes its press (kept as recorded)
        row(8, 20, T0 + 5000, T0 + 5080, "o", 79),
        row(8, 21, T0 + 5100, T0 + 5090, "k", 75),
        "",
    ]
    path = tmp_path / "42_keystrokes.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def test_parse_counts_what_it_skips_and_repairs(aalto_file):
    parsed = parse_aalto_file(aalto_file)
    assert parsed.participant == "42"
    assert parsed.rows == 14
    assert parsed.skipped == {"bad_time": 1, "short_row": 1, "bad_keycode": 1, "duplicate_keystroke": 1}
    assert parsed.repaired == {"tabs_in_text": 1, "release_before_press": 1, "bad_keystroke_id": 1}
    sentences = read_aalto_file(aalto_file)
    assert [s.section_id for s in sentences] == ["7", "8"]
    first = sentences[0]
    assert [r.keystroke_id for r in first.rows] == [1, 2, 3, 4, 5, 6, 7, -1]  # press order
    assert first.rows[6].letter == "\t" and first.rows[6].keycode == 9


def test_replay_reproduces_source_timings_exactly(aalto_file):
    tokenizer = KeyTokenizer("full", allow_full=True)
    batches = list(iter_aalto_batches(aalto_file, tokenizer, batch_events=3))
    assert [b.seq for b in batches] == list(range(len(batches)))
    assert batches[-1].end and not any(b.end for b in batches[:-1])
    assert all(len(b.keys) <= 3 for b in batches)
    origin = batches[0].session_start
    assert origin == float(T0)
    t = np.concatenate([b.keys.t for b in batches])
    down = np.concatenate([b.keys.down for b in batches])
    keys = [k for b in batches for k in b.keys.key]
    expected = []
    for sentence in read_aalto_file(aalto_file):
        for r in sentence.rows:
            expected.append((r.press - T0, True))
            expected.append((r.release - T0, False))
    assert sorted((float(a), b) for a, b in expected) == sorted(zip(t.tolist(), down.tolist(), strict=True))
    assert np.all(np.diff(t) >= 0)
    assert keys[:2] == ["shift", "h"]
    for batch in batches:  # every batch satisfies the wire contract
        again = decode_raw(encode_raw(batch))
        assert again.keys.t.tolist() == batch.keys.t.tolist()
        assert batch.wall - batch.mono == origin


def test_replay_splits_batches_by_time_like_a_live_collector(aalto_file):
    batches = list(iter_aalto_batches(aalto_file, KeyTokenizer(), flush_ms=250.0))
    for batch in batches:
        assert batch.keys.t[-1] - batch.keys.t[0] <= 250.0
        assert batch.mono == batch.keys.t[-1]


def test_timing_replay_pairs_same_class_keys(aalto_file):
    batches = list(iter_aalto_batches(aalto_file, KeyTokenizer()))
    tokens = [k for b in batches for k in b.keys.key]
    assert {token_base(k) for k in tokens} <= CLASS_TOKENS
    assert "h" not in tokens and "i" not in tokens
    assert tokens.count("R.home") == 6  # h, h and k: press and release each


def test_per_sentence_sessions_and_truncation(aalto_file):
    batches = list(iter_aalto_batches(aalto_file, KeyTokenizer(), per_sentence=True, max_keys=3))
    sessions = {b.session_id for b in batches}
    assert sessions == {"aalto-42-7", "aalto-42-8"}
    presses = {s: sum(int(b.keys.down.sum()) for b in batches if b.session_id == s) for s in sessions}
    assert presses == {"aalto-42-7": 3, "aalto-42-8": 2}


def test_no_rows_no_batches(tmp_path):
    path = tmp_path / "9_keystrokes.txt"
    path.write_text(HEADER + "\n", encoding="utf-8")
    assert read_aalto_file(path) == []
    assert list(iter_aalto_batches(path, KeyTokenizer())) == []
    assert list(batches_from_sentences([], KeyTokenizer(), user="9", session_id="s")) == []
