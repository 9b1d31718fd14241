"""``make demo``: the whole pipeline on one machine, a simulated fleet, one impostor, a live view and a summary.

1. Kafka: reuse the broker at ``TOUCHSTONE_BOOTSTRAP`` or start the local one.
2. Fresh topics for this run (so an earlier run's data never leaks into the summary).
3. Stream workers (streams + detect stages) and the sink worker (SIEM topic + JSONL file).
4. Enrolment: every agent's past sessions, published as fast as possible.
5. Live: the fleet works in real time; one agent's session is taken over by an outsider.
6. Summary: caught or not, how fast, false alerts, throughput.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from touchstone.config import Settings
from touchstone.contracts import Level, decode_alert
from touchstone.demo_view import LiveBoard
from touchstone.kafka import LocalBroker, consumer_lag, ensure_topics, is_reachable
from touchstone.kafka.io import make_producer, produce_batches
from touchstone.procs import ManagedProcess, start_touchstone

__all__ = ["DemoReport", "run_demo"]

log = logging.getLogger(__name__)

VICTIM = "agent-000"
COLLEAGUE = "agent-025"  # whose behaviour takes over the victim's session by default


@dataclass
class DemoReport:
    agents: int
    takeover_wall_ms: float
    victim_session: str
    enrolment_events: int = 0
    enrolment_seconds: float = 0.0
    live_events: int = 0
    live_seconds: float = 0.0
    first_alert: dict[str, Any] | None = None
    false_alerts: list[dict[str, Any]] = field(default_factory=list)
    alerts_total: int = 0
    victim_keystrokes_before_alert: int = 0
    victim_mouse_events_before_alert: int = 0


@contextlib.contextmanager
def _broker(settings: Settings, console: Console, run_dir: Path) -> Iterator[str]:
    if is_reachable(settings.bootstrap):
        console.print(f"[dim]Kafka: reusing the broker at {settings.bootstrap}[/]")
        yield settings.bootstrap
        return
    port = settings.bootstrap.split(",")[0].rpartition(":")[2]
    broker = LocalBroker(port=int(port))
    console.print(f"[dim]Kafka: starting a local KRaft broker on 127.0.0.1:{port} …[/]")
    broker.start(wait=True, timeout=120)
    try:
        yield broker.bootstrap
    finally:
        console.print("[dim]Kafka: stopping the broker we started[/]")
        broker.stop()


def _quiet_librdkafka() -> logging.Logger:
    """librdkafka's own log, kept to errors: a broker still loading says so and is retried."""
    quiet = logging.getLogger("touchstone.demo.librdkafka")
    quiet.setLevel(logging.ERROR)
    return quiet


def _routes_file(run_dir: Path) -> Path:
    path = run_dir / "routes.yaml"
    path.write_text(
        "version: 1\n"
        "sinks:\n"
        "  siem: {type: siem, format: ecs}\n"
        f"  local-log: {{type: jsonl, path: {run_dir / 'alerts.jsonl'}, format: alert}}\n"
        "routes:\n"
        "  - {name: everything, sinks: [siem, local-log]}\n"
    )
    return path


def _start_processes(settings: Settings, run_dir: Path, workers: int, app_id: str) -> list[ManagedProcess]:
    procs = [
        start_touchstone(f"worker-{i}", ["worker", "--app-id", app_id, "--log-level", "warning"], settings, run_dir)
        for i in range(workers)
    ]
    procs.append(start_touchstone("sinks", ["sinks", "--routes", str(_routes_file(run_dir))], settings, run_dir))
    return procs


class _Watcher(threading.Thread):
    """Reads the risk and alert topics into the live board."""

    def __init__(self, settings: Settings, board: LiveBoard) -> None:
        super().__init__(daemon=True, name="demo-watcher")
        self.settings, self.board = settings, board
        self.stop_event = threading.Event()

    def run(self) -> None:
        from confluent_kafka import Consumer

        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.bootstrap,
                "group.id": f"demo-view-{uuid.uuid4().hex[:6]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([self.settings.topic_risk, self.settings.topic_alerts])
        try:
            while not self.stop_event.is_set():
                for msg in consumer.consume(num_messages=1000, timeout=0.2):
                    if msg.error() is not None:
                        continue
                    if msg.topic() == self.settings.topic_alerts:
                        self.board.alert(decode_alert(msg.value()))
                    else:
                        self.board.risk(orjson.loads(msg.value()))
        finally:
            consumer.close()


