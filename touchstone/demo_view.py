"""The demo's live terminal view and the ground truth it keeps for the summary."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from touchstone.contracts import Alert, Level, MouseKind, RawBatch

__all__ = ["LiveBoard"]

LEVEL_STYLE = {"none": "green", "low": "yellow", "medium": "dark_orange", "high": "red", "critical": "bold red"}
SPARK = "▁▂▃▄▅▆▇█"


@dataclass
class _SessionRow:
    user: str
    host: str
    risk: float = 0.0
    level: str = "none"
    windows: int = 0
    modality: str = ""
    enrolment: str = ""


class LiveBoard:
    """Thread-safe: the watcher thread feeds it, the publisher thread reports ground truth."""

    def __init__(self, *, victim: str, takeover_wall_ms: float) -> None:
        self.victim = victim
        self.takeover_wall_ms = takeover_wall_ms
        self._lock = threading.Lock()
        self.sessions: dict[str, _SessionRow] = {}
        self.alerts: list[Alert] = []
        self.updates = 0
        self.last_update_monotonic = time.monotonic()
        self.live_started: float | None = None
        self.live_sessions: set[str] = set()
        self.victim_session: str | None = None
        self.victim_risk: deque[float] = deque(maxlen=60)
        self._impostor_input: list[tuple[float, int, int]] = []  # (last capture time, key presses, mouse events)
        self.events_published = 0

    # -- feeds -----------------------------------------------------------------------------------

    def risk(self, update: dict[str, Any]) -> None:
        with self._lock:
            row = self.sessions.setdefault(update["session_id"], _SessionRow(update["user"], update["host"]))
            row.risk, row.level, row.windows = update["risk"], update["level"], update["windows_seen"]
            row.modality, row.enrolment = update["modality"], update["enrolment"]
            self.updates += 1
            self.last_update_monotonic = time.monotonic()
            if update["session_id"] == self.victim_session:
                self.victim_risk.append(update["risk"])

    def alert(self, alert: Alert) -> None:
        with self._lock:
            self.alerts.append(alert)

    def start_live(self) -> None:
        self.live_started = time.monotonic()

    def published(self, batch: RawBatch, truth: Any) -> None:
        with self._lock:
            self.events_published += batch.n_events
            self.live_sessions.add(batch.session_id)
            if batch.user == self.victim:
                self.victim_session = batch.session_id
            if truth.compromised and batch.n_events:
                presses = int(batch.keys.down.sum()) if len(batch.keys) else 0
                mouse = int((batch.mouse.kind != MouseKind.SCROLL).sum()) if len(batch.mouse) else 0
                self._impostor_input.append((batch.capture_time(batch.mono), presses, mouse))

    # -- questions for the summary -------------------------------------------------------------

    @property
    def alert_count(self) -> int:
        return len(self.alerts)

    def _is_true_positive(self, alert: Alert) -> bool:
        return alert.session_id == self.victim_session and alert.event_time >= self.takeover_wall_ms

    def first_victim_alert(self, min_level: Level) -> Alert | None:
        hits = [a for a in self.alerts if self._is_true_positive(a) and a.level >= min_level and a.status != "resolved"]
        return min(hits, key=lambda a: a.event_time, default=None)

    def false_alerts(self, min_level: Level) -> list[Alert]:
        return [a for a in self.alerts if not self._is_true_positive(a) and a.level >= min_level and a.status == "open"]

    def impostor_input_until(self, capture_ms: float) -> tuple[int, int]:
        keys = sum(k for t, k, _ in self._impostor_input if t <= capture_ms)
        mouse = sum(m for t, _, m in self._impostor_input if t <= capture_ms)
        return keys, mouse

    def genuine_sessions(self) -> int:
        return len(self.sessions) - (1 if self.victim_session in self.sessions else 0)

    # -- rendering ---------------------------------------------------------------------------------

    def render(self) -> Group:
        with self._lock:
            rows = sorted(self.sessions.items(), key=lambda kv: -kv[1].risk)
            live_rows = [(sid, r) for sid, r in rows if sid in self.live_sessions][:14]
            if self.victim_session in self.sessions and all(sid != self.victim_session for sid, _ in live_rows):
                live_rows.append((self.victim_session, self.sessions[self.victim_session]))
            alerts = list(self.alerts[-6:])
            elapsed = time.monotonic() - (self.live_started or time.monotonic())
            spark = "".join(SPARK[min(7, int(v / 12.5))] for v in self.victim_risk)
        table = Table(
            title=f"Sessions by risk — {elapsed:5.0f} s live, {self.events_published:,} events, "
            f"{self.updates:,} windows scored, {len(self.alerts)} alerts",
            expand=True,
        )
        for column in ("agent", "host", "risk", "level", "windows", "last modality", "profile"):
            table.add_column(column)
        for sid, row in live_rows:
            marker = " ← takeover" if sid == self.victim_session and time.time() * 1000 >= self.takeover_wall_ms else ""
            bar = "█" * int(row.risk / 5)
            table.add_row(
                Text(row.user + marker, style="bold" if sid == self.victim_session else ""),
                row.host,
                Text(f"{row.risk:5.1f} {bar}", style=LEVEL_STYLE.get(row.level, "")),
                Text(row.level, style=LEVEL_STYLE.get(row.level, "")),
                str(row.windows),
                row.modality,
                row.enrolment,
            )
        lines = [Text(f"{self.victim} risk over time: {spark}")]
        for alert in alerts:
            lines.append(
                Text(
                    f"ALERT {alert.level.label:<8} {alert.user}@{alert.host} risk {alert.risk:5.1f} "
                    f"({alert.modality}, {alert.status}) — " + ", ".join(r.feature for r in alert.reasons[:3]),
                    style=LEVEL_STYLE.get(alert.level.label, ""),
                )
            )
        return Group(table, *lines)

    def status_line(self) -> str:
        with self._lock:
            victim = self.sessions.get(self.victim_session or "")
            top = max(self.sessions.values(), key=lambda r: r.risk, default=None)
            elapsed = time.monotonic() - (self.live_started or time.monotonic())
        victim_text = f"{self.victim} risk {victim.risk:.0f} ({victim.level})" if victim else f"{self.victim}: -"
        top_text = f"top {top.user} {top.risk:.0f}" if top else ""
        return (
            f"[{elapsed:4.0f} s] {self.events_published:,} events, {self.updates:,} windows scored, "
            f"{len(self.alerts)} alerts; {victim_text}; {top_text}"
        )

    @contextlib.contextmanager
    def show(self, console: Console, *, enabled: bool) -> Iterator[None]:
        if not enabled or not console.is_terminal:
            # No terminal to redraw (CI, a pipe): a status line every few seconds instead.
            stop = threading.Event()

            def report() -> None:
                while not stop.wait(5.0):
                    console.print(self.status_line())

            thread = threading.Thread(target=report, daemon=True)
            thread.start()
            try:
                yield
            finally:
                stop.set()
                thread.join()
            return
        with Live(self.render(), console=console, refresh_per_second=4, transient=False) as live:
            stop = threading.Event()

            def refresh() -> None:
                while not stop.wait(0.25):
                    live.update(self.render())

            thread = threading.Thread(target=refresh, daemon=True)
            thread.start()
            try:
                yield
            finally:
                stop.set()
                thread.join()
                live.update(self.render())
