"""Shared pytest fixtures.

``kafka_bootstrap`` gives tests a real Kafka broker: the one named by ``TOUCHSTONE_TEST_BOOTSTRAP``
when it answers (e.g. ``touchstone kafka up`` left running, to skip the ~4 s start), otherwise a
fresh :class:`~touchstone.kafka.LocalBroker` on free ports with a temporary data dir, stopped when
the session ends. ``settings`` gives each test its own topics on that broker. Tests that use them
are marked ``@pytest.mark.kafka`` (deselect with ``-m "not kafka"``).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import fields

import pytest
from hypothesis import settings as hypothesis_settings

from touchstone.config import Settings
from touchstone.kafka import LocalBroker, ensure_topics, free_port, is_reachable

log = logging.getLogger(__name__)

# In CI the property tests replay the same examples on every run, so a red build is reproducible
# and a green one does not depend on luck; locally they keep exploring (and remember what failed).
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
hypothesis_settings.register_profile("dev", print_blob=True)
_default_profile = "ci" if os.environ.get("CI") else "dev"
hypothesis_settings.load_profile(os.environ.get("TOUCHSTONE_HYPOTHESIS_PROFILE", _default_profile))


def _two_free_ports() -> tuple[int, int]:
    port = free_port()
    controller = free_port()
    while controller == port:
        controller = free_port()
    return port, controller


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a running Kafka broker for the whole session."""
    external = os.environ.get("TOUCHSTONE_TEST_BOOTSTRAP")
    if external and is_reachable(external):
        yield external
        return
    if external:
        log.warning("TOUCHSTONE_TEST_BOOTSTRAP=%s does not answer; starting a broker of our own", external)
    port, controller = _two_free_ports()
    broker = LocalBroker(port=port, controller_port=controller, data_dir=tmp_path_factory.mktemp("kafka"))
    broker.start(wait=True, timeout=120)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def settings(kafka_bootstrap: str) -> Settings:
    """Settings on the test broker with every ``topic_*`` made unique to this test, topics created."""
    suffix = uuid.uuid4().hex[:8]
    topics = {f.name: f"{f.default}.{suffix}" for f in fields(Settings) if f.name.startswith("topic_")}
    result = Settings(bootstrap=kafka_bootstrap, **topics)
    ensure_topics(result)
    return result
