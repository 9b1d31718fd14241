"""Synthetic files in the Balabit and Aalto layouts, written at test time.

No dataset file is kept in the repository: the replay tests need only the *format* (column
order, states, epoch-millisecond keystroke rows), so these writers produce small, seeded,
made-up sessions in it: mouse moves, clicks with both buttons, drags and scrolls; typed
sentences with rollover (the next press before the previous release).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

BALABIT_HEADER = "record timestamp,client timestamp,button,state,x,y"
AALTO_HEADER = "\t".join(
    ["PARTICIPANT_ID", "TEST_SECTION_ID", "SENTENCE", "USER_INPUT", "KEYSTROKE_ID", "PRESS_TIME", "RELEASE_TIME",
     "LETTER", "KEYCODE"]
)


def _balabit_rows(rng: np.random.Generator, n_gestures: int) -> list[str]:
    rows, t, x, y = [], 1.0, 600, 400
    for _ in range(n_gestures):
        t += float(rng.uniform(0.3, 1.5))  # a pause between gestures
        kind = rng.choice(["move", "click", "drag", "scroll"], p=[0.4, 0.3, 0.15, 0.15])
        button = "Right" if rng.random() < 0.25 else "Left"
        state = "Drag" if kind == "drag" else "Move"
        if kind == "drag":
            rows.append(f"{t:.3f},{t:.3f},Left,Pressed,{x},{y}")
        for _ in range(int(rng.integers(4, 14))):
            t += float(rng.uniform(0.008, 0.03))
            x = int(np.clip(x + rng.integers(-25, 26), 0, 1900))
            y = int(np.clip(y + rng.integers(-25, 26), 0, 1000))
            rows.append(f"{t + 0.016:.3f},{t:.3f},NoButton,{state},{x},{y}")
        if kind in ("click", "drag"):
            if kind == "click":
                t += float(rng.uniform(0.05, 0.2))
                rows.append(f"{t:.3f},{t:.3f},{button},Pressed,{x},{y}")
            t += float(rng.uniform(0.06, 0.15))
            rows.append(f"{t:.3f},{t:.3f},{'Left' if kind == 'drag' else button},Released,{x},{y}")
        elif kind == "scroll":
            direction = "Down" if rng.random() < 0.5 else "Up"
            for _ in range(int(rng.integers(1, 4))):
                t += float(rng.uniform(0.02, 0.1))
                rows.append(f"{t:.3f},{t:.3f},NoButton,{direction},{x},{y}")
    return rows


def write_balabit(root: Path, seed: int = 5) -> Path:
    """Two session files under ``root/training_files/userN/``; returns ``root``."""
    rng = np.random.default_rng(seed)
    for user, session, gestures in (("user12", "session_0000000001", 40), ("user35", "session_0000000002", 20)):
        folder = root / "training_files" / user
        folder.mkdir(parents=True, exist_ok=True)
        (folder / session).write_text("\n".join([BALABIT_HEADER, *_balabit_rows(rng, gestures)]) + "\n")
    return root


def _aalto_rows(
    participant: int, sentences: list[tuple[int, str]], start_ms: int, rng: np.random.Generator
) -> list[str]:
    rows, t, keystroke = [], start_ms, participant * 100
    for section, sentence in sentences:
        t += int(rng.integers(800, 2000))
        for char in sentence:
            t += int(rng.integers(60, 260))  # press to press; holds up to 140 ms overlap the next press
            hold = int(rng.integers(60, 140))
            keystroke += 1
            code = 32 if char == " " else ord(char.upper()) if char.isalpha() else ord(char)
            rows.append(
                "\t".join(map(str, (participant, section, sentence, sentence, keystroke, t, t + hold, char, code)))
            )
    return rows


def write_aalto(root: Path, *, paced: bool = False, seed: int = 9) -> Path:
    """Participant files under ``root/files/``: two of two sentences each, or one short one when ``paced``."""
    rng = np.random.default_rng(seed)
    folder = root / "files"
    folder.mkdir(parents=True, exist_ok=True)
    if paced:
        participants = [(900, [(7106, "quick check, please")], 1_480_000_000_000)]
    else:
        participants = [
            (101, [(5118, "thank you for calling, how can i help."), (5119, "one moment please.")], 1_473_101_234_567),
            (202, [(6332, "your order has shipped.")], 1_476_900_000_015),
        ]
    for participant, sentences, start in participants:
        rows = _aalto_rows(participant, sentences, start, rng)
        (folder / f"{participant}_keystrokes.txt").write_text("\n".join([AALTO_HEADER, *rows]) + "\n")
    return root
