"""Keystroke windows: pairing (rollover, repeats, lost releases), window closing, robustness, state."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from touchstone.collectors.privacy import KeyEventTokenizer, KeyTokenizer
from touchstone.contracts import KeyEvents
from touchstone.streams.base import ClosedWindow
from touchstone.streams.keystroke_features import KeystrokeWindower, keystroke_features, quantiles


def events(*items: tuple[float, bool, str]) -> KeyEvents:
    return KeyEvents(
        t=np.array([i[0] for i in items], dtype=np.float64),
        down=np.array([i[1] for i in items], dtype=bool),
        key=tuple(i[2] for i in items),
    )


def typed(keys: list[tuple[str, float, float]]) -> KeyEvents:
    """Events of keystrokes given as (token, press, release), sorted by time (presses first on ties)."""
    timed = sorted([(p, 0, True, k) for k, p, _ in keys] + [(r, 1, False, k) for k, _, r in keys])
    return events(*[(t, d, k) for t, _, d, k in timed])


def part(stream: KeyEvents, a: int, b: int | None = None) -> KeyEvents:
    return events(*zip(stream.t[a:b].tolist(), stream.down[a:b].tolist(), stream.key[a:b], strict=True))


def run(windower: KeystrokeWindower, stream: KeyEvents, cuts: list[int] | None = None) -> list[ClosedWindow]:
    bounds = [0, *(cuts or []), len(stream)]
    out: list[ClosedWindow] = []
    for a, b in itertools.pairwise(bounds):
        out += windower.push(part(stream, a, b))
    return out + windower.flush("session_end")


def assert_finite(window: ClosedWindow) -> None:
    for name, value in {**window.features, **window.grams}.items():
        assert isinstance(value, float) and math.isfinite(value), (name, value)


def test_rollover_pairs_releases_with_their_own_press():
    w = KeystrokeWindower(window=2, min_keys=1)
    closed = w.push(events((0.0, True, "a"), (50.0, True, "b"), (90.0, False, "a"), (130.0, False, "b")))
    assert len(closed) == 1
    f = closed[0].features
    assert f["hold.median"] == pytest.approx(85.0)  # holds 90 and 80
    assert f["rp.median"] == pytest.approx(-40.0)  # b pressed 40 ms before a was released
    assert f["rollover.rate"] == 1.0
    assert closed[0].grams["a>b"] == 50.0


def test_same_class_rollover_without_slots_is_two_keystrokes():
    w = KeystrokeWindower(window=3, min_keys=1)
    stream = events((0.0, True, "L.home"), (40.0, True, "L.home"), (90.0, False, "L.home"), (120.0, False, "L.home"),
                    (200.0, True, "space"), (260.0, False, "space"))
    closed = run(w, stream)
    assert [c.n_events for c in closed] == [3]
    assert closed[0].grams["L.home>L.home"] == 40.0
    assert closed[0].grams["L.home"] == pytest.approx(85.0)  # FIFO: holds 90 and 80


def test_auto_repeat_is_counted_not_a_keystroke():
    w = KeystrokeWindower(window=10, min_keys=1)
    repeats = [(500.0 + 33.0 * i, True, "erase") for i in range(5)]
    closed = run(w, events((0.0, True, "erase"), *repeats, (700.0, False, "erase"), (800.0, True, "R.top"),
                           (870.0, False, "R.top")))
    assert [c.n_events for c in closed] == [2]
    assert closed[0].features["repeat.rate"] == pytest.approx(5 / 2)
    assert w.counters["repeats"] == 5


def test_lost_release_gives_unknown_hold_and_next_press_counts():
    w = KeystrokeWindower(window=10, min_keys=1)
    stream = events((0.0, True, "a"), (100.0, True, "b"), (160.0, False, "b"), (3000.0, True, "a"),
                    (3080.0, False, "a"))
    closed = run(w, stream)
    assert closed[0].n_events == 3
    assert closed[0].grams["a"] == 80.0 and closed[0].grams["b"] == 60.0
    assert w.counters["lost_releases"] == 1


def test_unmatched_release_is_counted_and_ignored():
    w = KeystrokeWindower(window=10, min_keys=1)
    closed = run(w, events((0.0, False, "x"), (10.0, True, "a"), (80.0, False, "a")))
    assert closed[0].n_events == 1
    assert w.counters["unmatched_releases"] == 1


def test_count_window_waits_for_the_last_release_but_not_forever():
    w = KeystrokeWindower(window=2, min_keys=1, max_hold_ms=1000.0)
    assert w.push(events((0.0, True, "a"), (10.0, False, "a"), (100.0, True, "b"))) == []
    assert w.push(events((150.0, True, "c"))) == []  # b still held: its hold belongs to this window
    closed = w.push(events((400.0, False, "b")))
    assert len(closed) == 1 and closed[0].features["hold.median"] == pytest.approx(155.0)
    w2 = KeystrokeWindower(window=2, min_keys=1, max_hold_ms=1000.0)
    assert w2.push(events((0.0, True, "a"), (10.0, False, "a"), (100.0, True, "b"), (500.0, True, "c"))) == []
    closed = w2.push(events((1200.0, True, "d")))  # b held past max_hold: the window closes without it
    assert len(closed) == 1 and closed[0].features["hold.median"] == 10.0


def test_long_silence_closes_the_window_early():
    w = KeystrokeWindower(window=50, min_keys=2, close_pause_ms=5000.0)
    keys = [(f"k{i}", 100.0 * i, 100.0 * i + 50.0) for i in range(5)]
    keys += [(f"k{i}", 20_000.0 + 100.0 * i, 20_000.0 + 100.0 * i + 50.0) for i in range(3)]
    closed = run(w, typed(keys))
    assert [(c.closed_by, c.n_events) for c in closed] == [("pause", 5), ("session_end", 3)]
    assert [c.index for c in closed] == [0, 1]


def test_short_windows_are_dropped_and_counted():
    w = KeystrokeWindower(window=50, min_keys=10)
    assert run(w, typed([("a", 0.0, 50.0), ("b", 100.0, 150.0)])) == []
    assert w.counters["dropped_keys"] == 2


def test_single_key_window_and_duplicate_timestamps_stay_finite():
    single = run(KeystrokeWindower(window=5, min_keys=1), typed([("a", 0.0, 70.0)]))
    assert len(single) == 1 and single[0].features["hold.median"] == 70.0
    assert "pp.median" not in single[0].features
    assert_finite(single[0])
    same = run(KeystrokeWindower(window=5, min_keys=1), typed([(k, 100.0, 100.0) for k in "abcde"]))
    assert len(same) == 1
    assert_finite(same[0])
    assert same[0].features["pp.median"] == 0.0 and "rate.kps" not in same[0].features


def test_windows_every_n_keystrokes_in_press_order():
    keys = [(f"k{i % 7}", 120.0 * i, 120.0 * i + 60.0) for i in range(23)]
    closed = run(KeystrokeWindower(window=10, min_keys=1), typed(keys))
    assert [(c.n_events, c.closed_by) for c in closed] == [(10, "count"), (10, "count"), (3, "session_end")]
    assert closed[1].start_t == 1200.0


def test_quantiles_match_numpy():
    values = sorted([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])
    assert quantiles(values, [0.1, 0.5, 0.9]) == pytest.approx(np.percentile(values, [10, 50, 90]).tolist())


def test_keystroke_features_by_token_and_class():
    tokens = ["shift_l", "R.home", "R.top", "space", "erase", "L.home"]
    press = [0.0, 80.0, 200.0, 330.0, 450.0, 600.0]
    release = [150.0, 160.0, 290.0, 400.0, 520.0, -1.0]
    f, g = keystroke_features(tokens, press, release)
    assert f["shift.rate"] == pytest.approx(1 / 6) and f["shift.right_share"] == 0.0
    assert f["shift.lead.median"] == 80.0
    assert f["erase.rate"] == pytest.approx(1 / 6)
    assert f["hold.right.median"] == pytest.approx(85.0)
    assert f["pp.RS.median"] == 130.0
    assert g["R.home>R.top"] == 120.0
    assert "L.home" not in g  # its hold is unknown


def test_modifier_sides_are_shares_of_sided_presses():
    tokens = ["ctrl_r", "L.home", "alt_l", "ctrl_r", "R.top", "shift_r"]
    press = [0.0, 100.0, 200.0, 300.0, 400.0, 500.0]
    release = [p + 60.0 for p in press]
    f, _ = keystroke_features(tokens, press, release)
    assert f["mod.right_share"] == pytest.approx(2 / 3)  # shift is counted on its own
    assert f["shift.right_share"] == 1.0
    plain, _ = keystroke_features(["L.home", "R.top"], [0.0, 100.0], [50.0, 150.0])
    assert "mod.right_share" not in plain and "shift.right_share" not in plain


# -- properties ----------------------------------------------------------------------------

TOKENS = ["a", "b", "L.home", "L.home@1", "space", "shift_l", "erase"]
raw_events = st.lists(
    st.tuples(st.sampled_from([0.0, 0.0, 1.0, 35.0, 120.0, 600.0, 2500.0, 12_000.0]), st.booleans(),
              st.sampled_from(TOKENS)),
    max_size=160,
)


def build(items: list[tuple[float, bool, str]]) -> KeyEvents:
    t = np.cumsum([dt for dt, _, _ in items]) if items else np.zeros(0)
    return events(*[(float(ti), d, k) for ti, (_, d, k) in zip(t, items, strict=True)])


def snapshot(windows: list[ClosedWindow]) -> list[tuple]:
    return [(w.index, w.start_t, w.end_t, w.n_events, w.closed_by, w.features, w.grams) for w in windows]


@settings(max_examples=150, deadline=None)
@given(raw_events, st.lists(st.integers(min_value=0, max_value=160), max_size=6))
def test_same_windows_whatever_the_batch_boundaries(items, cuts):
    stream = build(items)
    cuts = sorted({c for c in cuts if c <= len(stream)})
    whole = run(KeystrokeWindower(window=7, min_keys=1), stream)
    split = run(KeystrokeWindower(window=7, min_keys=1), stream, cuts)
    assert snapshot(whole) == snapshot(split)


@settings(max_examples=150, deadline=None)
@given(raw_events)
def test_nan_and_inf_are_never_produced(items):
    for window in run(KeystrokeWindower(window=5, min_keys=1), build(items)):
        assert_finite(window)
        assert window.end_t >= window.start_t


@settings(max_examples=100, deadline=None)
@given(raw_events, st.integers(min_value=0, max_value=160))
def test_state_round_trip_resumes_identically(items, cut):
    stream = build(items)
    cut = min(cut, len(stream))
    whole = run(KeystrokeWindower(window=6, min_keys=2), stream)
    first = KeystrokeWindower(window=6, min_keys=2)
    before = first.push(part(stream, 0, cut))
    state = json.loads(json.dumps(first.to_state()))
    resumed = KeystrokeWindower.from_state(state)
    after = run(resumed, part(stream, cut))
    assert snapshot(before + after) == snapshot(whole)
    assert resumed.counters == run_counters(stream)


def run_counters(stream: KeyEvents) -> dict[str, int]:
    w = KeystrokeWindower(window=6, min_keys=2)
    run(w, stream)
    return w.counters


def test_state_of_an_open_session_is_small():
    w = KeystrokeWindower(window=50)
    keyed = KeyTokenizer("keyed", secret=b"0123456789abcdef0123")
    keys = [(keyed.token("abcdefghij"[i % 10]), 150.0 * i, 150.0 * i + 400.0) for i in range(49)]
    w.push(typed(keys))
    size = len(json.dumps(w.to_state()))
    assert size < 64 * 1024


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("asdfjkl ;"), st.floats(0.0, 300.0), st.floats(20.0, 250.0)),
                min_size=1, max_size=120))
def test_windows_cut_at_the_same_keystrokes_in_every_privacy_mode(strokes):
    timed, t = [], 0.0
    held_until: dict[str, float] = {}
    for char, gap, hold in strokes:
        t += gap
        if t <= held_until.get(char, -1.0):
            continue  # a physical key cannot go down again before it came up
        held_until[char] = t + hold
        timed += [(t, 0, True, char), (t + hold, 1, False, char)]
    timed.sort()
    cut_points = {}
    for mode in ("timing", "keyed", "full"):
        stream = KeyEventTokenizer(KeyTokenizer(mode, secret=b"0123456789abcdef", allow_full=True))
        ev = events(*[(tt, d, stream.event(name, d)) for tt, _, d, name in timed])
        cut_points[mode] = [(c.n_events, c.start_t, c.end_t) for c in run(KeystrokeWindower(window=9, min_keys=1), ev)]
    assert cut_points["timing"] == cut_points["keyed"] == cut_points["full"]


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        KeystrokeWindower(window=1)
    with pytest.raises(ValueError):
        KeystrokeWindower(window=10, min_keys=11)
    with pytest.raises(ValueError):
        KeystrokeWindower(pause_ms=float("nan"))
    with pytest.raises(ValueError):
        KeystrokeWindower.from_state({"v": 99})
