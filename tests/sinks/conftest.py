"""Fixtures of the sinks tests: local Slack-like and PagerDuty-like receivers, stores, metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer

import pytest
from sink_receivers import SLACK_OK, Received, Receiver, Reply, pd_accepted, serve

from touchstone.sinks.metrics import SinkMetrics
from touchstone.sinks.store import DeliveryStore


@pytest.fixture
def receiver_factory() -> Iterator:
    servers: list[ThreadingHTTPServer] = []

    def make(default: Reply, path: str = "/", respond: Callable[[Received], Reply] | None = None) -> Receiver:
        receiver = Receiver(default=default, respond=respond)
        server, _ = serve(receiver)
        servers.append(server)
        receiver.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
        return receiver

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def slack(receiver_factory) -> Receiver:
    return receiver_factory(SLACK_OK, "/services/T000/B000/XXXX")


@pytest.fixture
def pager(receiver_factory) -> Receiver:
    return receiver_factory(pd_accepted(), "/v2/enqueue", respond=lambda r: pd_accepted(r.json().get("dedup_key", "")))


@pytest.fixture
def metrics() -> SinkMetrics:
    return SinkMetrics()


@pytest.fixture
def store() -> Iterator[DeliveryStore]:
    db = DeliveryStore()
    yield db
    db.close()


class Sleeps:
    """A fake sleep recording what the delivery policy asked for."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()
