"""A broker for one run: the configured one when it answers, else a private one on free ports."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from touchstone.config import Settings
from touchstone.kafka.broker import LocalBroker, free_port, is_reachable

__all__ = ["broker_for_run"]


@contextlib.contextmanager
def broker_for_run(
    settings: Settings, data_dir: Path, *, say: Callable[[str], None] = lambda _msg: None
) -> Iterator[Settings]:
    """``settings`` pointing at a reachable broker for the ``with`` block.

    Reuses the broker at ``settings.bootstrap`` if one answers (it is left running); otherwise
    starts a private KRaft broker under ``data_dir`` on free ports and stops it afterwards, so a
    benchmark or check never collides with a broker someone else is using.
    """
    if is_reachable(settings.bootstrap):
        say(f"Kafka: reusing the broker at {settings.bootstrap}")
        yield settings
        return
    broker = LocalBroker(port=free_port(), controller_port=free_port(), data_dir=Path(data_dir) / "kafka")
    say(f"Kafka: starting a private KRaft broker on {broker.bootstrap} …")
    broker.start(wait=True, timeout=120)
    try:
        yield settings.replace(bootstrap=broker.bootstrap)
    finally:
        broker.stop()
