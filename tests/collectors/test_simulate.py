"""The behaviour simulator: valid, reproducible batches cut like the collector's, realistic rates, takeovers
that change behaviour but not identity, and users who overlap in every feature yet differ jointly."""

from __future__ import annotations

import itertools
import time
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from touchstone.collectors.batcher import BatchPolicy
from touchstone.collectors.privacy import CLASS_TOKENS
from touchstone.collectors.sim_mouse import Workstation
from touchstone.collectors.simulate import (
    SIM_COLLECTOR_VERSION,
    BatchTruth,
    Fleet,
    SimulatedSession,
    Takeover,
    UserProfile,
    parse_takeover,
    rng_for,
)
from touchstone.contracts import KeyEvents, Limits, MouseEvents, MouseKind, RawBatch, decode_raw, encode_raw

START_MS = 1_700_000_000_000.0
POLICY = BatchPolicy()
POLL_SLACK_MS = 10.0  # the simulated sender loop notices a due batch within 10 ms
LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz")


# --- helpers ---


def by_session(items: list[tuple[RawBatch, BatchTruth]]) -> dict[str, list[tuple[RawBatch, BatchTruth]]]:
    sessions: dict[str, list[tuple[RawBatch, BatchTruth]]] = defaultdict(list)
    for batch, truth in items:
        sessions[batch.session_id].append((batch, truth))
    return sessions


def key_presses(keys: KeyEvents) -> tuple[np.ndarray, list[str]]:
    return keys.t[keys.down], [k for k, d in zip(keys.key, keys.down, strict=True) if d]


def strokes(keys: KeyEvents) -> list[tuple[str, float, float]]:
    """(key name, press, release) per keystroke, pairing each press with the next release of that key."""
    down: dict[str, float] = {}
    out = []
    for t, pressed, key in zip(keys.t.tolist(), keys.down.tolist(), keys.key, strict=True):
        if pressed:
            down[key] = t
        elif key in down:
            out.append((key, down.pop(key), t))
    out.sort(key=lambda s: s[1])
    return out


def split_keys(keys: KeyEvents, at_ms: float) -> tuple[KeyEvents, KeyEvents]:
    before = keys.t < at_ms
    names = np.asarray(keys.key, dtype=object)
    return tuple(  # type: ignore[return-value]
        KeyEvents(t=keys.t[part], down=keys.down[part], key=tuple(names[part])) for part in (before, ~before)
    )


def letter_holds(keys: KeyEvents) -> np.ndarray:
    return np.array([release - press for key, press, release in strokes(keys) if key in LETTERS])


def click_holds(mouse: MouseEvents) -> np.ndarray:
    holds, pressed_at = [], None
    for t, kind in zip(mouse.t.tolist(), mouse.kind.tolist(), strict=True):
        if kind == MouseKind.PRESS:
            pressed_at = t
        elif kind == MouseKind.RELEASE and pressed_at is not None:
            holds.append(t - pressed_at)
            pressed_at = None
    return np.array(holds)


def overlap(a: np.ndarray, b: np.ndarray, low: float, high: float, bins: int = 40) -> float:
    """Overlap coefficient of two samples' distributions of log values (1 = identical, 0 = disjoint)."""
    edges = np.linspace(np.log(low), np.log(high), bins + 1)
    pa, _ = np.histogram(np.log(a), edges)
    pb, _ = np.histogram(np.log(b), edges)
    return float(np.minimum(pa / pa.sum(), pb / pb.sum()).sum())


def session(user: str, *, duration_s: float, start_ms: float = START_MS, **kwargs: object) -> SimulatedSession:
    return SimulatedSession(
        UserProfile.draw(user, seed=0),
        duration_s=duration_s,
        session_start_ms=start_ms,
        workstation=Workstation.draw("ws-test", rng_for(0, "ws", user)),
        **kwargs,  # type: ignore[arg-type]
    )


# --- fixtures ---


@pytest.fixture(scope="module")
def fleet_run() -> list[tuple[RawBatch, BatchTruth]]:
    fleet = Fleet(6, seed=11, start_ms=START_MS, takeovers=[Takeover("agent-002", 90.0, "agent-004")])
    return list(fleet.iter_labelled(240.0))


