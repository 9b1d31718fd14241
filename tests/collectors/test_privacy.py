"""Key tokenisation by privacy mode: what each mode lets out, and that timing mode names no character."""

from __future__ import annotations

import os
import string
import subprocess
import sys

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from touchstone.collectors.privacy import (
    CLASS_TOKENS,
    KeyEventTokenizer,
    KeyTokenizer,
    aalto_key_name,
    key_class,
    normalise_key_name,
    normalise_pynput_key,
    token_base,
    token_class,
)
from touchstone.config import Settings
from touchstone.errors import ConfigError

SECRET = b"a deployment secret of 32 bytes!"
PHRASE = "The quick brown fox jumps over the lazy dog 0123456789"
TYPABLE = string.ascii_letters + string.digits + string.punctuation + " "


def typed_tokens(tokenizer: KeyTokenizer, text: str) -> list[str]:
    events = KeyEventTokenizer(tokenizer)
    tokens = []
    for char in text:
        tokens.append(events.press(char))
        tokens.append(events.release(char))
    return tokens


def test_timing_tokens_reveal_no_typed_character():
    tokens = typed_tokens(KeyTokenizer(), PHRASE)
    typed = set(PHRASE.lower()) - {" "}
    assert all(token_base(t) in CLASS_TOKENS for t in tokens)
    assert not any(t in typed for t in tokens), "a token equals a typed character"
    payload = " ".join(tokens).lower()
    for word in PHRASE.lower().split():
        if len(word) >= 3:
            assert word not in payload


@given(st.text(alphabet=TYPABLE, min_size=1, max_size=60))
def test_timing_tokens_come_from_the_fixed_vocabulary(text):
    for token in typed_tokens(KeyTokenizer(), text):
        assert token_base(token) in CLASS_TOKENS
        assert len(token) <= 64


def test_every_letter_class_covers_several_letters_and_digits_share_one():
    classes: dict[str, set[str]] = {}
    for letter in string.ascii_lowercase:
        classes.setdefault(key_class(letter), set()).add(letter)
    assert all(len(letters) >= 2 for letters in classes.values()), classes
    assert {key_class(d) for d in string.digits} == {"digit"}


def test_keyed_tokens_are_stable_per_secret_and_differ_across_secrets():
    first = KeyTokenizer("keyed", secret=SECRET)
    again = KeyTokenizer("keyed", secret=SECRET)
    other = KeyTokenizer("keyed", secret=b"another secret, also 32 bytes..")
    names = ["a", "b", "space", "shift_r", "7", ","]
    assert [first.token(n) for n in names] == [again.token(n) for n in names]
    assert all(first.token(n) != other.token(n) for n in names)
    assert len({first.token(n) for n in names}) == len(names)
    for name in names:
        token = first.token(name)
        assert token.startswith(key_class(name) + "#")
        assert token_class(token) == key_class(name)


def test_keyed_mode_needs_a_real_secret():
    with pytest.raises(ValueError, match="secret"):
        KeyTokenizer("keyed")
    with pytest.raises(ValueError, match="secret"):
        KeyTokenizer("keyed", secret=b"short")


def test_full_mode_needs_the_explicit_flag():
    with pytest.raises(ValueError, match="allow_full"):
        KeyTokenizer("full")
    full = KeyTokenizer("full", allow_full=True)
    assert full.token("A") == "a"
    assert full.token("Shift_R") == "shift_r"


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError):
        KeyTokenizer("plain")


def test_from_settings_reads_the_secret_file(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET + b"\n")
    tokenizer = KeyTokenizer.from_settings(Settings(privacy="keyed", keyed_secret_file=str(secret_file)))
    assert tokenizer.token("a") == KeyTokenizer("keyed", secret=SECRET).token("a")
    with pytest.raises(ConfigError):
        KeyTokenizer.from_settings(Settings(privacy="keyed"))
    with pytest.raises(ConfigError):
        KeyTokenizer.from_settings(Settings(privacy="full"))


