"""Running one Faust worker process for the configured stages."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import faust

from touchstone.config import Settings
from touchstone.metrics import serve_metrics
from touchstone.streams.app import create_app

__all__ = ["run_worker", "use_event_loop"]

log = logging.getLogger(__name__)


def use_event_loop(choice: str) -> str:
    """Install the event loop policy before Faust creates its loops; returns the loop in use.

    Faust pays asyncio overhead on every message (tasks, waits, queues), which uvloop makes cheaper.
    """
    if choice != "uvloop":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        log.warning("uvloop is not installed; the worker runs on the asyncio event loop")
        return "asyncio"
    import mode.loop

    mode.loop.use("uvloop")
    return "uvloop"


def run_worker(
    settings: Settings, *, stages: Sequence[str], app_id: str = "touchstone", loglevel: str = "info"
) -> None:
    """Blocks until the worker is stopped (SIGINT/SIGTERM); Faust handles rebalancing and recovery."""
    from touchstone.kafka import ensure_topics

    ensure_topics(settings)
    loop = use_event_loop(settings.worker_event_loop)
    app = create_app(settings, app_id=app_id, stages=stages)
    serve_metrics(settings.metrics_port, host=settings.metrics_host)

    @app.task
    async def announce() -> None:  # once Faust has set up logging, which it does on start
        log.info("worker %s: stages %s on %s (%s event loop)", app_id, ",".join(stages), settings.bootstrap, loop)

    # Faust warns each time its changelog buffer passes 100 messages; that is flow control, not a fault.
    logging.getLogger("faust.transport.producer").setLevel(logging.ERROR)
    faust.Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