@pytest.fixture(scope="module")
def genuine_events() -> dict[tuple[str, int], tuple[KeyEvents, MouseEvents]]:
    """Two 10-minute sessions (on different days) of each of 10 users, key names in clear."""
    out = {}
    for i in range(10):
        for day in range(2):
            s = session(f"user-{i}", duration_s=600.0, start_ms=START_MS + day * 86_400_000.0, privacy="full")
            out[(f"user-{i}", day)] = s.events()
    return out


# --- reproducibility and the contract ---


def test_same_seed_gives_the_same_batches_and_another_seed_does_not():
    def run(seed: int) -> list[bytes]:
        return [encode_raw(b) for b in Fleet(3, seed=seed, start_ms=START_MS).iter_batches(30.0)]

    first = run(5)
    assert first == run(5)
    assert first != run(6)
    one = session("user-0", duration_s=20.0)
    assert [encode_raw(b) for b in one.iter_batches()] == [encode_raw(b) for b in one.iter_batches()]


def test_profiles_are_drawn_per_user_and_seed():
    a, b = UserProfile.draw("agent-001", seed=1), UserProfile.draw("agent-001", seed=1)
    assert a.typing.dd_mu == b.typing.dd_mu and np.array_equal(a.typing.hold_mu, b.typing.hold_mu)
    assert UserProfile.draw("agent-002", seed=1).typing.dd_mu != a.typing.dd_mu
    assert UserProfile.draw("agent-001", seed=2).typing.dd_mu != a.typing.dd_mu


def test_batches_round_trip_through_the_raw_contract(fleet_run):
    for batch, _ in fleet_run:
        decoded = decode_raw(encode_raw(batch), Limits())
        assert (decoded.session_id, decoded.user, decoded.host, decoded.seq) == (
            batch.session_id,
            batch.user,
            batch.host,
            batch.seq,
        )
        assert decoded.collector == SIM_COLLECTOR_VERSION and decoded.privacy == "timing"
        assert (decoded.heartbeat, decoded.end) == (batch.heartbeat, batch.end)
        np.testing.assert_array_equal(decoded.keys.t, batch.keys.t)
        np.testing.assert_array_equal(decoded.mouse.x, batch.mouse.x)
        assert decoded.keys.key == batch.keys.key
        assert set(batch.keys.key) <= CLASS_TOKENS  # timing mode: classes only, never a character


def test_sessions_are_ordered_numbered_and_anchored(fleet_run):
    sessions = by_session(fleet_run)
    assert len(sessions) == 6
    for items in sessions.values():
        batches = [b for b, _ in items]
        assert [b.seq for b in batches] == list(range(len(batches)))
        assert [b.end for b in batches] == [False] * (len(batches) - 1) + [True]
        assert len({(b.user, b.host, b.session_start) for b in batches}) == 1
        monos = np.array([b.mono for b in batches])
        assert (np.diff(monos) >= 0).all()
        for stream in ("keys", "mouse"):
            t = np.concatenate([getattr(b, stream).t for b in batches])
            assert (np.diff(t) >= 0).all(), f"{stream} times go backwards across batches"
        for b in batches:
            for t in (b.keys.t, b.mouse.t):
                if t.size:
                    assert t[-1] <= b.mono
                    # capture time = wall - (mono - t) = session start + t
                    assert b.capture_time(float(t[0])) == pytest.approx(b.session_start + t[0], abs=1e-3)
            assert b.wall == pytest.approx(b.session_start + b.mono, abs=1e-3)


def test_batches_are_cut_as_the_collector_cuts_them(fleet_run):
    interval_ms = POLICY.max_interval_s * 1000
    heartbeat_ms = POLICY.heartbeat_s * 1000
    for items in by_session(fleet_run).values():
        previous = 0.0
        for batch, _ in items:
            assert batch.n_events <= POLICY.max_events
            times = np.concatenate([batch.keys.t, batch.mouse.t])
            if batch.heartbeat:
                assert times.size == 0
                assert batch.mono - previous == pytest.approx(heartbeat_ms, abs=POLL_SLACK_MS)
            elif times.size:
                # nothing arrives for heartbeat_s after a batch without a heartbeat being sent
                assert times.min() - previous <= heartbeat_ms + POLL_SLACK_MS, "idle gap without a heartbeat"
                if not batch.end:
                    assert times.max() - times.min() <= interval_ms + POLL_SLACK_MS
            previous = batch.mono
    assert any(b.heartbeat for b, _ in fleet_run), "idle periods should produce heartbeats"


