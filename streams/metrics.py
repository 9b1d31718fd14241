"""Prometheus metrics of the stream workers (names prefixed ``touchstone_streams_``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "BATCHES_IN",
    "BATCH_SECONDS",
    "DEAD_LETTERS",
    "DUPLICATES",
    "EVENTS_IN",
    "KEY_EVENTS_IN",
    "MOUSE_EVENTS_IN",
    "GAPS",
    "OPEN_SESSIONS",
    "REGRESSIONS",
    "STATE_BYTES",
    "WINDOWS_OUT",
]

BATCHES_IN = Counter("touchstone_streams_batches_total", "Raw batches consumed (valid ones).")
EVENTS_IN = Counter(
    "touchstone_streams_events_total", "Raw input events in valid batches (duplicates included).", ["modality"]
)
# Bound once: resolving a label on every batch costs a dictionary lookup under a lock.
KEY_EVENTS_IN = EVENTS_IN.labels("keys")
MOUSE_EVENTS_IN = EVENTS_IN.labels("mouse")
WINDOWS_OUT = Counter("touchstone_streams_windows_total", "Feature windows produced.", ["modality"])
DEAD_LETTERS = Counter("touchstone_dead_letters_total", "Messages sent to the dead-letter topic.", ["stage", "reason"])
DUPLICATES = Counter("touchstone_streams_duplicate_batches_total", "Batches dropped as already seen (same seq).")
GAPS = Counter("touchstone_streams_gap_batches_total", "Batches never received (sequence gaps skipped).")
REGRESSIONS = Counter("touchstone_streams_time_regressions_total", "Events dropped because their time went back.")
BATCH_SECONDS = Histogram(
    "touchstone_streams_batch_seconds",
    "Processing time of one raw batch.",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
)
OPEN_SESSIONS = Gauge("touchstone_streams_open_sessions", "Sessions with state on this worker.")
STATE_BYTES = Gauge("touchstone_streams_session_state_bytes", "Total bytes of session state on this worker.")
