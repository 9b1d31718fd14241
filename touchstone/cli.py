"""The ``touchstone`` command. Sub-commands import their stage lazily so ``--help`` stays fast."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from touchstone import __version__
from touchstone.config import Settings, load_settings
from touchstone.errors import TouchstoneError
from touchstone.kafka.cli import kafka_app

app = typer.Typer(
    help="Touchstone: is the person at this workstation still the agent who logged in?",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(kafka_app, name="kafka")
evaluate_app = typer.Typer(help="Measure detection quality on a public dataset (in-process, same code as the workers).")
app.add_typer(evaluate_app, name="evaluate")

BootstrapOpt = Annotated[str | None, typer.Option("--bootstrap", help="Kafka bootstrap servers (default from env).")]


def _settings(**overrides: object) -> Settings:
    return load_settings(**{k: v for k, v in overrides.items() if v is not None})


def _mount_optional() -> None:
    """Commands owned by stages; each registers itself if its module is present."""
    try:
        from touchstone.collectors.cli import collect_command, replay_app

        app.command("collect", help="Capture this workstation's keyboard and mouse and publish to Kafka.")(
            collect_command
        )
        app.add_typer(replay_app, name="replay", help="Replay a dataset's sessions into the raw topic.")
    except ImportError as exc:  # pragma: no cover - only while a stage is being built
        logging.getLogger(__name__).debug("collector commands unavailable: %s", exc)
    try:
        from touchstone.sinks.cli import sinks_command

        app.command("sinks", help="Deliver alerts to the SIEM topic, Slack, PagerDuty, webhooks.")(sinks_command)
    except ImportError as exc:  # pragma: no cover
        logging.getLogger(__name__).debug("sink commands unavailable: %s", exc)


@app.command()
def version() -> None:
    """Print the Touchstone version."""
    typer.echo(__version__)


@app.command("config")
def show_config(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Print every setting: environment variable, effective value, meaning."""
    settings = load_settings()
    rows = [
        {"env": env, "value": getattr(settings, env.removeprefix("TOUCHSTONE_").lower()), "doc": doc}
        for env, _kind, _default, doc in Settings.describe()
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        typer.echo(f"{row['env']:<32} {row['value']!s:<28} {row['doc']}")


@app.command()
def topics(bootstrap: BootstrapOpt = None, partitions: int | None = None) -> None:
    """Create Touchstone's topics (idempotent) with the configured partition counts."""
    from touchstone.kafka import ensure_topics

    settings = _settings(bootstrap=bootstrap, partitions=partitions)
    created = ensure_topics(settings)
    typer.echo(f"created: {', '.join(created) if created else 'none (all present)'}")


@app.command()
def worker(
    bootstrap: BootstrapOpt = None,
    stages: Annotated[str, typer.Option(help="Comma-separated stages to run: streams, detect.")] = "streams,detect",
    app_id: Annotated[str, typer.Option(help="Faust app id = consumer group; workers sharing it share work.")] = (
        "touchstone"
    ),
    metrics_port: Annotated[int | None, typer.Option(help="Serve Prometheus /metrics on this port.")] = None,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
) -> None:
    """Run one stream worker (raw batches → feature windows → alerts). Start more to share partitions."""
    from touchstone.streams.worker import run_worker

    settings = _settings(bootstrap=bootstrap, metrics_port=metrics_port)
    run_worker(settings, stages=[s.strip() for s in stages.split(",") if s.strip()], app_id=app_id, loglevel=log_level)


@app.command()
def simulate(
    agents: Annotated[int, typer.Option(help="Simulated agents (one session each).")] = 20,
    duration: Annotated[float, typer.Option(help="Seconds of behaviour per agent.")] = 60.0,
    impostor_at: Annotated[
        float | None, typer.Option(help="Seconds into agent 0's session an impostor takes over.")
    ] = (None),
    speed: Annotated[float | None, typer.Option(help="Replay speed (1 = real time); omit for as fast as possible.")] = (
        None
    ),
    seed: int = 7,
    bootstrap: BootstrapOpt = None,
) -> None:
    """Publish a simulated fleet's raw batches to the raw topic."""
    from touchstone.collectors.sim_publish import publish_simulation

    settings = _settings(bootstrap=bootstrap)
    summary = publish_simulation(
        settings, agents=agents, duration_s=duration, impostor_at_s=impostor_at, speed=speed, seed=seed
    )
    typer.echo(json.dumps(summary, indent=2))


def _write_report(report: dict[str, object], json_out: Path | None) -> None:
    text = json.dumps(report, indent=2, sort_keys=True)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(text + "\n")
    typer.echo(text)


@evaluate_app.command("balabit")
def evaluate_balabit(
    data: Annotated[Path, typer.Option(help="Directory with training_files/ and test_files/.")],
    labels: Annotated[Path | None, typer.Option(help="CSV of filename,is_illegal.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the report here.")] = None,
    privacy: Annotated[str, typer.Option(help="Privacy mode label (mouse data carries no keys).")] = "timing",
    via_kafka: Annotated[bool, typer.Option(help="Also check a small subset through the real pipeline.")] = False,
) -> None:
    """Balabit Mouse Dynamics Challenge: session AUC, and AUC after the first 1/5/10/20 actions."""
    from touchstone.detectors.evaluate_balabit import evaluate_balabit as run

    if labels is None:
        found = sorted(data.glob("public_labels*.csv"))
        if not found:
            raise typer.BadParameter(f"no labels CSV in {data}; pass --labels", param_hint="--labels")
        labels = found[0]
    report = run(data, labels, privacy=privacy)
    if via_kafka:
        from touchstone.detectors.via_kafka import check_balabit_via_kafka

        report["via_kafka"] = check_balabit_via_kafka(data, labels, _settings())
    _write_report(report, json_out)


@evaluate_app.command("aalto")
def evaluate_aalto(
    data: Annotated[Path, typer.Option(help="Directory of <id>_keystrokes.txt files.")],
    population: Annotated[Path | None, typer.Option(help="Disjoint users for population learning.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the report here.")] = None,
    privacy: Annotated[str, typer.Option(help="timing | keyed | full")] = "keyed",
    max_users: Annotated[int | None, typer.Option(help="Evaluate only the first N users.")] = None,
    via_kafka: Annotated[bool, typer.Option(help="Also check a small subset through the real pipeline.")] = False,
) -> None:
    """Aalto 136M keystrokes: per-user and global EER at 50/100/150 keystrokes (TypeNet-like protocol)."""
    from touchstone.detectors.evaluate_aalto import evaluate_aalto as run

    if data.is_dir() and (data / "keystrokes").is_dir():
        data = data / "keystrokes"
    report = run(data, population_dir=population, privacy=privacy, max_users=max_users)
    if via_kafka:
        from touchstone.detectors.via_kafka import check_aalto_via_kafka

        report["via_kafka"] = check_aalto_via_kafka(data, _settings(), privacy=privacy)
    _write_report(report, json_out)


@app.command()
def demo(
    agents: Annotated[int, typer.Option(help="Simulated agents in the fleet.")] = 50,
    duration: Annotated[float, typer.Option(help="Seconds of live fleet activity after enrolment.")] = 90.0,
    workers: Annotated[int, typer.Option(help="Stream worker processes.")] = 1,
    live: Annotated[bool, typer.Option(help="Show the live terminal view.")] = True,
) -> None:
    """Kafka, workers, sinks and a simulated fleet with an impostor: live view, then a summary."""
    from touchstone.demo import run_demo

    raise typer.Exit(run_demo(_settings(), agents=agents, duration_s=duration, workers=workers, live=live))


@app.command()
def bench(
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the report here.")] = None,
    quick: Annotated[bool, typer.Option(help="Smaller loads (for a smoke run).")] = False,
) -> None:
    """Benchmarks on the real broker; one JSON report."""
    from touchstone.bench.run import run_bench

    _write_report(run_bench(_settings(), quick=quick), json_out)


def main() -> None:
    _mount_optional()
    try:
        app()
    except TouchstoneError as exc:
        typer.secho(f"touchstone: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