def test_fleet_batches_come_in_capture_order(fleet_run):
    walls = [b.wall for b, _ in fleet_run]
    assert walls == sorted(walls)


# --- realism ---


def test_rates_are_those_of_busy_agents(fleet_run):
    duration_s = 240.0
    events = defaultdict(int)
    move_intervals, typing_rates = [], []
    for items in by_session(fleet_run).values():
        batches = [b for b, _ in items]
        events[batches[0].user] = sum(b.n_events for b in batches)
        mouse_t = np.concatenate([b.mouse.t[b.mouse.kind == MouseKind.MOVE] for b in batches])
        gaps = np.diff(mouse_t)
        move_intervals.append(np.median(gaps[gaps < 50]))
        keys = KeyEvents(
            t=np.concatenate([b.keys.t for b in batches]),
            down=np.concatenate([b.keys.down for b in batches]),
            key=tuple(k for b in batches for k in b.keys.key),
        )
        t, tokens = key_presses(keys)
        letters = np.array([tok[:2] in ("L.", "R.") for tok in tokens], dtype=bool)
        latency = np.diff(t)[letters[1:] & letters[:-1]]
        if (latency < 1000).sum() >= 20:  # some agents barely type in four minutes
            typing_rates.append(1000.0 / np.median(latency[latency < 1000]))
    per_agent = np.array(list(events.values())) / duration_s
    assert 15 <= per_agent.mean() <= 45, per_agent
    assert (per_agent > 3).all() and (per_agent < 90).all(), per_agent
    assert all(1000 / 125 - 0.5 <= dt <= 1000 / 60 + 0.5 for dt in move_intervals), move_intervals
    assert len(typing_rates) >= 4
    assert 3 <= np.median(typing_rates) <= 8 and min(typing_rates) >= 2, typing_rates


def test_mouse_movements_are_curved_bell_shaped_and_clicks_human():
    _, mouse = session("user-3", duration_s=300.0, privacy="full").events()
    moves = mouse.kind == MouseKind.MOVE
    t, x, y = mouse.t[moves], mouse.x[moves], mouse.y[moves]
    straightness, peak_at = [], []
    for idx in np.split(np.arange(t.size), np.flatnonzero(np.diff(t) > 100) + 1):
        if idx.size < 10:
            continue
        step = np.hypot(np.diff(x[idx]), np.diff(y[idx]))
        chord = np.hypot(x[idx[-1]] - x[idx[0]], y[idx[-1]] - y[idx[0]])
        if chord < 100:
            continue
        straightness.append(chord / step.sum())
        speed = step / np.diff(t[idx])
        peak_at.append((t[idx][1:][np.argmax(speed)] - t[idx[0]]) / (t[idx[-1]] - t[idx[0]]))
    assert len(straightness) > 20
    assert 0.75 <= np.median(straightness) < 0.99  # paths bow, but are not wiggly
    assert 0.2 <= np.median(peak_at) <= 0.55  # speed rises, peaks, then a longer deceleration
    assert 50 <= np.median(click_holds(mouse)) <= 200


def test_users_overlap_in_each_feature_but_differ_jointly(genuine_events):
    users = sorted({u for u, _ in genuine_events})
    holds = {key: letter_holds(keys) for key, (keys, _) in genuine_events.items()}
    clicks = {key: click_holds(mouse) for key, (_, mouse) in genuine_events.items()}
    for sample, (low, high) in ((holds, (15, 600)), (clicks, (15, 600))):
        between = [overlap(sample[(a, 0)], sample[(b, 0)], low, high) for a, b in itertools.combinations(users, 2)]
        within = [overlap(sample[(u, 0)], sample[(u, 1)], low, high) for u in users]
        assert 0.2 <= np.mean(between) <= 0.9, np.mean(between)
        assert np.mean(within) > np.mean(between) + 0.05  # a user's days resemble each other more


