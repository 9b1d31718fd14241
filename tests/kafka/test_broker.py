"""Integration tests of the local Kafka broker and of every client Touchstone uses against it:
confluent-kafka, aiokafka and faust-streaming (which runs on aiokafka)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, Producer

from touchstone.config import Settings
from touchstone.errors import BrokerError
from touchstone.kafka import LocalBroker, consumer_lag, ensure_topics, free_port, is_reachable, resolve_jars
from touchstone.kafka.broker import admin_client

HERE = Path(__file__).resolve().parent


def _name(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:8]}"


def _consume(bootstrap: str, topic: str, count: int, timeout: float = 30.0, group: str | None = None) -> list[bytes]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group or _name("check"), "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                values.append(message.value())
        if values:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return values


def _produce(bootstrap: str, topic: str, values: list[bytes], key: bytes | None = None) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for value in values:
        producer.produce(topic, value=value, key=key)
    assert producer.flush(30) == 0


def _partition_counts(bootstrap: str, topics: list[str]) -> dict[str, int]:
    metadata = admin_client(bootstrap).list_topics(timeout=10)
    return {name: len(metadata.topics[name].partitions) for name in topics}


# --- no broker needed -------------------------------------------------------------------------


def test_resolve_jars_without_java_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(BrokerError, match="install"):
        resolve_jars(tmp_path, force=True)


def test_unreachable_port_is_not_reachable() -> None:
    assert not is_reachable(f"127.0.0.1:{free_port()}", timeout=1)


def test_silent_listener_is_not_a_broker() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        assert not is_reachable(f"127.0.0.1:{server.getsockname()[1]}", timeout=1)


def test_start_refuses_a_port_held_by_something_else(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        broker = LocalBroker(port=server.getsockname()[1], controller_port=free_port(), data_dir=tmp_path)
        with pytest.raises(BrokerError, match="in use"):
            broker.start(timeout=5)
    assert not broker.pid_file.exists()


# --- broker lifecycle -------------------------------------------------------------------------


def _kafka_pids(config: Path) -> list[int]:
    """Pids of live kafka.Kafka JVMs on ``config`` (zombies excluded)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if "kafka.Kafka" in cmdline and str(config) in cmdline and state != "Z":
            pids.append(int(proc.name))
    return pids


@pytest.mark.kafka
@pytest.mark.timeout(240)
def test_lifecycle_start_reuse_restart_stop(tmp_path: Path) -> None:
    broker = LocalBroker(port=free_port(), controller_port=free_port(), data_dir=tmp_path / "kafka")
    started = broker.start(timeout=120)
    assert started.running and started.reachable and not started.reused
    assert started.pid is not None and started.version and started.version.startswith("4.")
    assert _kafka_pids(broker.config_file) == [started.pid]

    # A second start on the same port reuses the broker instead of failing or launching another.
    other = LocalBroker(port=broker.port, controller_port=free_port(), data_dir=tmp_path / "other")
    assert other.start().reused
    assert not other.pid_file.exists() and other.stop() is False
    assert is_reachable(broker.bootstrap)

    topic = _name("lifecycle")
    ensure_topics(Settings(bootstrap=broker.bootstrap), [topic], partitions=3)
    assert broker.stop() is True
    assert _kafka_pids(broker.config_file) == []
    with pytest.raises(ProcessLookupError):
        os.kill(started.pid, 0)
    assert not broker.status().running and not broker.status().reachable
    assert broker.stop() is False

    # The data dir keeps its cluster and topics across a restart; any LocalBroker on that data dir
    # (like `touchstone kafka down` in another process) can stop it.
    again = broker.start(timeout=120)
    assert again.pid != started.pid
    assert _partition_counts(broker.bootstrap, [topic]) == {topic: 3}
    assert LocalBroker(port=broker.port, controller_port=broker.controller_port, data_dir=broker.data_dir).stop()
    assert _kafka_pids(broker.config_file) == []
    assert broker.log_file.with_suffix(".log.1").exists()  # the first run's log, kept once


# --- topics -----------------------------------------------------------------------------------


@pytest.mark.kafka
@pytest.mark.timeout(60)
def test_settings_fixture_created_every_topic(settings: Settings) -> None:
    counts = _partition_counts(settings.bootstrap, settings.all_topics())
    assert counts == {name: settings.partitions for name in settings.all_topics()}


