"""``touchstone kafka up|down|status``: the local single-node broker from the command line."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from touchstone.config import load_settings
from touchstone.errors import TouchstoneError
from touchstone.kafka.broker import DEFAULT_DATA_DIR, BrokerStatus, LocalBroker, kafka_version, resolve_jars
from touchstone.kafka.topics import ensure_topics

__all__ = ["kafka_app"]

kafka_app = typer.Typer(help="A local single-node Apache Kafka broker (KRaft) on 127.0.0.1.", no_args_is_help=True)

PortOpt = Annotated[int | None, typer.Option("--port", help="Broker port (default: port of TOUCHSTONE_BOOTSTRAP).")]
ControllerOpt = Annotated[int | None, typer.Option("--controller-port", help="Controller port (default: port+1).")]
DataDirOpt = Annotated[Path, typer.Option("--data-dir", help="Config, pid file, log and topic data.")]
NO_DIR = DEFAULT_DATA_DIR


def _broker(port: int | None, controller_port: int | None, data_dir: Path) -> LocalBroker:
    if port is None:
        port = int(load_settings().bootstrap.split(",")[0].rpartition(":")[2])
    return LocalBroker(port=port, controller_port=controller_port or port + 1, data_dir=data_dir)


def _show(status: BrokerStatus) -> None:
    state = "running" if status.running else ("reachable (not started here)" if status.reachable else "stopped")
    typer.echo(f"kafka: {state}")
    typer.echo(f"  bootstrap: {status.bootstrap}  reachable: {'yes' if status.reachable else 'no'}")
    typer.echo(f"  pid: {status.pid or '-'}  version: {status.version or '-'}")
    typer.echo(f"  data dir: {status.data_dir}  log: {status.log_file}")


def _fail(exc: TouchstoneError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


@kafka_app.command()
def resolve(force: Annotated[bool, typer.Option(help="Copy the jars again even if current.")] = False) -> None:
    """Resolve the Kafka jars from Maven Central (cached; no-op when deploy/kafka/pom.xml is unchanged)."""
    try:
        lib = resolve_jars(force=force)
    except TouchstoneError as exc:
        raise _fail(exc) from exc
    typer.echo(f"kafka {kafka_version(lib) or '?'} jars in {lib}")


@kafka_app.command()
def up(
    port: PortOpt = None,
    controller_port: ControllerOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the broker to answer.")] = 90.0,
    topics: Annotated[bool, typer.Option(help="Create Touchstone's topics.")] = True,
) -> None:
    """Fetch the jars if needed, start the broker (or reuse a running one), create the topics."""
    broker = _broker(port, controller_port, data_dir)
    try:
        status = broker.start(wait=True, timeout=timeout)
        if topics:
            created = ensure_topics(load_settings(bootstrap=broker.bootstrap))
            typer.echo(f"topics created: {', '.join(created) if created else 'none (all existed)'}")
    except TouchstoneError as exc:
        raise _fail(exc) from exc
    if status.reused:
        typer.echo(f"reusing the broker already answering on {status.bootstrap}")
    typer.echo(status.bootstrap)


@kafka_app.command()
def down(port: PortOpt = None, controller_port: ControllerOpt = None, data_dir: DataDirOpt = NO_DIR) -> None:
    """Stop the broker started from the data dir (SIGTERM, then SIGKILL)."""
    try:
        stopped = _broker(port, controller_port, data_dir).stop()
    except TouchstoneError as exc:
        raise _fail(exc) from exc
    typer.echo("kafka: stopped" if stopped else "kafka: no broker of this data dir was running")


@kafka_app.command()
def status(port: PortOpt = None, controller_port: ControllerOpt = None, data_dir: DataDirOpt = NO_DIR) -> None:
    """Show the broker's state; exit 0 when a broker answers on the port, else 1."""
    current = _broker(port, controller_port, data_dir).status()
    _show(current)
    raise typer.Exit(0 if current.reachable else 1)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    kafka_app()
