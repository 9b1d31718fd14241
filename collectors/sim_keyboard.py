"""Keyboard facts the typing simulator needs: key names, QWERTY geometry, touch-typing fingers, timing classes.

Key names are the collector's normalised names (``"a"``, ``"space"``, ``"shift_l"``); the simulator works
on integer key codes (indices into :data:`KEY_NAMES`) so timing is computed on numpy arrays.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

__all__ = [
    "KEY_NAMES",
    "KEY_CODE",
    "KeyClass",
    "KEY_CLASS",
    "KEY_FINGER",
    "KEY_HAND",
    "KEY_POS",
    "SHIFTED",
    "neighbours",
]


class KeyClass(IntEnum):
    """Timing classes of the simulator's model (its own, independent of the privacy tokenizer)."""

    LEFT = 0  # letters typed by the left hand
    RIGHT = 1
    SPACE = 2
    DIGIT = 3
    PUNCT = 4
    BACKSPACE = 5
    ENTER = 6
    SHIFT = 7
    CTRL = 8
    NAV = 9


N_CLASSES = len(KeyClass)

# QWERTY rows as (characters, horizontal offset of the row in key widths).
_ROWS: tuple[tuple[str, float], ...] = (
    ("1234567890-", 0.0),
    ("qwertyuiop", 0.5),
    ("asdfghjkl;'", 0.75),
    ("zxcvbnm,./", 1.25),
)
# Touch-typing finger per column: 0-3 left pinky..index, 6-9 right index..pinky (4, 5 thumbs).
_COLUMN_FINGER = (0, 1, 2, 3, 3, 6, 6, 7, 8, 9, 9)
# Characters typed with shift held, mapped to the physical key that produces them (the collector
# reports the key, not the character).
SHIFTED: dict[str, str] = {"?": "/", "!": "1", "@": "2", ":": ";"}

_SPECIAL: dict[str, tuple[KeyClass, int, float, float]] = {
    # name: (class, finger, x, y) with x, y in key widths
    "space": (KeyClass.SPACE, 5, 5.5, 4.0),
    "backspace": (KeyClass.BACKSPACE, 9, 12.5, 0.0),
    "enter": (KeyClass.ENTER, 9, 12.25, 2.0),
    "tab": (KeyClass.NAV, 0, 0.0, 1.0),
    "shift_l": (KeyClass.SHIFT, 0, 0.0, 3.0),
    "shift_r": (KeyClass.SHIFT, 9, 11.75, 3.0),
    "ctrl_l": (KeyClass.CTRL, 0, 0.0, 4.0),
    "left": (KeyClass.NAV, 6, 15.0, 4.0),
    "right": (KeyClass.NAV, 8, 17.0, 4.0),
    "up": (KeyClass.NAV, 7, 16.0, 3.0),
    "down": (KeyClass.NAV, 7, 16.0, 4.0),
    "home": (KeyClass.NAV, 7, 16.0, 0.0),
    "end": (KeyClass.NAV, 7, 16.0, 1.0),
    "delete": (KeyClass.NAV, 6, 15.0, 1.0),
}


def _layout() -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]:
    names: list[str] = []
    classes: list[int] = []
    fingers: list[int] = []
    positions: list[tuple[float, float]] = []
    for y, (row, offset) in enumerate(_ROWS):
        for column, char in enumerate(row):
            finger = _COLUMN_FINGER[column]
            if char.isdigit():
                cls = KeyClass.DIGIT
            elif char.isalpha():
                cls = KeyClass.LEFT if finger < 5 else KeyClass.RIGHT
            else:
                cls = KeyClass.PUNCT
            names.append(char)
            classes.append(cls)
            fingers.append(finger)
            positions.append((column + offset, float(y)))
    for name, (cls, finger, x, y) in _SPECIAL.items():
        names.append(name)
        classes.append(cls)
        fingers.append(finger)
        positions.append((x, y))
    return (
        tuple(names),
        np.asarray(classes, dtype=np.int8),
        np.asarray(fingers, dtype=np.int8),
        np.asarray(positions, dtype=np.float64),
    )


KEY_NAMES, KEY_CLASS, KEY_FINGER, KEY_POS = _layout()
KEY_CODE: dict[str, int] = {name: i for i, name in enumerate(KEY_NAMES)}
# 0 left, 1 right; thumbs count as the hand of the finger number.
KEY_HAND = (KEY_FINGER >= 5).astype(np.int8)
for _array in (KEY_CLASS, KEY_FINGER, KEY_POS, KEY_HAND):
    _array.flags.writeable = False


def neighbours(char: str) -> tuple[str, ...]:
    """Letters physically adjacent to ``char`` (the usual slips of a finger)."""
    i = KEY_CODE[char]
    letters = [c for c in "abcdefghijklmnopqrstuvwxyz" if c != char]
    distance = [float(np.hypot(*(KEY_POS[KEY_CODE[c]] - KEY_POS[i]))) for c in letters]
    return tuple(c for c, d in zip(letters, distance, strict=True) if d < 1.3)
