"""The Aalto harness on a small synthetic dataset in the Aalto file format (the real data is never needed)."""

from __future__ import annotations

import json
import random

import pytest
from test_keys_detector import Typist

from touchstone.detectors.evaluate_aalto import equal_error_rate, evaluate_aalto

HEADER = "\t".join(
    ("PARTICIPANT_ID", "TEST_SECTION_ID", "SENTENCE", "USER_INPUT", "KEYSTROKE_ID", "PRESS_TIME", "RELEASE_TIME",
     "LETTER", "KEYCODE")
)  # fmt: skip
KEYCODES = {" ": 32, "backspace": 8, "shift_l": 16, "shift_r": 16}
T0 = 1_471_948_585_847


def write_participant(directory, pid: int, sentences: int = 9, keys: int = 60) -> None:
    typist = Typist(1000 + pid)
    lines, keystroke_id, start = [HEADER], 0, float(T0)
    for section in range(sentences):
        events = typist.events(keys, start=start)
        pressed: dict[str, list[float]] = {}
        strokes = []
        for t, down, key in events:
            if down:
                pressed.setdefault(key, []).append(t)
            else:
                strokes.append((pressed[key].pop(0), t, key))
        for press, release, key in sorted(strokes):
            keystroke_id += 1
            letter = {" ": " ", "backspace": "BKSP"}.get(key, "SHIFT" if key.startswith("shift") else key)
            code = KEYCODES.get(key, ord(key.upper()) if len(key) == 1 else 0)
            lines.append(f"{pid}\t{section}\tSome text.\tSome text.\t{keystroke_id}\t{round(press)}\t{round(release)}"
                         f"\t{letter}\t{code}")
        start = max(r for _, r, _ in strokes) + random.Random(pid).uniform(3000.0, 9000.0)
    (directory / f"{pid}_keystrokes.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("aalto")
    data, population = root / "keystrokes", root / "population"
    data.mkdir()
    population.mkdir()
    for pid in range(12):
        write_participant(data, pid)
    for pid in range(100, 104):
        write_participant(population, pid)
    return data, population


@pytest.mark.parametrize("privacy", ["timing", "keyed", "full"])
def test_report_has_every_config_and_separates_synthetic_typists(dataset, privacy):
    data, _ = dataset
    report = evaluate_aalto(data, privacy=privacy, progress=False)
    json.dumps(report)  # the CLI writes it as JSON
    assert report["privacy"] == privacy and report["users"] == 12
    assert set(report["configs"]) == {"50", "100", "150"}
    m50 = report["configs"]["50"]
    assert m50["users"] == 12 and m50["enrol_sequences"] == 5
    assert m50["genuine_trials"] == 12 * 4 and m50["impostor_trials"] == 12 * 11
    assert 0.0 <= report["mean_user_eer"] < 0.35  # chance is 0.5
    assert 0.0 <= report["global_eer"] < 0.4
    assert report["windows_scored_per_s"] > 0 and 0 < report["profile_bytes_mean"] < report["profile_bytes_full"]
    assert report["profile_bytes_full"] < 1_000_000


def test_a_population_set_is_learned_but_never_evaluated(dataset):
    data, population = dataset
    report = evaluate_aalto(data, population_dir=population, privacy="keyed", progress=False)
    m50 = report["configs"]["50"]
    assert m50["population_users"] == 4 and m50["users"] == 12
    without = evaluate_aalto(data, privacy="keyed", progress=False)["configs"]["50"]
    assert m50["combiner_examples"]["genuine"] > without["combiner_examples"]["genuine"]


def test_equal_error_rate_interpolates_between_thresholds():
    assert equal_error_rate([0.1, 0.2, 0.3, 0.4], [0.35, 0.5, 0.6, 0.7]) == pytest.approx(0.25)
    assert equal_error_rate([0.9, 0.8], [0.1, 0.2]) == 1.0
