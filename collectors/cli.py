"""Command-line entry points of the collectors, mounted by ``touchstone/cli.py``:

- ``collect_command`` as ``touchstone collect``;
- ``replay_app`` as ``touchstone replay`` (``balabit`` and ``aalto`` sub-commands).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from touchstone.config import Settings, load_settings
from touchstone.errors import TouchstoneError

if TYPE_CHECKING:
    from touchstone.collectors.replay import ReplayReport

__all__ = ["collect_command", "replay_app"]

log = logging.getLogger(__name__)

replay_app = typer.Typer(help="Replay recorded datasets to the raw topic.", no_args_is_help=True)


def _settings(bootstrap: str | None) -> Settings:
    settings = load_settings(bootstrap=bootstrap)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return settings


def _lean_argv(options: dict[str, object]) -> list[str]:
    argv = [sys.executable, "-m", "touchstone.collectors.collect"]
    for name, value in options.items():
        if value is True:
            argv.append(f"--{name}")
        elif value is not None and value is not False:
            argv += [f"--{name}", str(value)]
    return argv


def collect_command(
    user: Annotated[
        str | None, typer.Option(help="Agent id to stamp on batches (default: --user-file, else the OS login).")
    ] = None,
    user_file: Annotated[
        Path | None,
        typer.Option(help="File naming the agent on its first line; re-read while running, a change starts a session."),
    ] = None,
    privacy: Annotated[
        str | None, typer.Option(help="timing (default), keyed, or full (needs the authorisation flag).")
    ] = None,
    full_authorised: Annotated[
        bool,
        typer.Option(
            "--i-have-authorisation-for-full-capture",
            help="Required with --privacy full: raw key names (what is typed) leave the machine.",
        ),
    ] = False,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until Ctrl-C).")
    ] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Serve Prometheus /metrics on this port (0 = off).")] = None,
    bootstrap: Annotated[str | None, typer.Option(help="Kafka bootstrap servers (default: settings).")] = None,
    capture_backend: Annotated[
        str, typer.Option(help="auto (XRecord on X11, else pynput), xrecord or pynput.")
    ] = "auto",
    in_process: Annotated[
        bool, typer.Option(hidden=True, help="Run inside this process instead of exec'ing the lean collector.")
    ] = False,
) -> None:
    """Capture this workstation's keyboard and mouse timing and publish it to Kafka.

    The collector runs all day on every agent's machine, so this command replaces itself (exec, same
    pid, same signals) with the lean entry point ``python -m touchstone.collectors.collect``: the
    Typer/rich/pydantic stack and numpy that the ``touchstone`` CLI loads would otherwise stay
    resident, about 30 MB of a 60 MB budget.
    """
    if privacy is not None and privacy not in ("timing", "keyed", "full"):
        raise typer.BadParameter("must be timing, keyed or full", param_hint="--privacy")
    if capture_backend not in ("auto", "xrecord", "pynput"):
        raise typer.BadParameter("must be auto, xrecord or pynput", param_hint="--capture-backend")
    if not in_process:
        argv = _lean_argv(
            {
                "user": user, "user-file": user_file, "privacy": privacy,
                "i-have-authorisation-for-full-capture": full_authorised, "duration": duration,
                "metrics-port": metrics_port, "bootstrap": bootstrap, "capture-backend": capture_backend,
            }
        )  # fmt: skip
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.execv(argv[0], argv)
        except OSError as exc:  # no usable interpreter path (embedded Python): run here instead
            log.warning("cannot exec the lean collector (%s); running inside the CLI process", exc)
    from touchstone.collectors.collect import run_collector, summary_line

    settings = _settings(bootstrap)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        report = run_collector(
            settings,
            user=user,
            privacy=privacy,
            allow_full=full_authorised,
            duration_s=duration,
            stop_event=stop,
            metrics_port=metrics_port,
            capture_backend=capture_backend,
            user_file=user_file,
        )
    except (TouchstoneError, ValueError) as exc:
        typer.echo(f"touchstone collect: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    typer.echo(summary_line(report))


def _speed(speed: float, fast: bool) -> float | None:
    if fast:
        return None
    if not speed > 0:
        raise typer.BadParameter("--speed must be positive")
    return speed


def _print(report: ReplayReport) -> None:
    typer.echo(
        f"{report.sessions} sessions, {report.batches} batches, {report.events} events in "
        f"{report.duration_s:.1f}s; {report.delivered} delivered, {report.undelivered} undelivered"
    )
    if report.undelivered:
        raise typer.Exit(1)


DataOption = Annotated[Path, typer.Option("--data", exists=True, help="Dataset directory.")]
SpeedOption = Annotated[float, typer.Option(help="Replay speed: 1 = recorded speed, 10 = ten times faster.")]
FastOption = Annotated[bool, typer.Option("--fast", help="As fast as Kafka takes it (ignores --speed).")]
LimitOption = Annotated[int | None, typer.Option("--limit", help="Replay only the first N files.")]
TagOption = Annotated[str | None, typer.Option(help="Suffix for session ids, to replay files again as new sessions.")]
BootstrapOption = Annotated[str | None, typer.Option(help="Kafka bootstrap servers (default: settings).")]


@replay_app.command("balabit")
def replay_balabit_command(
    data: DataOption,
    speed: SpeedOption = 1.0,
    fast: FastOption = False,
    limit: LimitOption = None,
    run_tag: TagOption = None,
    bootstrap: BootstrapOption = None,
) -> None:
    """Replay Balabit mouse sessions (each session file becomes one session)."""
    from touchstone.collectors.replay import replay_balabit

    settings = _settings(bootstrap)
    try:
        report = replay_balabit(data, settings, _speed(speed, fast), limit, run_tag=run_tag)
    except (TouchstoneError, FileNotFoundError) as exc:
        typer.echo(f"touchstone replay balabit: {exc}", err=True)
        raise typer.Exit(2) from None
    _print(report)


@replay_app.command("aalto")
def replay_aalto_command(
    data: DataOption,
    speed: SpeedOption = 1.0,
    fast: FastOption = False,
    limit: LimitOption = None,
    privacy: Annotated[str | None, typer.Option(help="timing (default) or keyed.")] = None,
    per_sentence: Annotated[bool, typer.Option(help="One session per typed sentence.")] = False,
    run_tag: TagOption = None,
    bootstrap: BootstrapOption = None,
) -> None:
    """Replay Aalto keystroke files (each participant file becomes one session)."""
    from touchstone.collectors.replay import replay_aalto

    settings = _settings(bootstrap)
    try:
        report = replay_aalto(
            data, settings, _speed(speed, fast), limit, privacy=privacy, per_sentence=per_sentence, run_tag=run_tag
        )
    except (TouchstoneError, FileNotFoundError) as exc:
        typer.echo(f"touchstone replay aalto: {exc}", err=True)
        raise typer.Exit(2) from None
    _print(report)
