from __future__ import annotations

import logging
import struct
import threading
import time

import pytest
from kafka_readback import read_batches

from touchstone.collectors.batcher import BatchPolicy
from touchstone.collectors.capture import KEY, MOUSE, EventQueue, InputCapture
from touchstone.collectors.collect import QueueSource, _exclusive, make_tokenizer, run_collector, spool_path
from touchstone.collectors.privacy import KeyTokenizer
from touchstone.collectors.spool import Spool
from touchstone.config import Settings
from touchstone.contracts import MouseKind, decode_raw
from touchstone.errors import ConfigError

# A loopback port nothing listens on: the broker is "unreachable".
DEAD_BOOTSTRAP = "127.0.0.1:9"
FAST = BatchPolicy(max_events=20, max_interval_s=0.05, heartbeat_s=0.5)


class FakeKeyCode:
    def __init__(self, char: str) -> None:
        self.char = char
        self.vk = ord(char)


class FakeButton:
    name = "right"


# --- privacy gating ---


def test_full_mode_needs_the_explicit_authorisation():
    with pytest.raises(ConfigError, match="i-have-authorisation-for-full-capture"):
        make_tokenizer(Settings(), "full")
    with pytest.raises(ConfigError):
        make_tokenizer(Settings(privacy="full"))  # configured in settings only: still refused


def test_full_mode_with_authorisation_is_announced(caplog):
    with caplog.at_level(logging.WARNING):
        tokenizer = make_tokenizer(Settings(), "full", allow_full=True)
    assert tokenizer.mode == "full" and tokenizer.token("a") == "a"
    assert "FULL KEYSTROKE CAPTURE IS ON" in caplog.text


def test_the_authorisation_flag_alone_does_not_enable_full_mode():
    assert make_tokenizer(Settings(), None, allow_full=True).mode == "timing"


def test_keyed_mode_needs_a_secret_file(tmp_path):
    with pytest.raises(ConfigError):
        make_tokenizer(Settings(), "keyed")
    secret = tmp_path / "secret"
    secret.write_bytes(b"a-deployment-secret-of-32-bytes!")
    tokenizer = make_tokenizer(Settings(keyed_secret_file=str(secret)), "keyed")
    assert tokenizer.token("a").startswith("L.home#")


def test_run_collector_refuses_full_mode_before_capturing(tmp_path):
    source = QueueSource()
    with pytest.raises(ConfigError):
        run_collector(Settings(state_dir=str(tmp_path)), privacy="full", source=source, duration_s=0.1)
    assert not spool_path(Settings(state_dir=str(tmp_path))).exists()


# --- listener callbacks ---


def test_callbacks_queue_tokens_never_characters():
    capture = InputCapture(KeyTokenizer("timing"))
    for char in "Secret7":
        capture._on_press(FakeKeyCode(char))
        capture._on_release(FakeKeyCode(char))
    capture._on_click(3.0, 4.0, FakeButton(), True)
    capture._on_scroll(3.0, 4.0, 0, -2)
    events = capture.drain()
    keys = [e for e in events if e[0] == KEY]
    assert [e[3] for e in keys[:2]] == ["L.home", "L.home"]  # "S" by its zone, not by itself
    assert not any(e[3] in set("Secret7") | set("secret") for e in keys)
    assert all(isinstance(e[1], int) for e in events)
    assert [e[1] for e in events] == sorted(e[1] for e in events)
    mouse = [e for e in events if e[0] == MOUSE]
    assert mouse == [
        (MOUSE, mouse[0][1], int(MouseKind.PRESS), 3.0, 4.0, 2),
        (MOUSE, mouse[1][1], int(MouseKind.SCROLL), 3.0, 4.0, -2),
    ]


def test_rolled_over_same_class_keys_get_paired_tokens():
    # "as" typed with rollover: both keys are L.home; the slot tells which release ends which press.
    capture = InputCapture(KeyTokenizer("timing"))
    a, s = FakeKeyCode("a"), FakeKeyCode("s")
    capture._on_press(a)
    capture._on_press(s)
    capture._on_release(a)
    capture._on_release(s)
    xrecord = InputCapture(KeyTokenizer("timing"), backend="xrecord")
    xrecord._key_names = {38: "a", 39: "s"}
    for code, pressed in ((38, True), (39, True), (38, False), (39, False)):
        xrecord._on_keycode(code, pressed)
    expected = [(True, "L.home"), (True, "L.home@1"), (False, "L.home"), (False, "L.home@1")]
    assert [(e[2], e[3]) for e in capture.drain()] == expected
    assert [(e[2], e[3]) for e in xrecord.drain()] == expected


