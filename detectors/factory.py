"""The fleet scorers a worker runs, built from settings (one place, so workers, evaluation and bench agree)."""

from __future__ import annotations

from touchstone.config import Settings
from touchstone.detectors.base import FleetScorer
from touchstone.detectors.keys import KeystrokeFleetScorer
from touchstone.detectors.mouse import MouseFleetScorer

__all__ = ["build_scorers"]


def build_scorers(settings: Settings, *, seed: int = 0) -> dict[str, FleetScorer]:
    """One scorer per modality, with the defaults the evaluation harness measured."""
    del settings  # no scorer setting is deployment-specific yet; the signature keeps the seam
    return {"keys": KeystrokeFleetScorer(seed=seed), "mouse": MouseFleetScorer(seed=seed)}
