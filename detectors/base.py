"""Detector interfaces, River style: ``learn_one`` / ``score_one``, higher score = more anomalous.

A *fleet scorer* holds the profiles of every user whose windows reach it (one
Kafka partition's users in a worker, the whole dataset in the evaluation
harness) and uses each user's windows as impostor examples for the others.
"""

from __future__ import annotations

from typing import Protocol

from touchstone.contracts import FeatureWindow, Reason

__all__ = ["FleetScorer"]


class FleetScorer(Protocol):
    modality: str  # "keys" | "mouse"

    def learn_one(self, window: FeatureWindow) -> None:
        """Learn from a window believed genuine for ``window.user`` (and as a negative for others)."""
        ...

    def score_one(self, window: FeatureWindow) -> float | None:
        """Anomaly score of the window for its claimed user; None while that user is not enrolled."""
        ...

    def explain_one(self, window: FeatureWindow, top: int = 3) -> list[Reason]:
        """The features of the window that deviate most from the user's profile."""
        ...

    def enrolment(self, user: str) -> float:
        """Enrolment progress of the user in [0, 1]; 1 = enrolled, scores are meaningful."""
        ...
