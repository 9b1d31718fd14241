"""Mouse segmentation, per-action features and the windower: known cases and properties."""

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from touchstone.contracts import MouseEvents, MouseKind
from touchstone.streams.mouse_features import (
    ACTION_FIELDS,
    ActionType,
    MouseWindower,
    SegmentParams,
    extract_actions,
)

F = {name: i for i, name in enumerate(ACTION_FIELDS)}
MOVE, PRESS, RELEASE, SCROLL = (int(k) for k in MouseKind)


def events(rows):
    """MouseEvents from (t, kind, x, y) rows (button 1 for presses/releases, 0 otherwise)."""
    rows = list(rows)
    if not rows:
        return MouseEvents()
    t, kind, x, y = (np.asarray(c, dtype=np.float64) for c in zip(*rows, strict=True))
    button = np.where((kind == PRESS) | (kind == RELEASE), 1, 0)
    return MouseEvents(t=t, kind=kind.astype(np.int8), x=x, y=y, button=button.astype(np.int16))


def line(t0, x0, y0, n, dt=10.0, dx=3.0, dy=0.0):
    return [(t0 + i * dt, MOVE, x0 + i * dx, y0 + i * dy) for i in range(n)]


def cut(ev, start, stop):
    return MouseEvents(t=ev.t[start:stop], kind=ev.kind[start:stop], x=ev.x[start:stop], y=ev.y[start:stop],
                       button=ev.button[start:stop])


def all_windows(windower, ev, splits=()):
    out = []
    bounds = [0, *sorted(set(splits)), len(ev)]
    for a, b in itertools.pairwise(bounds):
        out += windower.push(cut(ev, a, b))
    return out + windower.flush("session_end")


def finite_everywhere(windows):
    for w in windows:
        assert all(math.isfinite(v) for v in w.features.values())
        assert all(math.isfinite(v) for row in w.actions for v in row)


# ---------------------------------------------------------------------------------------------
# Known cases


def test_a_straight_steady_move_has_the_expected_geometry_and_speed():
    (row,) = extract_actions(events(line(0.0, 0.0, 0.0, 11, dt=10.0, dx=3.0, dy=4.0)))
    assert row[F["type"]] == ActionType.MM
    assert row[F["n_points"]] == 11
    assert row[F["duration_ms"]] == pytest.approx(100.0)
    assert row[F["length_px"]] == pytest.approx(50.0)
    assert row[F["distance_px"]] == pytest.approx(50.0)
    assert row[F["straightness"]] == pytest.approx(1.0)
    assert (row[F["dir_cos"]], row[F["dir_sin"]]) == pytest.approx((0.6, 0.8))
    assert row[F["largest_dev_px"]] == pytest.approx(0.0, abs=1e-9)
    assert row[F["turn_abs_rad"]] == pytest.approx(0.0, abs=1e-12)
    assert row[F["v_mean"]] == pytest.approx(500.0)  # 5 px per 10 ms
    assert row[F["vx_mean"]] == pytest.approx(300.0)
    assert row[F["vy_mean"]] == pytest.approx(400.0)
    assert row[F["a_mean"]] == pytest.approx(0.0, abs=1e-6)
    assert row[F["hold_ms"]] == 0.0


def test_a_right_angle_is_one_critical_point_and_a_quarter_turn():
    path = line(0.0, 0.0, 0.0, 6, dx=5.0) + line(60.0, 25.0, 5.0, 5, dx=0.0, dy=5.0)
    (row,) = extract_actions(events(path))
    assert row[F["critical_points"]] == 1
    assert row[F["turn_net_rad"]] == pytest.approx(math.pi / 2)
    assert row[F["largest_dev_px"]] > 5.0
    assert row[F["straightness"]] < 1.0


def test_turns_are_measured_the_short_way_round():
    # Heading left while wobbling across the +-pi boundary: small turns, no critical point.
    path = [(10.0 * i, MOVE, -10.0 * i, 1.0 if i % 2 else 0.0) for i in range(9)]
    (row,) = extract_actions(events(path))
    assert row[F["critical_points"]] == 0
    assert row[F["turn_abs_rad"]] < 2.0