def test_event_queue_counts_what_it_drops_at_its_bound():
    queue = EventQueue(capacity=3)
    assert [queue.put((KEY, i, True, "x")) for i in range(5)] == [True, True, True, False, False]
    assert queue.dropped == 2 and queue.high_water == 3
    assert [e[1] for e in queue.drain()] == [0, 1, 2]
    assert queue.put((KEY, 9, True, "x")) and len(queue) == 1


# --- spool ownership and crash/restart ---


def test_a_second_collector_on_the_same_state_dir_is_refused(tmp_path):
    lock = tmp_path / "spool.lock"
    with _exclusive(lock), pytest.raises(ConfigError, match="another collector"), _exclusive(lock):
        pass


def _feed_keys(source: QueueSource, n: int) -> None:
    for i in range(n):
        source.queue.put((KEY, time.monotonic_ns(), i % 2 == 0, "L.home"))
        time.sleep(0.002)


def test_unreachable_broker_leaves_every_batch_in_the_spool(tmp_path):
    settings = Settings(bootstrap=DEAD_BOOTSTRAP, state_dir=str(tmp_path))
    source = QueueSource()
    feeder = threading.Thread(target=_feed_keys, args=(source, 100))
    feeder.start()
    report = run_collector(settings, user="ann", source=source, duration_s=1.0, policy=FAST, flush_timeout_s=0.5)
    feeder.join()
    assert report.events == 100 and report.delivered == 0
    spool = Spool(spool_path(settings))
    rows = spool.read(0, 1000)
    assert len(rows) == report.batches == report.spool_left
    batches = [decode_raw(r.value) for r in rows]
    assert [b.seq for b in batches] == list(range(len(batches)))
    assert sum(len(b.keys) for b in batches) == 100 and batches[-1].end


@pytest.mark.kafka
def test_next_run_sends_the_previous_runs_spool_first(tmp_path, settings):
    offline = settings.replace(bootstrap=DEAD_BOOTSTRAP, state_dir=str(tmp_path))
    source = QueueSource()
    _feed_keys(source, 30)
    first = run_collector(offline, user="ann", source=source, duration_s=0.5, policy=FAST, flush_timeout_s=0.5)
    assert first.spool_left == first.batches > 0

    online = settings.replace(state_dir=str(tmp_path))
    source = QueueSource()
    _feed_keys(source, 10)
    second = run_collector(online, user="ann", source=source, duration_s=0.5, policy=FAST)
    assert second.spool_left == 0
    assert second.session_ids[0] != first.session_ids[0]  # a restart is a new session

    got = read_batches(settings.bootstrap, settings.topic_raw, until_end=2)
    old = [(m, b) for m, b in got if b.session_id == first.session_ids[0]]
    new = [(m, b) for m, b in got if b.session_id == second.session_ids[0]]
    assert len(old) + len(new) == len(got)
    assert [b.seq for _, b in old] == list(range(first.batches))
    assert sum(len(b.keys) for _, b in old) == 30 and sum(len(b.keys) for _, b in new) == 10
    # Sessions sit in different partitions, so consumption order says nothing; the producer's
    # CreateTime does: the spooled batches were handed to Kafka before anything of the new run.
    assert max(m.timestamp()[1] for m, _ in old) <= min(m.timestamp()[1] for m, _ in new)


# --- XRecord wire decoding (no X server needed) ---


def _wire_event(kind: int, detail: int, x: int, y: int) -> bytes:
    # Core input event: type, detail, sequence, time, root, event, child, root_x, root_y, ...
    return struct.pack("=BBHIIII hh hh HBx", kind, detail, 7, 123456, 1, 1, 0, x, y, x, y, 0, 1)