def _wait_settled(
    board: LiveBoard, settings: Settings, app_id: str, quiet_s: float, timeout_s: float, procs: list[ManagedProcess]
) -> None:
    """Until the workers have consumed every raw batch and no risk update came for ``quiet_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not all(p.alive() for p in procs):
            raise RuntimeError("a pipeline process died:\n" + "\n".join(p.log_tail(15) for p in procs if not p.alive()))
        quiet = time.monotonic() - board.last_update_monotonic > quiet_s
        if board.updates and quiet and consumer_lag(settings.bootstrap, app_id, settings.topic_raw) == 0:
            return
        time.sleep(1.0)


def run_demo(
    settings: Settings,
    *,
    agents: int = 50,
    duration_s: float = 360.0,
    workers: int = 1,
    live: bool = True,
    impostor: str = "colleague",
    history_s: float = 600.0,
    history_sessions: int = 4,
    takeover_at_s: float = 60.0,
    seed: int = 8,
) -> int:
    """Run the demo; returns 0 when the impostor was caught, 1 otherwise.

    ``impostor``: ``colleague`` (another agent of the fleet uses the victim's session: the insider
    case, and the one the fleet models learn) or ``outsider`` (a person the fleet never saw; the
    simulator draws them from the population, and detecting them takes longer).
    """
    from touchstone.collectors.batcher import BatchPolicy
    from touchstone.collectors.simulate import Fleet, Takeover

    console = Console()
    run_id = uuid.uuid4().hex[:6]
    run_dir = Path(settings.state_dir) / "demo" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    topics = {
        name: f"{getattr(settings, name)}.demo-{run_id}"
        for name in (
            "topic_raw",
            "topic_raw_full",
            "topic_features",
            "topic_alerts",
            "topic_siem",
            "topic_risk",
            "topic_dead_letter",
        )
    }
    procs: list[ManagedProcess] = []
    with _broker(settings, console, run_dir) as bootstrap:
        # One partition per worker: each features partition has its own fleet models, and a 50-agent
        # demo fleet split four ways would leave each model a dozen users to learn "other people" from
        # (a production partition holds hundreds). See docs/scaling.md.
        settings = settings.replace(
            bootstrap=bootstrap, state_dir=str(run_dir / "state"), partitions=max(1, workers), **topics
        )
        ensure_topics(settings)
        takeover_at = min(takeover_at_s, duration_s / 2.0)
        intruder = COLLEAGUE if impostor == "colleague" and agents > 1 else f"outsider-{run_id}"
        if intruder == COLLEAGUE and int(COLLEAGUE.rpartition("-")[2]) >= agents:
            intruder = f"agent-{agents - 1:03d}"
        fleet = Fleet(
            agents,
            seed=seed,
            takeovers=[Takeover(VICTIM, takeover_at, intruder)],
            policy=BatchPolicy.from_settings(settings),
        )
        board = LiveBoard(victim=VICTIM, takeover_wall_ms=fleet.start_ms + takeover_at * 1000.0)
        watcher = _Watcher(settings, board)
        try:
            app_id = f"touchstone-demo-{run_id}"
            procs = _start_processes(settings, run_dir, workers, app_id)
            watcher.start()
            producer = make_producer(bootstrap, logger=_quiet_librdkafka())
            console.rule("[bold]Touchstone demo")
            console.print(
                f"{agents} agents, {workers} worker(s); enrolment from {history_sessions}×{history_s:.0f} s of past "
                f"sessions each, then {duration_s:.0f} s live; [bold red]{VICTIM}[/]'s session is taken over at "
                f"{takeover_at:.0f} s by {intruder} ({impostor}). Logs: {run_dir}"
            )
            started = time.monotonic()
            events = 0
            with console.status("enrolment: publishing past sessions …"):
                for batch in fleet.history(history_s, sessions=history_sessions, gap_s=60.0):
                    produce_batches(producer, settings.topic_raw, [batch])
                    events += batch.n_events
                producer.flush(60)
            with console.status("enrolment: workers learning every agent's profile …"):
                _wait_settled(board, settings, app_id, quiet_s=5.0, timeout_s=900.0, procs=procs)
            enrol_s = time.monotonic() - started
            console.print(
                f"enrolment: {events:,} events in {enrol_s:.1f} s ({events / enrol_s:,.0f} events/s end to end), "
                f"{board.updates:,} windows scored"
            )
            # Live capture times start now, however long enrolment took.
            live_start_ms = time.time() * 1000.0
            board.takeover_wall_ms = live_start_ms + takeover_at * 1000.0
            board.start_live()
            report = DemoReport(agents, board.takeover_wall_ms, "", enrolment_events=events, enrolment_seconds=enrol_s)
            live_started = time.monotonic()
            live_events = 0
            with board.show(console, enabled=live):
                for batch, truth in fleet.iter_labelled(duration_s, realtime=True, start_ms=live_start_ms):
                    produce_batches(producer, settings.topic_raw, [batch])
                    live_events += batch.n_events
                    board.published(batch, truth)
                    if not all(p.alive() for p in procs):
                        raise RuntimeError("a pipeline process died; see its log in " + str(run_dir))
                producer.flush(30)
                _wait_settled(board, settings, app_id, quiet_s=3.0, timeout_s=120.0, procs=procs)
            report.live_events = live_events
            report.live_seconds = time.monotonic() - live_started
            del producer  # its connections close before the broker stops
            return _summarise(console, board, report)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted: stopping the pipeline[/]")
            return 130
        finally:
            watcher.stop_event.set()
            for proc in procs:
                proc.stop(timeout=15)


def _summarise(console: Console, board: LiveBoard, report: DemoReport) -> int:
    caught = board.first_victim_alert(Level.MEDIUM)
    false_alerts = board.false_alerts(Level.MEDIUM)
    console.rule("[bold]Summary")
    if caught is not None:
        delay_s = (caught.event_time - board.takeover_wall_ms) / 1000.0
        keys, mouse = board.impostor_input_until(caught.event_time)
        console.print(
            f"[bold green]Impostor caught[/] on {caught.user}@{caught.host}: {caught.level.label} alert, risk "
            f"{caught.risk:.0f}, {delay_s:.1f} s after the takeover, after {keys} keystrokes and {mouse} mouse "
            f"events of the impostor ({caught.modality}; why: "
            + ", ".join(f"{r.feature} {r.value:.3g} vs {r.expected:.3g}" for r in caught.reasons[:3])
            + ")"
        )
    else:
        console.print(f"[bold red]Impostor NOT caught[/] (no medium alert) on {VICTIM}'s session")
        notice = board.first_victim_alert(Level.LOW)
        if notice is not None:
            after_s = (notice.event_time - board.takeover_wall_ms) / 1000.0
            console.print(
                f"  its session raised a low-level notice {after_s:.1f} s after the takeover (risk "
                f"{notice.risk:.0f}); a longer --duration gives the evidence more time"
            )
    genuine = board.genuine_sessions()
    console.print(
        f"False alerts (medium or above) on genuine activity: {len(false_alerts)} across {genuine} genuine "
        f"sessions; alerts of any level: {board.alert_count}; low-level notices on genuine sessions: "
        f"{len(board.false_alerts(Level.LOW))}"
    )
    console.print(
        f"Throughput: enrolment {report.enrolment_events / max(report.enrolment_seconds, 1e-9):,.0f} events/s "
        f"(as fast as possible), live {report.live_events / max(report.live_seconds, 1e-9):,.0f} events/s "
        f"(real time, {report.agents} agents); windows scored: {board.updates:,}"
    )
    return 0 if caught is not None else 1