def test_a_move_ending_in_a_click_is_point_and_click_with_hold_and_dwell():
    path = [*line(0.0, 0.0, 0.0, 8), (100.0, PRESS, 21.0, 0.0), (190.0, RELEASE, 21.0, 0.0)]
    (row,) = extract_actions(events(path))
    assert row[F["type"]] == ActionType.PC
    assert row[F["hold_ms"]] == pytest.approx(90.0)
    assert row[F["pre_click_ms"]] == pytest.approx(30.0)  # last move at 70 ms, press at 100 ms
    assert row[F["n_points"]] == 9  # the moves and the press point


def test_click_jitter_below_the_drag_threshold_stays_a_click():
    path = [*line(0.0, 0.0, 0.0, 5), (50.0, PRESS, 12.0, 0.0), (60.0, MOVE, 14.0, 1.0), (80.0, RELEASE, 14.0, 1.0)]
    kinds = extract_actions(events(path))[:, F["type"]].tolist()
    assert kinds == [ActionType.PC]


def test_a_drag_is_a_move_then_a_drag_and_drop():
    before = line(0.0, 0.0, 0.0, 6)
    drag = [(70.0, PRESS, 15.0, 0.0), *line(80.0, 15.0, 10.0, 5, dx=0.0, dy=10.0), (140.0, RELEASE, 15.0, 50.0)]
    rows = extract_actions(events(before + drag))
    assert rows[:, F["type"]].tolist() == [ActionType.MM, ActionType.DD]
    assert rows[1, F["hold_ms"]] == pytest.approx(70.0)
    assert rows[1, F["distance_px"]] == pytest.approx(50.0)


def test_a_bare_click_after_a_pause_is_kept_as_a_click_without_motion():
    path = [*line(0.0, 0.0, 0.0, 6), (5000.0, PRESS, 15.0, 0.0), (5100.0, RELEASE, 15.0, 0.0)]
    rows = extract_actions(events(path))
    assert rows[:, F["type"]].tolist() == [ActionType.MM, ActionType.PC]
    assert rows[1, F["n_points"]] == 1 and rows[1, F["length_px"]] == 0.0 and rows[1, F["hold_ms"]] == 100.0


def test_a_pause_splits_moves_and_short_moves_are_dropped():
    path = line(0.0, 0.0, 0.0, 6) + line(3000.0, 100.0, 0.0, 6) + line(9000.0, 0.0, 0.0, 2)
    windower = MouseWindower(window_actions=10, pause_ms=1000.0)
    (window,) = all_windows(windower, events(path))
    assert [row[F["type"]] for row in window.actions] == [ActionType.MM, ActionType.MM]
    assert windower.dropped_short == 1  # the two-point move


def test_a_scroll_closes_the_move_and_is_counted_in_the_window():
    path = [*line(0.0, 0.0, 0.0, 6), (60.0, SCROLL, 15.0, 0.0), *line(70.0, 15.0, 0.0, 6)]
    (window,) = all_windows(MouseWindower(window_actions=10), events(path))
    assert len(window.actions) == 2
    assert window.features["scrolls"] == 1.0


