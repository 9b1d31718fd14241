"""Publisher logic against a scripted stand-in producer (the real broker is in test_outage.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from confluent_kafka import KafkaError, KafkaException

from touchstone.collectors.metrics import CollectorMetrics
from touchstone.collectors.publisher import Publisher
from touchstone.collectors.spool import Spool
from touchstone.config import Settings
from touchstone.contracts import RawBatch, decode_raw


class FakeMessage:
    def __init__(self, topic: str, value: bytes, key: bytes) -> None:
        self._topic, self._value, self._key = topic, value, key

    def topic(self) -> str:
        return self._topic

    def value(self) -> bytes:
        return self._value


class ScriptedProducer:
    """Holds produced messages until poll(); then acks them, or fails them with the scripted error."""

    def __init__(self) -> None:
        self.pending: list[tuple[FakeMessage, object]] = []
        self.log: list[FakeMessage] = []  # every produce call, in order
        self.delivered: list[FakeMessage] = []
        self.fail_with: KafkaError | None = None
        self.buffer_full = False
        self.hold = False  # broker "down": nothing comes back

    def produce(self, topic, value=None, key=None, on_delivery=None):
        if self.buffer_full:
            raise BufferError("queue full")
        msg = FakeMessage(topic, value, key)
        self.log.append(msg)
        self.pending.append((msg, on_delivery))

    def poll(self, timeout=0):
        if self.hold:
            return 0
        pending, self.pending = self.pending, []
        for msg, callback in pending:
            if self.fail_with is not None:
                callback(self.fail_with, msg)
            else:
                self.delivered.append(msg)
                callback(None, msg)
        return len(pending)

    def flush(self, timeout=0):
        self.poll()
        return len(self.pending)


def batch(seq: int, privacy: str = "timing") -> RawBatch:
    return RawBatch(
        session_id="s-1", user="ann", host="ws", seq=seq, collector="c/1", privacy=privacy,
        session_start=1.7e12, wall=1.7e12 + seq, mono=float(seq),
    )  # fmt: skip


def make(producer: ScriptedProducer, window: int = 4) -> Publisher:
    settings = Settings(topic_raw="raw", topic_raw_full="raw.full")
    return Publisher(settings, Spool(None), metrics=CollectorMetrics(), window=window, producer=producer)


def seqs(messages: list[FakeMessage]) -> list[int]:
    return [decode_raw(m.value()).seq for m in messages]


def test_delivered_batches_leave_the_spool_and_are_counted():
    producer = ScriptedProducer()
    pub = make(producer)
    for i in range(3):
        pub.submit(batch(i))
    pub.service()
    assert seqs(producer.delivered) == [0, 1, 2]
    assert pub.spool.depth == 0
    assert pub.metrics.value("touchstone_collector_batches_sent_total", topic="raw") == 3
    assert pub.metrics.value("touchstone_collector_last_delivery_timestamp_seconds") > 0


def test_full_mode_batches_go_to_the_restricted_topic_only():
    producer = ScriptedProducer()
    pub = make(producer)
    pub.submit(batch(0, privacy="full"))
    pub.submit(batch(1, privacy="keyed"))
    pub.flush(1)
    assert [m.topic() for m in producer.delivered] == ["raw.full", "raw"]


def test_window_bounds_what_the_producer_holds_during_an_outage():
    producer = ScriptedProducer()
    producer.hold = True
    pub = make(producer, window=4)
    for i in range(10):
        pub.submit(batch(i))
    assert pub.in_flight == 4 and pub.spool.depth == 10
    producer.hold = False
    pub.flush(1)
    assert seqs(producer.delivered) == list(range(10))
    assert pub.spool.depth == 0


def test_retriable_failure_resends_everything_in_order_before_newer_batches(monkeypatch):
    monkeypatch.setattr("touchstone.collectors.publisher._REWIND_BACKOFF_S", 0.0)
    producer = ScriptedProducer()
    pub = make(producer, window=3)
    producer.fail_with = KafkaError(KafkaError._MSG_TIMED_OUT)
    for i in range(5):
        pub.submit(batch(i))
    assert pub.delivered == 0 and pub.spool.depth == 5
    producer.fail_with = None
    pub.submit(batch(5))
    pub.flush(1)
    assert seqs(producer.delivered) == [0, 1, 2, 3, 4, 5]
    assert pub.metrics.value("touchstone_collector_delivery_errors_total", code="_MSG_TIMED_OUT") >= 3


def test_poison_message_is_dropped_not_retried_forever():
    producer = ScriptedProducer()
    pub = make(producer)
    producer.fail_with = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
    pub.submit(batch(0))
    pub.service()
    assert pub.spool.depth == 0 and pub.poisoned == 1
    producer.fail_with = None
    pub.submit(batch(1))
    pub.flush(1)
    assert seqs(producer.delivered) == [1]


def test_fatal_producer_error_is_raised():
    producer = ScriptedProducer()
    pub = make(producer)
    producer.fail_with = KafkaError(KafkaError._FATAL, "fenced", fatal=True)
    pub.submit(batch(0))
    with pytest.raises(KafkaException):
        pub.service()


def test_buffer_error_defers_without_losing_anything():
    producer = ScriptedProducer()
    producer.buffer_full = True
    pub = make(producer)
    pub.submit(batch(0))
    pub.submit(batch(1))
    assert producer.log == [] and pub.spool.depth == 2
    producer.buffer_full = False
    pub.flush(1)
    assert seqs(producer.delivered) == [0, 1]


# --- the real producer ---


def test_producer_config_is_idempotent_acks_all_compressed_and_java_partitioned():
    from touchstone.collectors.publisher import producer_config

    config = producer_config(Settings(bootstrap="b:9092"), {"linger.ms": 5})
    assert config["enable.idempotence"] is True and config["acks"] == "all"
    assert config["compression.type"] == "lz4" and config["partitioner"] == "murmur2_random"
    assert config["message.timeout.ms"] == 0 and config["linger.ms"] == 5


def test_java_murmur2_reference_vectors():
    # Kafka's own Utils.murmur2 test vectors: the partitioner below is the Java client's.
    import ctypes

    from aiokafka.partitioner import murmur2

    vectors = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536}
    assert {k: ctypes.c_int32(murmur2(k)).value for k in vectors} == vectors


@pytest.mark.kafka
def test_session_keys_land_in_the_partition_java_and_aiokafka_clients_compute(settings):
    from aiokafka.partitioner import DefaultPartitioner
    from kafka_readback import read_messages

    pub = Publisher(settings, Spool(None), metrics=CollectorMetrics())
    sessions = [f"session-{i:03d}-{i * 7919}" for i in range(24)]
    for session in sessions:
        pub.submit(replace(batch(0), session_id=session))
    assert pub.flush(30) == 0 and pub.delivered == len(sessions)
    messages = read_messages(settings.bootstrap, settings.topic_raw, until=lambda m: len(m) >= len(sessions))
    partitions = list(range(settings.partitions))
    got = {m.key().decode(): m.partition() for m in messages}
    expected = {s: DefaultPartitioner()(s.encode(), partitions, partitions) for s in sessions}
    assert got == expected
    assert len(set(expected.values())) > 1  # the keys spread: the check could tell partitioners apart
