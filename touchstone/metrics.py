"""Serving Prometheus metrics: one helper every long-running command uses."""

from __future__ import annotations

import logging

from prometheus_client import start_http_server

__all__ = ["serve_metrics"]

log = logging.getLogger(__name__)


def serve_metrics(port: int, *, host: str = "127.0.0.1") -> None:
    """Start the /metrics endpoint on ``host:port`` (port 0 = metrics off)."""
    if port <= 0:
        return
    start_http_server(port, addr=host)
    log.info("metrics on http://%s:%d/metrics", host, port)
