"""A minimal faust-streaming app for tests/kafka/test_broker.py, run as a worker subprocess.

It reads ``ECHO_SOURCE``, counts messages per key in a table (so a changelog topic is written)
and sends ``VALUE|COUNT`` to ``ECHO_SINK``. Configured by environment so the test can give each
run its own app id and topics; importing it without them (pytest's doctest collection) is harmless.
"""

from __future__ import annotations

import os

import faust

_env = os.environ.get

app = faust.App(
    _env("ECHO_APP_ID", "touchstone-echo"),
    broker=_env("ECHO_BROKER", "kafka://127.0.0.1:9092"),
    store="memory://",
    datadir=_env("ECHO_DATADIR", ".run/faust-echo"),
    topic_partitions=int(_env("ECHO_PARTITIONS", "2")),
    topic_replication_factor=1,
    web_enabled=False,
    broker_commit_interval=0.5,  # commit soon, so the test can see the group's lag reach zero
)
source = app.topic(_env("ECHO_SOURCE", "echo.in"), key_type=bytes, value_type=bytes, value_serializer="raw")
sink = app.topic(_env("ECHO_SINK", "echo.out"), key_type=bytes, value_type=bytes, value_serializer="raw")
counts = app.Table("counts", default=int, key_type=bytes, value_type=int)


@app.agent(source)
async def echo(stream: faust.StreamT[bytes]) -> None:
    async for key, value in stream.items():
        counts[key] += 1
        await sink.send(key=key, value=value.upper() + b"|" + str(counts[key]).encode())
