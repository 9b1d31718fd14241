"""Prometheus metrics of the detect stage (names prefixed ``touchstone_detect_``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from touchstone.streams.metrics import DEAD_LETTERS

__all__ = ["ALERTS", "CHECKPOINT_BYTES", "DEAD_LETTERS", "WINDOWS", "WINDOW_SECONDS"]

WINDOWS = Counter("touchstone_detect_windows_total", "Feature windows scored.", ["modality"])
ALERTS = Counter("touchstone_detect_alerts_total", "Alerts emitted.", ["level", "status"])
WINDOW_SECONDS = Histogram(
    "touchstone_detect_window_seconds",
    "Scoring, learning and risk update time of one window.",
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05),
)
CHECKPOINT_BYTES = Gauge("touchstone_detect_checkpoint_bytes", "Size of the last detector checkpoint.")