def _window_features(keys: KeyEvents, size: int = 50) -> np.ndarray:
    """Per window of ``size`` keystrokes: log medians of letter hold, letter-letter latency, space hold,
    space-letter latency, the letter-letter release-to-press median, and the spread of log holds."""
    rows = []
    seq = strokes(keys)
    for start in range(0, len(seq) - size, size):
        w = seq[start : start + size]
        pairs = [(a, b) for a, b in itertools.pairwise(w) if b[1] - a[1] < 1500]
        hold = [r - p for k, p, r in w if k in LETTERS]
        space = [r - p for k, p, r in w if k == "space"]
        dd = [b[1] - a[1] for a, b in pairs if a[0] in LETTERS and b[0] in LETTERS]
        ud = [b[1] - a[2] for a, b in pairs if a[0] in LETTERS and b[0] in LETTERS]
        sd = [b[1] - a[1] for a, b in pairs if a[0] == "space" and b[0] in LETTERS]
        if min(len(hold), len(space), len(dd), len(sd)) < 3:
            continue
        log_hold = np.log(hold)
        rows.append([np.median(log_hold), np.median(np.log(dd)), np.median(np.log(space)),
                     np.median(np.log(sd)), np.median(ud) / 100.0, np.std(log_hold)])  # fmt: skip
    return np.array(rows)


def test_identifying_a_user_needs_several_features(genuine_events):
    """Nearest-centroid identification of 50-keystroke windows (enrolled on day 0, tested on day 1)."""
    users = sorted({u for u, _ in genuine_events})
    enrol = {u: _window_features(genuine_events[(u, 0)][0]) for u in users}
    test = {u: _window_features(genuine_events[(u, 1)][0]) for u in users}

    def accuracy(columns: list[int]) -> float:
        centre = {u: np.median(enrol[u][:, columns], axis=0) for u in users}
        scale = np.median([enrol[u][:, columns].std(axis=0) for u in users], axis=0)
        hits = total = 0
        for u in users:
            for row in test[u][:, columns]:
                distance = {v: float((((row - centre[v]) / scale) ** 2).sum()) for v in users}
                hits += min(distance, key=distance.__getitem__) == u
                total += 1
        return hits / total

    chance = 1 / len(users)
    single = [accuracy([c]) for c in range(6)]
    joint = accuracy(list(range(6)))
    assert max(single) < 0.6, single  # no feature gives users away on its own
    assert joint >= max(single) + 0.1, (joint, single)
    assert 3 * chance < joint < 0.98, joint


# --- takeover ---


def test_takeover_keeps_identity_and_labels_the_truth(fleet_run):
    items = next(v for v in by_session(fleet_run).values() if v[0][0].user == "agent-002")
    assert {(b.user, b.host) for b, _ in items} == {("agent-002", items[0][0].host)}
    compromised = [t.compromised for _, t in items]
    assert compromised[0] is False and compromised[-1] is True
    assert compromised == sorted(compromised)  # once taken over, stays taken over
    assert all(t.actor == "agent-004" for _, t in items if t.compromised)
    assert sum(t.impostor_events for _, t in items) > 0
    assert all(t.impostor_events == 0 for _, t in items if not t.compromised)
    others = [t for v in by_session(fleet_run).values() if v[0][0].user != "agent-002" for _, t in v]
    assert not any(t.compromised or t.impostor_events for t in others)


def test_takeover_events_split_at_the_switch():
    s = session("user-1", duration_s=120.0, takeover_at_s=60.0, impostor_profile=UserProfile.draw("user-9"))
    assert s.takeover_ms is not None and s.switch_ms is not None and s.switch_ms > s.takeover_ms
    items = list(s.iter_labelled())
    keys, mouse = s.events()
    t = np.concatenate([keys.t, mouse.t])
    assert not ((t >= s.takeover_ms) & (t < s.switch_ms)).any()  # the desk is empty during the handover
    assert sum(truth.impostor_events for _, truth in items) == int((t >= s.switch_ms).sum())
    # every key pressed by the genuine user was released before they left
    before = keys.t < s.takeover_ms
    assert keys.down[before].sum() == (~keys.down[before]).sum()


