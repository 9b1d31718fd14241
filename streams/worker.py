"""Running one Faust worker process for the configured stages."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import faust

from touchstone.config import Settings
from touchstone.metrics import serve_metrics
from touchstone.streams.app import create_app

__all__ = ["run_worker"]

log = logging.getLogger(__name__)


def run_worker(
    settings: Settings, *, stages: Sequence[str], app_id: str = "touchstone", loglevel: str = "info"
) -> None:
    """Blocks until the worker is stopped (SIGINT/SIGTERM); Faust handles rebalancing and recovery."""
    from touchstone.kafka import ensure_topics

    ensure_topics(settings)
    app = create_app(settings, app_id=app_id, stages=stages)
    serve_metrics(settings.metrics_port, host=settings.metrics_host)
    log.info("worker %s: stages %s on %s", app_id, ",".join(stages), settings.bootstrap)
    # Faust warns each time its changelog buffer passes 100 messages; that is flow control, not a fault.
    logging.getLogger("faust.transport.producer").setLevel(logging.ERROR)
    faust.Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
