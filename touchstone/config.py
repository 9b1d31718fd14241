"""Deployment settings: one frozen object, every field with an environment default.

Each field reads ``TOUCHSTONE_<FIELD NAME IN UPPER CASE>`` (e.g. ``TOUCHSTONE_BOOTSTRAP``).
Defaults work on one machine against the broker that ``touchstone kafka up`` starts.
``docs/configuration.md`` lists them all; ``touchstone config`` prints the effective values.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from touchstone.errors import ConfigError

__all__ = ["Settings", "load_settings"]

ENV_PREFIX = "TOUCHSTONE_"


def _doc(text: str, default: Any) -> Any:
    return field(default=default, metadata={"doc": text})


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Touchstone configuration. Build with :func:`load_settings` to apply the environment."""

    bootstrap: str = _doc("Kafka bootstrap servers (host:port[,host:port]).", "127.0.0.1:9092")
    topic_raw: str = _doc("Topic of raw input batches from collectors.", "touchstone.raw")
    topic_raw_full: str = _doc(
        "Restricted topic for batches captured in `full` privacy mode (raw key names).",
        "touchstone.raw.restricted",
    )
    topic_features: str = _doc("Topic of feature windows, keyed by user.", "touchstone.features")
    topic_alerts: str = _doc("Topic of alerts produced by detectors.", "touchstone.alerts")
    topic_siem: str = _doc("Topic of alerts in SIEM format (ECS JSON).", "touchstone.siem")
    topic_risk: str = _doc(
        "Topic of per-window session risk updates (live views, dashboards); not alerts.", "touchstone.risk"
    )
    topic_dead_letter: str = _doc(
        "Dead-letter topic: undecodable input and undeliverable alerts, with reasons.",
        "touchstone.deadletter",
    )
    partitions: int = _doc("Partitions per topic when Touchstone creates its topics.", 4)
    replication: int = _doc("Replication factor when Touchstone creates its topics.", 1)
    max_batch_events: int = _doc("Largest raw batch accepted, in events.", 5000)
    max_message_bytes: int = _doc("Largest raw message accepted, in bytes.", 1_000_000)
    privacy: str = _doc("Collector privacy mode: timing (default), keyed or full.", "timing")
    consume_full_capture: bool = _doc(
        "Workers also read the restricted `full`-mode topic; only where full keystroke capture was enabled.",
        False,
    )
    keyed_secret_file: str = _doc(
        "File holding the deployment secret for `keyed` privacy mode (HMAC of key identity).", ""
    )
    snapshot_key_file: str = _doc("File holding the key that authenticates detector model snapshots (HMAC-SHA256).", "")
    key_window: int = _doc("Keystrokes per keystroke feature window.", 50)
    mouse_window: int = _doc("Mouse actions per mouse feature window.", 10)
    batch_interval_s: float = _doc(
        "Collector: longest an event waits before its batch is sent (s). Workers pay per message, so longer"
        " batches raise a worker's capacity; each second adds to decision latency and to what a collector"
        " crash can lose.",
        0.5,
    )
    session_idle_s: float = _doc("Seconds without events after which a session is closed.", 300.0)
    group_session_timeout_s: float = _doc(
        "Seconds before a silent worker's partitions are handed to the others (Kafka group session timeout).",
        30.0,
    )
    state_dir: str = _doc("Directory for local state (worker tables, collector spool).", ".run")
    store: str = _doc(
        "Faust table store: rocksdb:// for production, memory:// for tests and the demo.",
        "memory://",
    )
    metrics_port: int = _doc("Port of the Prometheus /metrics endpoint (0 = off).", 0)
    metrics_host: str = _doc("Address the /metrics endpoint binds (0.0.0.0 in containers).", "127.0.0.1")
    worker_event_loop: str = _doc(
        "Event loop of stream workers: uvloop (faster per message; falls back to asyncio when missing) or asyncio.",
        "uvloop",
    )
    log_level: str = _doc("Log level: DEBUG, INFO, WARNING, ERROR.", "INFO")

    def __post_init__(self) -> None:
        if self.privacy not in {"timing", "keyed", "full"}:
            raise ConfigError(f"privacy must be timing, keyed or full, not {self.privacy!r}")
        for name in ("partitions", "replication", "max_batch_events", "key_window", "mouse_window"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, not {getattr(self, name)!r}")
        if self.worker_event_loop not in {"uvloop", "asyncio"}:
            raise ConfigError(f"worker_event_loop must be uvloop or asyncio, not {self.worker_event_loop!r}")
        if not 0.01 <= self.batch_interval_s <= 10.0:
            raise ConfigError(f"batch_interval_s must lie within [0.01, 10] seconds, not {self.batch_interval_s!r}")

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir)

    def all_topics(self) -> list[str]:
        return [
            self.topic_raw,
            self.topic_raw_full,
            self.topic_features,
            self.topic_alerts,
            self.topic_siem,
            self.topic_risk,
            self.topic_dead_letter,
        ]

    def to_env(self) -> dict[str, str]:
        """The environment that makes :func:`load_settings` in a child process return these settings."""
        return {ENV_PREFIX + f.name.upper(): str(getattr(self, f.name)) for f in fields(self)}

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def describe(cls) -> list[tuple[str, str, Any, str]]:
        """(environment variable, type, default, doc) for every field."""
        hints = get_type_hints(cls)
        return [
            (ENV_PREFIX + f.name.upper(), hints[f.name].__name__, f.default, f.metadata["doc"]) for f in fields(cls)
        ]


def _coerce(name: str, raw: str, kind: type) -> Any:
    try:
        if kind is bool:
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {kind.__name__}") from None


def load_settings(env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from defaults, then the environment, then keyword overrides.

    >>> load_settings({"TOUCHSTONE_PARTITIONS": "8"}).partitions
    8
    """
    env = os.environ if env is None else env
    hints = get_type_hints(Settings)
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = env.get(ENV_PREFIX + f.name.upper())
        if raw is not None and raw != "":
            values[f.name] = _coerce(f.name, raw, hints[f.name])
    unknown = set(overrides) - {f.name for f in fields(Settings)}
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)