def test_takeover_changes_typing_more_than_time_does():
    """Median letter hold before vs after 300 s: with an impostor it shifts far more than a user's own drift."""
    shift_takeover, shift_genuine = [], []
    for i in range(8):
        victim, impostor = f"user-{i}", UserProfile.draw(f"outsider-{i}")
        for takeover, out in ((True, shift_takeover), (False, shift_genuine)):
            extra = {"takeover_at_s": 300.0, "impostor_profile": impostor} if takeover else {}
            keys, _ = session(victim, duration_s=600.0, privacy="full", **extra).events()
            early, late = split_keys(keys, 300_000.0)
            out.append(abs(np.log(np.median(letter_holds(early))) - np.log(np.median(letter_holds(late)))))
    assert np.mean(shift_takeover) > 2 * np.mean(shift_genuine), (shift_takeover, shift_genuine)
    assert np.mean(shift_takeover) > 0.1


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31),
    duration_s=st.floats(1.0, 40.0),
    takeover=st.one_of(st.none(), st.floats(0.0, 0.99)),
)
def test_any_session_is_a_valid_batch_sequence(seed, duration_s, takeover):
    impostor = {"takeover_at_s": takeover * duration_s, "impostor_profile": UserProfile.draw("x")} if takeover else {}
    s = SimulatedSession(
        UserProfile.draw(f"u{seed}", seed), duration_s=duration_s, session_start_ms=START_MS, seed=seed, **impostor
    )
    batches = [decode_raw(encode_raw(b)) for b in s.iter_batches()]
    assert [b.seq for b in batches] == list(range(len(batches)))
    assert batches[-1].end and batches[-1].mono == pytest.approx(duration_s * 1000.0)
    assert all(b.mono <= duration_s * 1000.0 for b in batches)


# --- fleet features ---


def test_realtime_paces_batches_by_their_capture_time():
    speed = 20.0
    fleet = Fleet(2, seed=3, start_ms=START_MS, stagger_s=0.5)
    began = time.monotonic()
    batches = list(fleet.iter_batches(4.0, realtime=True, speed=speed))
    elapsed = time.monotonic() - began
    expected = (batches[-1].wall - START_MS) / 1000.0 / speed
    assert expected * 0.9 <= elapsed <= expected + 1.0


def test_history_gives_genuine_past_sessions_for_enrolment():
    fleet = Fleet(3, seed=4, start_ms=START_MS, takeovers=[Takeover("agent-001", 1.0, "agent-000")])
    history = list(fleet.history(60.0, sessions=2))
    sessions = {b.session_id: b.user for b in history}
    assert sorted(sessions.values()) == ["agent-000", "agent-000", "agent-001", "agent-001", "agent-002", "agent-002"]
    assert all(b.wall < START_MS for b in history)
    assert [b.wall for b in history] == sorted(b.wall for b in history)
    live = {b.session_id for b in fleet.iter_batches(5.0)}
    assert not live & set(sessions)


def test_a_run_can_start_at_another_time():
    fleet = Fleet(2, seed=4, start_ms=START_MS, stagger_s=1.0)
    later = START_MS + 3_600_000.0
    batches = list(fleet.iter_batches(5.0, start_ms=later))
    assert all(later <= b.session_start <= later + 1000.0 for b in batches)
    assert all(START_MS <= b.session_start <= START_MS + 1000.0 for b in fleet.iter_batches(5.0))


def test_insiders_bring_their_own_profile_and_outsiders_are_drawn():
    fleet = Fleet(3, seed=4, start_ms=START_MS)
    assert fleet.profile("agent-001") is fleet.profiles["agent-001"]
    assert fleet.profile("outsider-1").user_id == "outsider-1"
    with pytest.raises(ValueError, match="unknown user"):
        Fleet(3, takeovers=[Takeover("agent-007", 1.0, "x")])


def test_key_tokens_follow_the_privacy_mode():
    full = session("user-2", duration_s=60.0, privacy="full")
    names = set(full.events()[0].key)
    assert names & LETTERS and "space" in names
    assert set(session("user-2", duration_s=60.0).events()[0].key) <= CLASS_TOKENS
    constant = session("user-2", duration_s=60.0, privacy="keyed", tokenize=lambda name: "k#0")
    assert set(constant.events()[0].key) == {"k#0"}
    with pytest.raises(ValueError, match="tokenize"):
        session("user-2", duration_s=60.0, privacy="keyed")


@pytest.mark.parametrize("spec", ["agent-1", "@5", "agent-1@soon", "agent-1@-3", "agent-1@nan"])
def test_bad_takeover_specs_are_refused(spec):
    with pytest.raises(ValueError, match="USER@SECONDS"):
        parse_takeover(spec)