@pytest.mark.kafka
@pytest.mark.timeout(60)
def test_ensure_topics_is_idempotent(settings: Settings) -> None:
    names = [_name("idem.a"), _name("idem.b")]
    assert sorted(ensure_topics(settings, names, partitions=3)) == sorted(names)
    assert ensure_topics(settings, names, partitions=3) == []
    assert ensure_topics(settings) == []  # the fixture already made the configured ones
    assert _partition_counts(settings.bootstrap, names) == dict.fromkeys(names, 3)


@pytest.mark.kafka
@pytest.mark.timeout(60)
def test_consumer_lag_counts_uncommitted_messages(settings: Settings) -> None:
    topic, group = settings.topic_raw, _name("lag")
    _produce(settings.bootstrap, topic, [b"m%d" % i for i in range(7)])
    assert consumer_lag(settings.bootstrap, group, topic) == 7
    assert len(_consume(settings.bootstrap, topic, 7, group=group)) == 7
    assert consumer_lag(settings.bootstrap, group, topic) == 0


# --- clients ----------------------------------------------------------------------------------


@pytest.mark.kafka
@pytest.mark.timeout(60)
def test_confluent_round_trip(settings: Settings) -> None:
    values = [b"v%d" % i for i in range(20)]
    _produce(settings.bootstrap, settings.topic_features, values, key=b"user-1")
    assert _consume(settings.bootstrap, settings.topic_features, len(values)) == values  # one key: one partition


async def _aiokafka_round_trip(bootstrap: str, topic: str, values: list[bytes]) -> tuple[list[bytes], int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"user-1")
    finally:
        await producer.stop()
    group = _name("aio")
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()  # joins the group: FindCoordinator, JoinGroup, SyncGroup
    received: list[bytes] = []
    try:
        while len(received) < len(values):
            batches = await consumer.getmany(timeout_ms=1000)
            received += [message.value for messages in batches.values() for message in messages]
        await consumer.commit()
    finally:
        await consumer.stop()
    return received, consumer_lag(bootstrap, group, topic)


@pytest.mark.kafka
@pytest.mark.timeout(90)
def test_aiokafka_round_trip_with_group_commit(settings: Settings) -> None:
    values = [b"a%d" % i for i in range(20)]
    received, lag = asyncio.run(
        asyncio.wait_for(_aiokafka_round_trip(settings.bootstrap, settings.topic_alerts, values), 60)
    )
    assert received == values
    assert lag == 0


def _wait_lag_zero(bootstrap: str, group: str, topic: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    lag = consumer_lag(bootstrap, group, topic)
    while lag and time.monotonic() < deadline:
        time.sleep(0.5)
        lag = consumer_lag(bootstrap, group, topic)
    return lag


@pytest.mark.kafka
@pytest.mark.timeout(180)
def test_faust_agent_table_and_commit(settings: Settings, tmp_path: Path) -> None:
    # The fixture made both topics with settings.partitions; the faust table must match that count.
    source, sink, app_id = settings.topic_raw, settings.topic_features, _name("echo").replace(".", "-")
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        ECHO_APP_ID=app_id,
        ECHO_BROKER=f"kafka://{settings.bootstrap}",
        ECHO_SOURCE=source,
        ECHO_SINK=sink,
        ECHO_PARTITIONS=str(settings.partitions),
        ECHO_DATADIR=str(tmp_path / "faust"),
    )
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log_file:
        worker = subprocess.Popen(
            [sys.executable, "-m", "faust", "-A", "faust_echo_app", "worker", "--without-web", "-l", "info"],
            env=env,
            cwd=tmp_path,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        _produce(settings.bootstrap, source, [b"k%d" % i for i in range(5)], key=b"user-1")
        out = _consume(settings.bootstrap, sink, 5, timeout=90)
        assert out == [b"K0|1", b"K1|2", b"K2|3", b"K3|4", b"K4|5"], log_path.read_text()[-3000:]
        assert _wait_lag_zero(settings.bootstrap, app_id, source, timeout=30) == 0
        changelog = f"{app_id}-counts-changelog"
        assert len(_consume(settings.bootstrap, changelog, 5, timeout=30)) == 5  # one table update each
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            code = worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
            code = worker.wait(10)
    assert code == 0, log_path.read_text()[-3000:]