def test_zero_length_moves_and_duplicate_timestamps_stay_finite():
    still = [(float(i // 3) * 10.0, MOVE, 50.0, 50.0) for i in range(12)]  # same spot, times in triplicate
    frozen_time = [(0.0, MOVE, float(i), float(2 * i)) for i in range(12)]  # all at one instant
    for path in (still, frozen_time):
        (row,) = extract_actions(events(path))
        assert np.isfinite(row).all()
    still_row = extract_actions(events(still))[0]
    assert still_row[F["length_px"]] == 0.0 and still_row[F["straightness"]] == 1.0 and still_row[F["v_max"]] == 0.0
    frozen_row = extract_actions(events(frozen_time))[0]
    assert frozen_row[F["duration_ms"]] == 0.0 and frozen_row[F["length_px"]] > 0


def test_a_single_point_or_nothing_gives_no_window():
    for path in ([], [(0.0, MOVE, 1.0, 1.0)], [(0.0, RELEASE, 1.0, 1.0)], [(0.0, SCROLL, 1.0, 1.0)]):
        windower = MouseWindower()
        assert windower.push(events(path)) == []
        assert windower.flush("session_end") == []


def test_an_unreleased_press_at_session_end_is_closed():
    path = [*line(0.0, 0.0, 0.0, 5), (50.0, PRESS, 12.0, 0.0), *line(60.0, 12.0, 10.0, 5, dx=0.0, dy=10.0)]
    (window,) = all_windows(MouseWindower(), events(path))
    assert [row[F["type"]] for row in window.actions] == [ActionType.MM, ActionType.DD]


def test_windows_close_every_k_actions_and_account_for_every_event():
    clicks = []
    for i in range(23):
        t = i * 300.0
        clicks += [*line(t, 0.0, 0.0, 5), (t + 60.0, PRESS, 12.0, 0.0), (t + 150.0, RELEASE, 12.0, 0.0)]
    ev = events(clicks)
    windows = all_windows(MouseWindower(window_actions=10), ev, splits=range(0, len(ev), 17))
    assert [len(w.actions) for w in windows] == [10, 10, 3]
    assert [w.index for w in windows] == [0, 1, 2]
    assert [w.closed_by for w in windows] == ["count", "count", "session_end"]
    assert sum(w.n_events for w in windows) == len(ev)
    assert windows[0].start_t == 0.0 and windows[0].end_t == 9 * 300.0 + 150.0
    assert windows[1].start_t == 3000.0
    assert windows[0].action_fields == list(ACTION_FIELDS)
    assert windows[0].features["share.PC"] == 1.0
    assert windows[0].features["hold_ms.median"] == pytest.approx(90.0)
    assert windows[0].features["hold_ms.iqr"] == pytest.approx(0.0)


def test_a_long_unbroken_move_keeps_the_state_bounded():
    windower = MouseWindower(window_actions=10, max_points=200)
    ev = events(line(0.0, 0.0, 0.0, 20_000, dt=8.0, dx=1.0))
    sizes = []
    for a in range(0, len(ev), 500):
        windower.push(cut(ev, a, a + 500))
        sizes.append(len(json.dumps(windower.to_state())))
    assert windower.max_buffered <= 200 + 500
    assert max(sizes) <= 64 * 1024
    assert windower.actions_out == 20_000 // 200 - 1  # cut every 200 points, the last piece still open


def test_a_long_drag_is_cut_and_continues_as_a_drag():
    path = [(0.0, PRESS, 0.0, 0.0), *line(10.0, 0.0, 0.0, 450, dx=1.0), (5000.0, RELEASE, 449.0, 0.0)]
    rows = extract_actions(events(path), SegmentParams(max_points=200))
    assert rows[:, F["type"]].tolist() == [ActionType.DD] * 3


def test_bad_parameters_and_unknown_state_versions_are_refused():
    with pytest.raises(ValueError):
        MouseWindower(window_actions=0)
    with pytest.raises(ValueError):
        MouseWindower(pause_ms=0.0)
    with pytest.raises(ValueError):
        MouseWindower(max_points=3)
    state = MouseWindower().to_state()
    with pytest.raises(ValueError):
        MouseWindower.from_state({**state, "v": 99})


# ---------------------------------------------------------------------------------------------
# Properties over random streams


@st.composite
def mouse_streams(draw, max_events=400):
    """Random but plausible streams: moves, clicks, drags, scrolls, duplicate times, pauses, huge jumps."""
    n = draw(st.integers(0, max_events))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kind_p = draw(st.sampled_from([(0.9, 0.04, 0.04, 0.02), (0.7, 0.12, 0.12, 0.06), (1.0, 0.0, 0.0, 0.0)]))
    kind = rng.choice(4, size=n, p=kind_p).astype(np.int8)
    gaps = rng.choice([0.0, 0.0, 1.0, 8.0, 16.0, 110.0, 700.0, 1500.0, 15000.0], size=n,
                      p=[0.15, 0.05, 0.1, 0.25, 0.25, 0.1, 0.04, 0.04, 0.02])
    t = np.cumsum(gaps) + draw(st.floats(0, 1e6))
    scale = draw(st.sampled_from([0.0, 1.0, 20.0, 1e5]))
    x = np.clip(np.cumsum(np.round(rng.normal(0, scale, n))), -1e6, 1e6)
    y = np.clip(np.cumsum(np.round(rng.normal(0, scale, n))), -1e6, 1e6)
    button = np.where(kind == SCROLL, rng.choice([-1, 1], size=n), np.where(kind == MOVE, 0, 1)).astype(np.int16)
    return MouseEvents(t=t, kind=kind, x=x, y=y, button=button)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ev=mouse_streams(), data=st.data())
def test_windows_do_not_depend_on_batching_or_on_restarts(ev, data):
    k = data.draw(st.integers(1, 6))
    params = {"window_actions": k, "pause_ms": data.draw(st.sampled_from([300.0, 1000.0, 10_000.0])), "max_points": 32}
    reference = all_windows(MouseWindower(**params), ev)
    splits = data.draw(st.lists(st.integers(0, max(len(ev), 0)), max_size=12))
    restarts = set(data.draw(st.lists(st.integers(0, 13), max_size=4)))
    windower = MouseWindower(**params)
    bounds = [0, *sorted(set(splits)), len(ev)]
    got = []
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        got += windower.push(cut(ev, a, b))
        if i in restarts:  # a worker restart: state through JSON, as a Faust table would hold it
            windower = MouseWindower.from_state(json.loads(json.dumps(windower.to_state())))
    got += windower.flush("session_end")
    assert got == reference
    assert [row for w in reference for row in w.actions] == extract_actions(
        ev, SegmentParams(pause_ms=params["pause_ms"], max_points=32)
    ).tolist()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ev=mouse_streams())
def test_no_feature_is_ever_nan_or_infinite(ev):
    windows = all_windows(MouseWindower(window_actions=3), ev, splits=range(0, len(ev), 50))
    finite_everywhere(windows)
    for w in windows:
        assert len(w.actions[0]) == len(ACTION_FIELDS)
        assert w.n_events >= len(w.actions)
        assert w.start_t <= w.end_t
    assert sum(w.n_events for w in windows) <= len(ev)


@settings(max_examples=30, deadline=None)
@given(ev=mouse_streams(max_events=200))
def test_state_is_json_and_small(ev):
    windower = MouseWindower(max_points=400)
    windower.push(ev)
    text = json.dumps(windower.to_state(), allow_nan=False)
    assert len(text) <= 64 * 1024


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ev=mouse_streams(), data=st.data())
def test_advancing_the_clock_between_batches_changes_no_window(ev, data):
    from touchstone.streams.mouse_features import ANCHOR_MARGIN_MS

    params = {"window_actions": data.draw(st.integers(1, 6)), "pause_ms": data.draw(st.sampled_from([300.0, 1000.0])),
              "max_points": 32}
    reference = all_windows(MouseWindower(**params), ev)
    splits = sorted(set(data.draw(st.lists(st.integers(1, max(len(ev) - 1, 1)), max_size=12))))
    bounds = [0, *[s for s in splits if 0 < s < len(ev)], len(ev)]
    windower = MouseWindower(**params)
    got = []
    for a, b in itertools.pairwise(bounds):
        got += windower.push(cut(ev, a, b))
        if b < len(ev):
            # A collector anchors a batch no later than its queue margin before the next captured event.
            anchor = float(ev.t[b]) + data.draw(st.floats(0.0, 1.0)) * ANCHOR_MARGIN_MS
            got += windower.advance(anchor)
    got += windower.flush("session_end")
    assert got == reference


def test_a_resting_pointer_ends_its_move_before_the_next_event():
    windower = MouseWindower(window_actions=1, pause_ms=1000.0)
    assert windower.push(events(line(0.0, 0, 0, 20))) == []  # the move is still open
    assert windower.advance(190.0 + 1000.0) == []  # within pause + margin: it may go on
    closed = windower.advance(190.0 + 2000.0)
    assert [w.closed_by for w in closed] == ["count"] and len(closed[0].actions) == 1
    held = MouseWindower(window_actions=1, pause_ms=1000.0)
    held.push(events([(0.0, PRESS, 0, 0), *line(10.0, 0, 0, 20)]))
    assert held.advance(10_000.0) == []  # a drag in progress is never cut
