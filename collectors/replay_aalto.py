"""Aalto 136M Keystrokes files as Touchstone key events and raw batches.

A participant file is tab-separated with the header ``PARTICIPANT_ID TEST_SECTION_ID
SENTENCE USER_INPUT KEYSTROKE_ID PRESS_TIME RELEASE_TIME LETTER KEYCODE`` (times in
epoch milliseconds), one row per keystroke, one TEST_SECTION_ID per typed sentence.

Rows are read from both ends: the identifiers from the left, the five keystroke
fields from the right, so a tab inside the sentence text does not shift them
(counted as ``tabs_in_text``); a tab *typed* (LETTER = tab) is recognised too. Rows
that still make no sense are skipped and counted by reason in
:attr:`AaltoFile.skipped` (``short_row``, ``bad_time``, ``bad_keycode``,
``foreign_participant``, ``duplicate_keystroke``). Kept but counted in
:attr:`AaltoFile.repaired`: a release before its press (``release_before_press``;
replay reproduces the source and the windower copes) and an unreadable keystroke
id (``bad_keystroke_id``, e.g. ``2e+05``; the id only breaks ties).

Replay turns each row into a press and a release event at the source times minus
the session start (the session's first event), nothing rounded, tokenised in time
order by a :class:`KeyEventTokenizer` as a live collector would.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from touchstone.collectors.privacy import KeyEventTokenizer, KeyTokenizer, aalto_key_name
from touchstone.contracts import KeyEvents, RawBatch

__all__ = [
    "COLLECTOR",
    "AaltoFile",
    "AaltoRow",
    "AaltoSentence",
    "batches_from_sentences",
    "iter_aalto_batches",
    "parse_aalto_file",
    "read_aalto_file",
]

log = logging.getLogger(__name__)

COLLECTOR = "replay-aalto/1"
_HEADER_START = "PARTICIPANT_ID"


class AaltoRow(NamedTuple):
    keystroke_id: int
    press: int
    release: int
    letter: str
    keycode: int


@dataclass(frozen=True, slots=True)
class AaltoSentence:
    """One typed sentence: its rows in press order."""

    section_id: str
    rows: tuple[AaltoRow, ...]

    @property
    def start(self) -> int:
        return self.rows[0].press if self.rows else 0


@dataclass(frozen=True, slots=True)
class AaltoFile:
    participant: str
    sentences: tuple[AaltoSentence, ...]
    rows: int
    skipped: dict[str, int] = field(default_factory=dict)
    repaired: dict[str, int] = field(default_factory=dict)


def _int(text: str) -> int | None:
    text = text.strip()
    if not text or not (text.isdigit() or (text[0] == "-" and text[1:].isdigit())):
        return None
    return int(text)


def _parse_line(parts: list[str], repaired: Counter[str]) -> tuple[str, str, AaltoRow] | str:
    """(participant, section, row) or the reason the row is unusable."""
    if len(parts) < 9:
        return "short_row"
    tail = parts[-5:]
    if len(parts) >= 10 and parts[-2] == "" and parts[-3] == "":
        # LETTER was a typed tab: it split into two empty fields.
        tail = [parts[-6], parts[-5], parts[-4], "\t", parts[-1]]
        extra = len(parts) - 10
    else:
        extra = len(parts) - 9
    keystroke_text, press_text, release_text, letter, keycode_text = tail
    press, release = _int(press_text), _int(release_text)
    if press is None or release is None or press <= 0 or release <= 0:
        return "bad_time"
    keycode = _int(keycode_text)
    if keycode is None:
        return "bad_keycode"
    keystroke_id = _int(keystroke_text)
    if keystroke_id is None:  # only ordering ties and de-duplication need it
        repaired["bad_keystroke_id"] += 1
        keystroke_id = -1
    if extra:
        repaired["tabs_in_text"] += 1
    if release < press:
        repaired["release_before_press"] += 1
    return parts[0].strip(), parts[1].strip(), AaltoRow(keystroke_id, press, release, letter, keycode)


def parse_aalto_file(path: str | Path) -> AaltoFile:
    """Parse one participant file defensively; bad rows are counted, never raised."""
    path = Path(path)
    skipped: Counter[str] = Counter()
    repaired: Counter[str] = Counter()
    by_section: dict[str, list[AaltoRow]] = {}
    seen: set[int] = set()
    participant = ""
    n_rows = 0
    with path.open("r", encoding="utf-8", errors="replace", newline="") as handle:
        for line in handle:
            line = line.rstrip("\r\n")
            if not line.strip() or line.startswith(_HEADER_START):
                continue
            n_rows += 1
            parsed = _parse_line(line.split("\t"), repaired)
            if isinstance(parsed, str):
                skipped[parsed] += 1
                continue
            pid, section, row = parsed
            participant = participant or pid
            if pid != participant:
                skipped["foreign_participant"] += 1
                continue
            if row.keystroke_id >= 0:
                if row.keystroke_id in seen:
                    skipped["duplicate_keystroke"] += 1
                    continue
                seen.add(row.keystroke_id)
            by_section.setdefault(section, []).append(row)
    sentences = [
        AaltoSentence(section, tuple(sorted(rows, key=lambda r: (r.press, r.keystroke_id))))
        for section, rows in by_section.items()
    ]
    sentences.sort(key=lambda s: (s.start, s.section_id))
    if not participant:
        participant = path.name.split("_", 1)[0]
    if skipped:
        log.debug("%s: %d rows, skipped %s", path.name, n_rows, dict(skipped))
    return AaltoFile(participant, tuple(sentences), n_rows, dict(skipped), dict(repaired))


def read_aalto_file(path: str | Path) -> list[AaltoSentence]:
    """The sentences of one participant file, in typing order, each with its rows in press order."""
    return list(parse_aalto_file(path).sentences)


def _key_events(
    rows: Iterable[AaltoRow], tokenizer: KeyTokenizer, origin: int
) -> tuple[list[float], list[bool], list[str]]:
    timed: list[tuple[int, int, bool, str]] = []
    for order, row in enumerate(rows):
        name = aalto_key_name(row.letter, row.keycode)
        timed.append((row.press - origin, 2 * order, True, name))
        timed.append((row.release - origin, 2 * order + 1, False, name))
    timed.sort()
    stream = KeyEventTokenizer(tokenizer)
    tokens = [stream.event(name, down) for _, _, down, name in timed]
    return [float(e[0]) for e in timed], [e[2] for e in timed], tokens


def batches_from_sentences(
    sentences: Iterable[AaltoSentence],
    tokenizer: KeyTokenizer,
    *,
    user: str,
    session_id: str,
    max_keys: int | None = None,
    batch_events: int = 200,
    flush_ms: float = 250.0,
    host: str | None = None,
) -> Iterator[RawBatch]:
    """One session of raw batches from sentences typed one after the other.

    ``max_keys`` keeps only the first keystrokes of each sentence. A batch closes at
    ``batch_events`` events or when an event comes ``flush_ms`` after the batch's first,
    as a live collector flushes; its anchor ``mono`` is its last event's time. The
    session starts at its earliest event; the last batch carries ``end=True``.
    """
    if batch_events < 1:
        raise ValueError(f"batch_events must be at least 1, not {batch_events}")
    rows = [r for s in sentences for r in (s.rows if max_keys is None else s.rows[:max_keys])]
    host = host if host is not None else f"aalto-{user}"
    if not rows:
        return
    origin = min(min(r.press, r.release) for r in rows)
    t, down, key = _key_events(rows, tokenizer, origin)
    seq = 0
    start = 0
    n = len(t)
    while start < n:
        stop = start + 1
        limit = t[start] + flush_ms
        while stop < n and stop - start < batch_events and t[stop] <= limit:
            stop += 1
        mono = t[stop - 1]
        yield RawBatch(
            session_id=session_id,
            user=user,
            host=host,
            seq=seq,
            collector=COLLECTOR,
            privacy=tokenizer.mode,
            session_start=float(origin),
            wall=float(origin) + mono,
            mono=mono,
            keys=KeyEvents(
                t=np.asarray(t[start:stop], dtype=np.float64),
                down=np.asarray(down[start:stop], dtype=bool),
                key=tuple(key[start:stop]),
            ),
            end=stop == n,
        )
        seq += 1
        start = stop


def iter_aalto_batches(
    path: str | Path,
    tokenizer: KeyTokenizer,
    *,
    per_sentence: bool = False,
    max_keys: int | None = None,
    batch_events: int = 200,
    flush_ms: float = 250.0,
    user: str | None = None,
) -> Iterator[RawBatch]:
    """Replay one participant file: one session for all its sentences, or one per sentence.

    Session ids are ``aalto-<participant>`` or ``aalto-<participant>-<section>``.
    """
    parsed = parse_aalto_file(path)
    user = user if user is not None else parsed.participant
    if per_sentence:
        for sentence in parsed.sentences:
            yield from batches_from_sentences(
                [sentence],
                tokenizer,
                user=user,
                session_id=f"aalto-{parsed.participant}-{sentence.section_id}",
                max_keys=max_keys,
                batch_events=batch_events,
                flush_ms=flush_ms,
            )
    else:
        yield from batches_from_sentences(
            parsed.sentences,
            tokenizer,
            user=user,
            session_id=f"aalto-{parsed.participant}",
            max_keys=max_keys,
            batch_events=batch_events,
            flush_ms=flush_ms,
        )
