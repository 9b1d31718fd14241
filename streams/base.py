"""The windower interface shared by keystroke and mouse feature extraction.

A windower is plain, transport-free, per-session state: the Faust worker, the
evaluation harness and the benchmarks all feed it decoded events and collect the
windows it closes. Its state round-trips through ``to_state``/``from_state`` as
JSON-able data (no pickle), small enough for a Faust table (<= 64 KB per session).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["ClosedWindow", "Windower"]


@dataclass(frozen=True, slots=True)
class ClosedWindow:
    """A closed feature window, times in session milliseconds (the collector's monotonic clock)."""

    modality: str  # "keys" | "mouse"
    index: int  # 0, 1, 2 ... per session and modality
    start_t: float
    end_t: float
    n_events: int
    closed_by: str  # "count" | "pause" | "session_end" | "idle"
    features: dict[str, float]
    grams: dict[str, float] = field(default_factory=dict)
    actions: list[list[float]] = field(default_factory=list)
    action_fields: list[str] = field(default_factory=list)


class Windower(Protocol):
    modality: str

    def push(self, events: Any) -> list[ClosedWindow]:
        """Feed the next events of this session (time-ordered); return windows they closed."""
        ...

    def flush(self, reason: str) -> list[ClosedWindow]:
        """Close what is open (session end or idle timeout); may return nothing if too little."""
        ...

    def to_state(self) -> dict[str, Any]: ...

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Windower: ...
