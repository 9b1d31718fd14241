"""``touchstone sinks``: run the sink worker, check a routes file, render alerts in sink formats.

Mounted by the main CLI as ``app.add_typer(sinks_app, name="sinks")``; also runnable as
``python -m touchstone.sinks.cli``.

- ``touchstone sinks --routes FILE`` — run the worker until SIGTERM/SIGINT;
- ``touchstone sinks check --routes FILE`` — validate, then print sinks and routes (secrets masked);
- ``touchstone sinks render --format ecs < alerts.jsonl`` — print alert/1 lines in a sink's format.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import orjson
import typer

from touchstone.config import load_settings
from touchstone.contracts import decode_alert
from touchstone.errors import TouchstoneError
from touchstone.sinks.incidents import plan_steps
from touchstone.sinks.pagerduty import pagerduty_event
from touchstone.sinks.routing import load_routes
from touchstone.sinks.siem import render_siem
from touchstone.sinks.slack import slack_message
from touchstone.sinks.worker import run_sinks

__all__ = ["sinks_app"]

log = logging.getLogger(__name__)

sinks_app = typer.Typer(
    help="Deliver alerts to the SIEM topic, Slack, PagerDuty, webhooks and JSONL, as routed by a routes file.",
    invoke_without_command=True,
)

RoutesOpt = Annotated[Path | None, typer.Option("--routes", help="Routes file (YAML); see deploy/sinks/.")]
RENDER_FORMATS = ("ecs", "ocsf", "cef", "slack", "pagerduty")


def _fail(exc: TouchstoneError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


@sinks_app.callback()
def run(
    ctx: typer.Context,
    routes: RoutesOpt = None,
    bootstrap: Annotated[str | None, typer.Option(help="Kafka bootstrap (default: TOUCHSTONE_BOOTSTRAP).")] = None,
) -> None:
    """Run the sink worker (when no sub-command is given)."""
    if ctx.invoked_subcommand is not None:
        return
    if routes is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(2)
    try:
        settings = load_settings(bootstrap=bootstrap)
        logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        config = load_routes(routes)
    except TouchstoneError as exc:
        raise _fail(exc) from exc
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: finishing the current batch and stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        totals = run_sinks(settings, config, stop_event=stop)
    except TouchstoneError as exc:
        raise _fail(exc) from exc
    typer.echo(
        f"sinks stopped: {totals.alerts} alert(s), {totals.invalid} invalid, "
        f"{totals.delivered} delivered, {totals.dead_lettered} dead-lettered"
    )


@sinks_app.command()
def check(routes: RoutesOpt = None) -> None:
    """Validate a routes file (secrets must resolve) and show what it does."""
    if routes is None:
        typer.echo("error: --routes is required", err=True)
        raise typer.Exit(2)
    try:
        config = load_routes(routes)
    except TouchstoneError as exc:
        raise _fail(exc) from exc
    typer.echo(f"{config.source}: {len(config.sinks)} sink(s), {len(config.routes)} route(s)")
    for name, spec in config.sinks.items():
        typer.echo(f"  sink {name}: {spec.type} {spec.options!r}")
    for route in config.routes:
        filters = [f"level >= {route.min_level.label}"]
        if route.user_groups:
            filters.append(f"groups {', '.join(route.user_groups)}")
        if route.modalities:
            filters.append(f"modalities {', '.join(route.modalities)}")
        typer.echo(f"  route {route.name}: {'; '.join(filters)} -> {', '.join(route.sinks)}")


@sinks_app.command()
def render(
    fmt: Annotated[str, typer.Option("--format", help=f"One of {', '.join(RENDER_FORMATS)}.")] = "ecs",
    source: Annotated[Path | None, typer.Argument(help="alert/1 JSON lines [default: stdin].")] = None,
) -> None:
    """Print alerts (alert/1 JSON lines) as a sink would send them; no network."""
    if fmt not in RENDER_FORMATS:
        typer.echo(f"error: --format must be one of {', '.join(RENDER_FORMATS)}", err=True)
        raise typer.Exit(2)
    lines = source.read_bytes().splitlines() if source is not None else sys.stdin.buffer.read().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            alert = decode_alert(line)
        except TouchstoneError as exc:
            typer.echo(f"line {number}: {exc}", err=True)
            raise typer.Exit(2) from exc
        if fmt in {"slack", "pagerduty"}:
            for step in plan_steps([alert], None, now=alert.created_at / 1000.0):
                body = slack_message(step) if fmt == "slack" else pagerduty_event(step, "ROUTING-KEY")
                typer.echo(orjson.dumps(body).decode())
        else:
            typer.echo(render_siem(alert, fmt).decode())


if __name__ == "__main__":
    sinks_app()