@pytest.mark.parametrize(
    ("name", "expected"),
    [("A", "a"), (">", "."), ("?", "/"), ("!", "1"), (" ", "space"), ("Return", "enter"), ("BKSP", "backspace"),
     ("ARW_LEFT", "left"), ("NUM_6", "6"), ("\x01", "a"), ("Shift_R", "shift_r"), ("", "other")],
)
def test_normalise_key_name(name, expected):
    assert normalise_key_name(name) == expected


@given(st.text(max_size=40))
@example("0000000000000000000000000000000\r0")  # a control character just inside the 32-character cut
def test_normalised_names_never_hold_separators(name):
    normalised = normalise_key_name(name)
    assert ">" not in normalised and "#" not in normalised
    assert normalise_key_name(normalised) == normalised or len(normalised) == 1


def test_aalto_keycode_decides_and_letter_is_the_fallback():
    assert aalto_key_name("", 69) == "e"
    assert aalto_key_name("E", 69) == "e"
    assert aalto_key_name("SHIFT", 16) == "shift"
    assert aalto_key_name(" ", 32) == "space"
    assert aalto_key_name(",", 188) == ","
    assert aalto_key_name("é", 0) == "é"
    assert aalto_key_name("", 0) == "other"


class FakeKey:
    """Duck-typed pynput Key member (has a name, no char)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.value = object()


class FakeKeyCode:
    def __init__(self, char: str | None = None, vk: int | None = None) -> None:
        self.char = char
        self.vk = vk


@pytest.mark.parametrize(
    ("key", "expected"),
    [(FakeKeyCode("Q"), "q"), (FakeKeyCode("@"), "2"), (FakeKey("shift"), "shift_l"), (FakeKey("shift_r"), "shift_r"),
     (FakeKey("space"), "space"), (FakeKey("f5"), "f5"), (FakeKeyCode(None, 0xFFB3), "3"),
     (FakeKeyCode(None, 1), "other"), (object(), "other")],
)
def test_normalise_pynput_key_without_a_display(key, expected):
    assert normalise_pynput_key(key) == expected


@pytest.mark.xvfb
def test_real_pynput_keys_under_xvfb():
    from xvfb_session import ensure_tools, xvfb_display

    reason = ensure_tools()
    if reason is not None:
        pytest.skip(reason)
    # pynput picks its backend at import, so it is imported in a process that has the display.
    code = (
        "from pynput import keyboard\n"
        "from touchstone.collectors.privacy import normalise_pynput_key as n\n"
        "print(n(keyboard.Key.shift_r), n(keyboard.Key.backspace), n(keyboard.KeyCode.from_char('x')))\n"
    )
    with xvfb_display() as display:
        out = subprocess.run(
            [sys.executable, "-c", code], env={**os.environ, "DISPLAY": display}, capture_output=True, text=True,
            timeout=60, check=False,
        )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["shift_r", "backspace", "x"]


def test_event_tokenizer_pairs_same_class_keys_held_together():
    events = KeyEventTokenizer(KeyTokenizer())
    a_down, s_down = events.press("a"), events.press("s")
    assert a_down == "L.home" and s_down == "L.home@1"
    assert events.release("a") == a_down
    assert events.press("d") == "L.home"  # slot 0 is free again
    assert events.release("s") == s_down
    assert events.press("d") == "L.home"  # auto-repeat keeps the token
    assert token_class(s_down) == "L.home"


def test_event_tokenizer_needs_no_slots_when_keys_have_their_own_token():
    events = KeyEventTokenizer(KeyTokenizer("keyed", secret=SECRET))
    a_down, s_down = events.press("a"), events.press("s")
    assert "@" not in a_down + s_down and a_down != s_down


def test_class_tokens_that_are_key_names_classify_as_themselves():
    for token in CLASS_TOKENS:
        assert token_class(token) == token
