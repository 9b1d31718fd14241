"""Key tokenisation by privacy mode: what a collector is allowed to say about each key.

Every key event leaves the workstation as a *token*, chosen by the privacy mode:

``timing`` (default)
    A coarse class from a fixed vocabulary (:data:`CLASS_TOKENS`): letters by hand
    and keyboard row (``L.top``, ``R.home``...), ``digit``, ``space``, ``erase``
    (backspace/delete), ``enter``, modifiers by side (``shift_l``, ``shift_r``...),
    ``nav``, ``punct``, ``fn``, ``esc``, ``other``. Every letter class stands for at
    least two letters and all digits share one class, so no token names a character.
``keyed``
    ``<class>#<hex>``: the timing class followed by a truncated HMAC-SHA256 of the key
    name under a deployment secret. Per-key digraphs become possible, and so does
    frequency analysis: with enough text the hashes can be matched to letters. Still
    sensitive, hence off by default.
``full``
    The normalised key name itself (``a``, ``space``, ``shift_r``). Needs an explicit
    ``allow_full=True`` so it cannot be switched on by a typo in a config file.

Two keys of one class can be down at once (typing "as" with rollover), and then a
bare class token could not say which release ends which press. Events are therefore
tokenised by a per-session :class:`KeyEventTokenizer`, which gives the second of two
held same-class keys a pairing slot (``L.home@1``): it tells which release belongs
to which press and nothing about the keys.

Key names are normalised first (:func:`normalise_key_name`): lower case, shifted
symbols folded onto their US-layout base key (``>`` is the ``.`` key), so a key's
identity does not depend on the shift state. Letter zones assume a QWERTY layout.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from pathlib import Path
from typing import Any

from touchstone.config import Settings
from touchstone.errors import ConfigError

__all__ = [
    "CLASS_TOKENS",
    "KeyTokenizer",
    "aalto_key_name",
    "key_class",
    "normalise_key_name",
    "KeyEventTokenizer",
    "normalise_pynput_key",
    "token_base",
    "token_class",
]

log = logging.getLogger(__name__)

MIN_SECRET_BYTES = 16
KEYED_HEX_CHARS = 12
_KEYED_DOMAIN = b"touchstone/key/1\x00"

# QWERTY letter zones by hand and row; every zone holds at least two letters.
_LETTER_ZONES: dict[str, str] = {}
for _zone, _letters in (
    ("L.top", "qwert"),
    ("L.home", "asdfg"),
    ("L.bottom", "zxcvb"),
    ("R.top", "yuiop"),
    ("R.home", "hjkl"),
    ("R.bottom", "nm"),
):
    for _letter in _letters:
        _LETTER_ZONES[_letter] = _zone

PUNCTUATION = frozenset("`-=[]\\;',./")
# Shifted symbols of a US layout, folded onto the key that produces them.
_SHIFTED = dict(zip('~!@#$%^&*()_+{}|:"<>?', "`1234567890-=[]\\;',./", strict=True))

_NAMED_CLASSES: dict[str, str] = {
    "space": "space",
    "backspace": "erase",
    "delete": "erase",
    "enter": "enter",
    "tab": "tab",
    "esc": "esc",
    "caps_lock": "caps",
    "shift": "shift",
    "shift_l": "shift_l",
    "shift_r": "shift_r",
    "ctrl": "ctrl",
    "ctrl_l": "ctrl_l",
    "ctrl_r": "ctrl_r",
    "alt": "alt",
    "alt_l": "alt_l",
    "alt_r": "alt_r",
    "alt_gr": "alt_r",
    "cmd": "cmd",
    "cmd_l": "cmd_l",
    "cmd_r": "cmd_r",
    "up": "nav",
    "down": "nav",
    "left": "nav",
    "right": "nav",
    "home": "nav",
    "end": "nav",
    "page_up": "nav",
    "page_down": "nav",
    "insert": "nav",
}

CLASS_TOKENS: frozenset[str] = frozenset(
    {*_LETTER_ZONES.values(), *_NAMED_CLASSES.values(), "digit", "punct", "fn", "other"}
)

# Spellings seen in pynput, browsers (Aalto LETTER column) and X11, mapped to one name.
_ALIASES: dict[str, str] = {
    " ": "space",
    "\t": "tab",
    "\r": "enter",
    "\n": "enter",
    "\x08": "backspace",
    "\x7f": "delete",
    "\x1b": "esc",
    "return": "enter",
    "kp_enter": "enter",
    "bksp": "backspace",
    "back_space": "backspace",
    "del": "delete",
    "escape": "esc",
    "caps": "caps_lock",
    "capslock": "caps_lock",
    "control": "ctrl",
    "control_l": "ctrl_l",
    "control_r": "ctrl_r",
    "meta": "cmd",
    "super": "cmd",
    "super_l": "cmd_l",
    "super_r": "cmd_r",
    "win": "cmd",
    "arw_left": "left",
    "arw_right": "right",
    "arw_up": "up",
    "arw_down": "down",
    "arrowleft": "left",
    "arrowright": "right",
    "arrowup": "up",
    "arrowdown": "down",
    "pgup": "page_up",
    "pgdn": "page_down",
    "pageup": "page_up",
    "pagedown": "page_down",
    "prior": "page_up",
    "next": "page_down",
    "ins": "insert",
    "altgr": "alt_gr",
    "iso_level3_shift": "alt_gr",
}
_NUMPAD_PREFIXES = ("num_", "kp_")

# JavaScript keyCode values (the Aalto KEYCODE column) of keys whose name the code settles.
_JS_KEYCODES: dict[int, str] = {
    8: "backspace",
    9: "tab",
    13: "enter",
    16: "shift",  # browsers do not say which shift
    17: "ctrl",
    18: "alt",
    19: "pause",
    20: "caps_lock",
    27: "esc",
    32: "space",
    33: "page_up",
    34: "page_down",
    35: "end",
    36: "home",
    37: "left",
    38: "up",
    39: "right",
    40: "down",
    45: "insert",
    46: "delete",
    59: ";",
    61: "=",
    91: "cmd_l",
    92: "cmd_r",
    93: "menu",
    106: "*",
    107: "+",
    109: "-",
    110: ".",
    111: "/",
    144: "num_lock",
    145: "scroll_lock",
    173: "-",
    186: ";",
    187: "=",
    188: ",",
    189: "-",
    190: ".",
    191: "/",
    192: "`",
    219: "[",
    220: "\\",
    221: "]",
    222: "'",
}
_JS_KEYCODES.update({code: chr(code).lower() for code in range(65, 91)})
_JS_KEYCODES.update({code: str(code - 48) for code in range(48, 58)})
_JS_KEYCODES.update({code: str(code - 96) for code in range(96, 106)})
_JS_KEYCODES.update({code: f"f{code - 111}" for code in range(112, 136)})

# pynput's generic modifiers are the left-hand keys on its Xorg and win32 backends.
_PYNPUT_GENERIC = {"shift": "shift_l", "ctrl": "ctrl_l", "alt": "alt_l", "cmd": "cmd_l"}
# Keypad digit keysyms (X11) and virtual keys (win32), reported by pynput without a char.
_KEYPAD_VK = {**{0xFFB0 + d: str(d) for d in range(10)}, **{96 + d: str(d) for d in range(10)}}


def _normalise_char(char: str) -> str:
    if char in _ALIASES:
        return _ALIASES[char]
    if "\x01" <= char <= "\x1a":  # Ctrl+letter arrives as a control character
        return chr(ord(char) + 96)
    char = _SHIFTED.get(char, char).lower()
    if char.isprintable():
        return char
    return "other"


def normalise_key_name(name: str) -> str:
    """One spelling per physical key: ``"A"`` → ``"a"``, ``">"`` → ``"."``, ``"Return"`` → ``"enter"``.

    >>> [normalise_key_name(n) for n in ("A", ">", " ", "BKSP", "Shift_R", "ARW_LEFT", "F5")]
    ['a', '.', 'space', 'backspace', 'shift_r', 'left', 'f5']
    """
    if len(name) == 1:
        return _normalise_char(name)
    # ">" and "#" are separators in digraph names and keyed tokens, so no key name holds them.
    lowered = name.strip().lower().replace("-", "_").replace(">", "_").replace("#", "_")
    # Whitespace or control characters inside a name would make it change on a second pass.
    lowered = "".join(c if c.isprintable() and not c.isspace() else "_" for c in lowered)
    if not lowered:
        return "space" if name else "other"
    lowered = _ALIASES.get(lowered, lowered)
    if lowered.startswith(_NUMPAD_PREFIXES):
        rest = lowered.split("_", 1)[1]
        if len(rest) == 1 and rest.isdigit():
            return rest
        if rest == "enter":
            return "enter"
    return lowered[:32]


def key_class(name: str) -> str:
    """The ``timing`` token of a normalised key name.

    >>> [key_class(n) for n in ("a", "p", "7", "space", "backspace", "shift_r", ",", "f1", "up")]
    ['L.home', 'R.top', 'digit', 'space', 'erase', 'shift_r', 'punct', 'fn', 'nav']
    """
    zone = _LETTER_ZONES.get(name)
    if zone is not None:
        return zone
    named = _NAMED_CLASSES.get(name)
    if named is not None:
        return named
    if len(name) == 1:
        if name.isdigit():
            return "digit"
        if name in PUNCTUATION or name in "*+":
            return "punct"
        return "other"
    if name[0] == "f" and name[1:].isdigit():
        return "fn"
    return "other"


def token_base(token: str) -> str:
    """A token without its pairing slot: ``"L.home@1"`` → ``"L.home"`` (see :class:`KeyEventTokenizer`)."""
    prefix, sep, slot = token.rpartition("@")
    if sep and slot.isdigit() and prefix in CLASS_TOKENS:
        return prefix
    return token


def token_class(token: str) -> str:
    """The ``timing`` class of a token of any mode (class, ``class@slot``, ``class#hash`` or key name)."""
    if token in CLASS_TOKENS:
        return token
    token = token_base(token)
    if token in CLASS_TOKENS:
        return token
    prefix, sep, digest = token.partition("#")
    if sep and prefix in CLASS_TOKENS and len(digest) == KEYED_HEX_CHARS:
        return prefix
    return key_class(token)


def aalto_key_name(letter: str, keycode: int) -> str:
    """Key name of an Aalto row: the JavaScript keyCode decides, the LETTER column is the fallback.

    >>> aalto_key_name("T", 84), aalto_key_name("", 69), aalto_key_name("SHIFT", 16), aalto_key_name(">", 0)
    ('t', 'e', 'shift', '.')
    """
    name = _JS_KEYCODES.get(keycode)
    if name is not None:
        return name
    return normalise_key_name(letter) if letter else "other"


def normalise_pynput_key(key: Any) -> str:
    """Key name of a pynput ``Key`` or ``KeyCode`` (duck-typed, so pynput need not be importable).

    >>> class FakeKeyCode:
    ...     char, vk = "Q", 81
    >>> normalise_pynput_key(FakeKeyCode())
    'q'
    """
    char = getattr(key, "char", None)
    if isinstance(char, str) and char:
        return _normalise_char(char[0]) if len(char) == 1 else normalise_key_name(char)
    name = getattr(key, "name", None)
    if isinstance(name, str) and name:  # a pynput.keyboard.Key member
        name = name.lower()
        return normalise_key_name(_PYNPUT_GENERIC.get(name, name))
    vk = getattr(key, "vk", None)
    if isinstance(vk, int) and vk in _KEYPAD_VK:
        return _KEYPAD_VK[vk]
    return "other"


class KeyTokenizer:
    """Maps normalised key names to the tokens a privacy mode allows to leave the machine.

    Parameters
    ----------
    mode
        ``timing`` (default), ``keyed`` or ``full``.
    secret
        Deployment secret for ``keyed`` mode, at least 16 bytes.
    allow_full
        Must be True for ``full`` mode: raw key names are keystroke logging.

    >>> KeyTokenizer().token("a"), KeyTokenizer().token("shift_r")
    ('L.home', 'shift_r')
    >>> keyed = KeyTokenizer("keyed", secret=b"0123456789abcdef")
    >>> keyed.token("a") == keyed.token("A"), keyed.token("a").startswith("L.home#")
    (True, True)
    """

    def __init__(self, mode: str = "timing", *, secret: bytes | None = None, allow_full: bool = False) -> None:
        if mode not in ("timing", "keyed", "full"):
            raise ValueError(f"privacy mode must be timing, keyed or full, not {mode!r}")
        if mode == "keyed" and (secret is None or len(secret) < MIN_SECRET_BYTES):
            raise ValueError(f"keyed mode needs a secret of at least {MIN_SECRET_BYTES} bytes")
        if mode == "full" and not allow_full:
            raise ValueError("full mode captures raw key names; enable it explicitly with allow_full=True")
        if mode == "full":
            log.warning("privacy mode 'full': raw key names will leave this machine")
        self.mode = mode
        self._secret = secret if mode == "keyed" else None
        self._cache: dict[str, str] = {}

    @classmethod
    def from_settings(cls, settings: Settings, *, allow_full: bool = False) -> KeyTokenizer:
        """Tokenizer for ``settings.privacy``; reads the keyed secret from ``settings.keyed_secret_file``."""
        secret = None
        if settings.privacy == "keyed":
            if not settings.keyed_secret_file:
                raise ConfigError("privacy 'keyed' needs TOUCHSTONE_KEYED_SECRET_FILE")
            try:
                secret = Path(settings.keyed_secret_file).read_bytes().strip()
            except OSError as exc:
                raise ConfigError(f"cannot read keyed secret file: {exc}") from None
        try:
            return cls(settings.privacy, secret=secret, allow_full=allow_full)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def token(self, name: str) -> str:
        """Token of a key name; the name is normalised first (:func:`normalise_key_name`)."""
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        raw, name = name, normalise_key_name(name)
        if self.mode == "timing":
            token = key_class(name)
        elif self.mode == "keyed":
            assert self._secret is not None
            digest = hmac.new(self._secret, _KEYED_DOMAIN + name.encode("utf-8"), hashlib.sha256).hexdigest()
            token = f"{key_class(name)}#{digest[:KEYED_HEX_CHARS]}"
        else:
            token = name
        if len(self._cache) < 4096:  # distinct keys are few; the bound only guards odd input
            self._cache[raw] = token
        return token

    def __repr__(self) -> str:
        return f"KeyTokenizer(mode={self.mode!r})"


class KeyEventTokenizer:
    """Tokens for one session's press/release events, pairing held keys of the same class.

    In ``timing`` mode a key pressed while another key of its class is held gets the
    smallest free slot (``class@1``, ``class@2``...); its release carries the same
    token. A key pressed again while still held (auto-repeat, or a lost release) keeps
    its token. Other modes have one token per key and need no slots.

    >>> events = KeyEventTokenizer(KeyTokenizer())
    >>> [events.press("a"), events.press("s"), events.release("a"), events.release("s")]
    ['L.home', 'L.home@1', 'L.home', 'L.home@1']
    """

    MAX_HELD = 64  # more keys "down" at once means releases were lost; forget the oldest

    def __init__(self, tokenizer: KeyTokenizer) -> None:
        self.tokenizer = tokenizer
        self._held: dict[str, str] = {}  # normalised key name -> token of its press
        self._last_release: dict[str, str] = {}  # normalised key name -> token of its last release

    @property
    def mode(self) -> str:
        return self.tokenizer.mode

    def press(self, name: str) -> str:
        name = normalise_key_name(name)
        held = self._held.get(name)
        if held is not None:
            return held
        token = self.tokenizer.token(name)
        if self.tokenizer.mode == "timing":
            in_use = set(self._held.values())
            base, slot = token, 0
            while token in in_use:
                slot += 1
                token = f"{base}@{slot}"
        if len(self._held) >= self.MAX_HELD:
            del self._held[next(iter(self._held))]
        self._held[name] = token
        return token

    def release(self, name: str) -> str:
        name = normalise_key_name(name)
        held = self._held.pop(name, None)
        if held is not None:
            if len(self._last_release) >= self.MAX_HELD and name not in self._last_release:
                del self._last_release[next(iter(self._last_release))]
            self._last_release[name] = held
            return held
        # A second release of one press (a duplicated event) keeps the token of the first.
        return self._last_release.get(name) or self.tokenizer.token(name)

    def event(self, name: str, down: bool) -> str:
        return self.press(name) if down else self.release(name)
