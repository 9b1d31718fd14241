"""Synthetic texts for the typing simulator: chat replies and form fields of a customer-service desk.

Texts are random word sequences (not prose) drawn from a small made-up vocabulary with
Zipf-like frequencies, so letter and digraph frequencies resemble English typing. A text is a
list of *units*: single characters (``"a"``, ``"A"``, ``"?"``, ``" "``) or named keys
(``"tab"``, ``"enter"``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["VOCABULARY", "chat_message", "form_fields", "FIRST_NAMES"]

VOCABULARY: tuple[str, ...] = (
    "the",
    "to",
    "you",
    "and",
    "a",
    "i",
    "for",
    "your",
    "is",
    "of",
    "we",
    "it",
    "that",
    "this",
    "be",
    "on",
    "can",
    "have",
    "will",
    "in",
    "with",
    "order",
    "please",
    "are",
    "me",
    "as",
    "at",
    "if",
    "account",
    "not",
    "an",
    "so",
    "thank",
    "do",
    "just",
    "my",
    "our",
    "all",
    "was",
    "but",
    "or",
    "there",
    "help",
    "by",
    "would",
    "from",
    "any",
    "let",
    "now",
    "check",
    "see",
    "know",
    "get",
    "one",
    "time",
    "has",
    "more",
    "here",
    "sorry",
    "what",
    "about",
    "up",
    "back",
    "again",
    "also",
    "been",
    "new",
    "card",
    "number",
    "email",
    "payment",
    "refund",
    "issue",
    "today",
    "could",
    "when",
    "which",
    "sure",
    "date",
    "details",
    "call",
    "free",
    "working",
    "delivery",
    "sent",
    "address",
    "hours",
    "team",
    "days",
    "received",
    "should",
    "out",
    "send",
    "them",
    "like",
    "look",
    "service",
    "they",
    "need",
    "some",
    "update",
    "how",
    "into",
    "only",
    "confirm",
    "problem",
    "receipt",
    "shipping",
    "return",
    "request",
    "reference",
    "password",
    "reset",
    "link",
    "login",
    "charge",
    "billing",
    "store",
    "item",
    "size",
    "colour",
    "review",
    "case",
    "open",
    "closed",
    "follow",
    "ticket",
    "week",
    "minutes",
    "moment",
    "waiting",
    "apologies",
    "understand",
    "appreciate",
    "happy",
    "assist",
    "further",
    "contact",
    "phone",
    "message",
    "below",
    "above",
    "support",
    "available",
    "provide",
    "information",
    "process",
    "processed",
    "cancel",
    "cancelled",
    "changed",
    "change",
    "screen",
    "browser",
    "app",
    "version",
    "device",
    "cache",
    "cookies",
    "try",
    "soon",
    "arrive",
    "tracking",
    "courier",
    "package",
    "parcel",
    "warehouse",
    "stock",
    "replacement",
    "credit",
    "balance",
    "invoice",
    "subscription",
    "plan",
    "monthly",
    "annual",
    "renew",
    "discount",
    "code",
    "applied",
    "expired",
    "verify",
    "identity",
    "security",
    "secure",
    "note",
    "notes",
    "system",
    "shows",
    "showing",
    "correct",
    "wrong",
    "amount",
)
FIRST_NAMES: tuple[str, ...] = (
    "Alex",
    "Sam",
    "Maria",
    "John",
    "Priya",
    "Chen",
    "Olga",
    "Lucas",
    "Fatima",
    "Noah",
    "Emma",
    "Ivan",
)
# Zipf-like weights: rank r has weight 1 / (r + 2).
_WEIGHTS = 1.0 / (np.arange(len(VOCABULARY)) + 2.0)
_CUMULATIVE = np.cumsum(_WEIGHTS) / _WEIGHTS.sum()
_CUMULATIVE[-1] = 1.0


def _words(rng: np.random.Generator, n: int) -> list[str]:
    return [VOCABULARY[i] for i in np.searchsorted(_CUMULATIVE, rng.random(n), side="right").tolist()]


def _digits(rng: np.random.Generator, low: int, high: int) -> str:
    return "".join(str(d) for d in rng.integers(0, 10, size=int(rng.integers(low, high + 1))))


def chat_message(rng: np.random.Generator, *, words: int, capitalise: float) -> list[str]:
    """About ``words`` words in sentences; each sentence starts with a capital with probability ``capitalise``."""
    units: list[str] = []
    remaining = max(1, words)
    while remaining > 0:
        length = min(remaining, int(rng.integers(3, 13)))
        remaining -= length
        tokens = _words(rng, length)
        if rng.random() < 0.12:
            tokens[int(rng.integers(0, length))] = _digits(rng, 4, 8)
        if rng.random() < 0.08:
            tokens[int(rng.integers(0, length))] = str(rng.choice(FIRST_NAMES))
        if rng.random() < capitalise:
            tokens[0] = tokens[0][:1].upper() + tokens[0][1:]
        for j, token in enumerate(tokens):
            if j:
                units.append(" ")
            units.extend(token)
            if j < length - 1 and rng.random() < 0.06:
                units.append(",")
        units.append(str(rng.choice([".", ".", ".", "?", "!"])))
        if remaining > 0:
            units.append(" ")
    return units


def form_fields(rng: np.random.Generator, *, fields: int, capitalise: float) -> list[str]:
    """Short form values (reference numbers, names, a word or two) separated by ``tab``."""
    units: list[str] = []
    for i in range(max(1, fields)):
        if i:
            units.append("tab")
        kind = rng.random()
        if kind < 0.4:
            units.extend(_digits(rng, 5, 10))
        elif kind < 0.7:
            name = str(rng.choice(FIRST_NAMES))
            units.extend(name if rng.random() < capitalise else name.lower())
        else:
            units.extend(" ".join(_words(rng, int(rng.integers(1, 4)))))
    return units
