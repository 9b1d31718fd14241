"""The Balabit harness end to end on a tiny synthetic dataset in the challenge's layout (not the real files)."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from mouse_synth import BRISK, GENTLE, STEADY, session_events, write_balabit_session

from touchstone.detectors.evaluate_balabit import evaluate_balabit, evaluate_balabit_command, roc_auc
from touchstone.detectors.mouse import MouseFleetScorer

STYLES = {"user1": BRISK, "user2": GENTLE, "user3": STEADY}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("balabit")
    rng = np.random.default_rng(11)
    labels = ["filename,is_illegal"]
    serial = 0
    for user, style in STYLES.items():
        for s in range(2):
            (root / "training_files" / user).mkdir(parents=True, exist_ok=True)
            path = root / "training_files" / user / f"session_{user}_{s}"
            write_balabit_session(path, session_events(style, 150, rng))
        test_dir = root / "test_files" / user
        test_dir.mkdir(parents=True, exist_ok=True)
        others = [v for v in STYLES.values() if v is not style]
        for k in range(8):
            illegal = k % 2
            serial += 1
            name = f"session_{serial:010d}"
            write_balabit_session(test_dir / name, session_events(others[k % 2] if illegal else style, 40, rng))
            labels.append(f"{name},{illegal}")
        write_balabit_session(test_dir / "session_unlabelled", session_events(style, 10, rng))
    (root / "labels.csv").write_text("\n".join(labels) + "\n", encoding="utf-8")
    return root


def small_scorer():
    return MouseFleetScorer(n_trees=12, depth=7, warmup_actions=600, enrol_actions=150)


def test_the_harness_learns_the_fleet_and_separates_impostor_sessions(dataset):
    report = evaluate_balabit(dataset, dataset / "labels.csv", progress=False, scorer=small_scorer())
    assert report["n_sessions"] == 24 and report["n_illegal"] == 12 and report["n_genuine"] == 12
    assert report["sessions_skipped"] == {}
    assert set(report["auc_by_actions"]) == {"1", "5", "10", "20", "all"}
    assert report["auc"] == report["auc_by_actions"]["all"] >= 0.95
    assert report["auc_by_actions"]["10"] >= 0.85
    assert report["training"]["sessions"] == 6 and report["test"]["sessions"] == 24  # unlabelled ones not replayed
    assert report["training"]["windows"] > 0 and report["test"]["actions"] > 0
    assert all(v > 0 for v in report["throughput"].values())
    assert 0 < report["memory"]["profile_bytes_max"] <= 1_000_000
    assert report["memory"]["windower_state_bytes_max"] <= 64 * 1024
    assert report["model"]["n_trees"] == 12 and report["windower"]["window_actions"] == 10
    assert report["privacy"] == "timing"


def test_the_command_writes_and_prints_the_same_json(dataset, tmp_path, capsys, monkeypatch):
    import touchstone.detectors.evaluate_balabit as harness

    # Two users hold fewer actions than warmup_actions: the harness grows the forest when training ends.
    tiny = {"n_trees": 8, "depth": 6, "warmup_actions": 5000, "enrol_actions": 100}
    monkeypatch.setattr(harness, "MouseFleetScorer", lambda: MouseFleetScorer(**tiny))
    out = tmp_path / "report" / "balabit.json"
    report = evaluate_balabit_command(dataset, dataset / "labels.csv", out, limit_users=2, progress=False)
    written = json.loads(out.read_text())
    assert written == json.loads(capsys.readouterr().out)
    assert written["users"] == 2 and written["n_sessions"] == report["n_sessions"] == 16


def test_an_unknown_privacy_mode_or_layout_is_refused(dataset, tmp_path):
    with pytest.raises(ValueError):
        evaluate_balabit(dataset, dataset / "labels.csv", privacy="nope", progress=False)
    with pytest.raises(FileNotFoundError):
        evaluate_balabit(tmp_path, dataset / "labels.csv", progress=False)


def test_roc_auc_known_values():
    assert roc_auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert roc_auc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([0, 0, 1, 1])) == 0.0
    assert roc_auc(np.array([0.5, 0.5, 0.5, 0.5]), np.array([0, 1, 0, 1])) == 0.5
    assert np.isnan(roc_auc(np.array([0.1, 0.2]), np.array([1, 1])))


@given(
    pairs=st.lists(st.tuples(st.integers(0, 6).map(float), st.booleans()), min_size=2, max_size=40).filter(
        lambda ps: 0 < sum(label for _, label in ps) < len(ps)
    )
)
def test_roc_auc_equals_the_pairwise_definition(pairs):
    scores = np.array([s for s, _ in pairs])
    labels = np.array([y for _, y in pairs])
    pos, neg = scores[labels], scores[~labels]
    expected = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert roc_auc(scores, labels) == pytest.approx(expected)