def test_xrecord_dispatch_decodes_core_input_events():
    from touchstone.collectors.xrecord import XRecordListener

    got = []
    listener = object.__new__(XRecordListener)  # skip __init__: it opens X connections
    listener.on_move = lambda x, y: got.append(("move", x, y))
    listener.on_click = lambda x, y, b, p: got.append(("click", x, y, b.name, p))
    listener.on_scroll = lambda x, y, dx, dy: got.append(("scroll", x, y, dx, dy))
    listener.on_key = lambda code, pressed: got.append(("key", code, pressed))
    for raw in (
        _wire_event(6, 0, 640, -12),  # MotionNotify, negative coordinates survive
        _wire_event(4, 3, 5, 6),  # ButtonPress right
        _wire_event(5, 3, 5, 6),
        _wire_event(4, 5, 5, 6),  # wheel down: one scroll step
        _wire_event(5, 5, 5, 6),  # its release is not an event
        _wire_event(2, 38, 0, 0),  # KeyPress keycode 38
        _wire_event(3 | 0x80, 38, 0, 0),  # KeyRelease, sent-event bit set
    ):
        assert len(raw) == 32
        listener._dispatch(raw)
    assert got == [
        ("move", 640, -12),
        ("click", 5, 6, "right", True),
        ("click", 5, 6, "right", False),
        ("scroll", 5, 6, 0, -1),
        ("key", 38, True),
        ("key", 38, False),
    ]


def test_keycodes_become_tokens_through_the_keymap():
    capture = InputCapture(KeyTokenizer("timing"), backend="xrecord")
    capture._key_names = {38: "a", 50: "shift_l"}
    capture._on_keycode(50, True)
    capture._on_keycode(38, True)
    capture._on_keycode(199, False)  # unknown keycode: a class, never a guess
    assert [(e[2], e[3]) for e in capture.drain()] == [(True, "shift_l"), (True, "L.home"), (False, "other")]


def test_keysym_names_follow_the_x_conventions():
    from touchstone.collectors.privacy import key_class, normalise_key_name
    from touchstone.collectors.xrecord import keysym_name

    assert [keysym_name(k) for k in (0x61, 0x41, 0x31, 0x20, 0xE9)] == ["a", "A", "1", " ", "é"]
    assert keysym_name(0x01000000 + 0x0416) == "Ж"
    assert keysym_name(0xFFE1) == "other"  # needs libX11 for named keysyms
    assert [key_class(normalise_key_name(keysym_name(k))) for k in (0x61, 0x20, 0x31)] == ["L.home", "space", "digit"]


# --- identity ---


def test_a_new_user_in_the_user_file_ends_the_session_and_starts_another(tmp_path, monkeypatch):
    monkeypatch.setattr("touchstone.collectors.collect._USER_FILE_POLL_S", 0.05)
    settings = Settings(bootstrap=DEAD_BOOTSTRAP, state_dir=str(tmp_path / "state"))
    user_file = tmp_path / "agent"
    user_file.write_text("ann\n")
    source = QueueSource()

    def script() -> None:
        _feed_keys(source, 10)
        time.sleep(0.3)
        user_file.write_text("bob\n")
        time.sleep(0.3)
        _feed_keys(source, 6)

    driver = threading.Thread(target=script)
    driver.start()
    report = run_collector(
        settings, user_file=user_file, source=source, duration_s=1.2, policy=FAST, flush_timeout_s=0.2
    )
    driver.join()
    assert len(report.session_ids) == 2
    batches = [decode_raw(r.value) for r in Spool(spool_path(settings)).read(0, 1000)]
    ann = [b for b in batches if b.session_id == report.session_ids[0]]
    bob = [b for b in batches if b.session_id == report.session_ids[1]]
    assert len(ann) + len(bob) == len(batches)
    assert {b.user for b in ann} == {"ann"} and {b.user for b in bob} == {"bob"}
    assert ann[-1].end and bob[-1].end and [b.seq for b in bob] == list(range(len(bob)))
    assert sum(len(b.keys) for b in ann) == 10 and sum(len(b.keys) for b in bob) == 6


def test_an_explicit_user_wins_over_the_user_file_and_a_missing_file_keeps_the_user(tmp_path):
    from touchstone.collectors.collect import read_user_file

    assert read_user_file(tmp_path / "absent") is None
    (tmp_path / "empty").write_text("\n")
    assert read_user_file(tmp_path / "empty") is None
    (tmp_path / "agent").write_text("  carol  \nsecond line ignored\n")
    assert read_user_file(tmp_path / "agent") == "carol"
    settings = Settings(bootstrap=DEAD_BOOTSTRAP, state_dir=str(tmp_path / "state"))
    report = run_collector(
        settings, user="dave", user_file=tmp_path / "agent", source=QueueSource(), duration_s=0.2, policy=FAST,
        flush_timeout_s=0.1,
    )  # fmt: skip
    users = {decode_raw(r.value).user for r in Spool(spool_path(settings)).read(0, 100)}
    assert users == {"dave"} and len(report.session_ids) == 1
