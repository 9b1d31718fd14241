"""Local HTTP receivers on 127.0.0.1 that answer like Slack and PagerDuty, with scripted faults."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0  # sleep before answering: a hang beyond the client's timeout


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A scripted receiver: answers with ``script`` in order, then with ``default`` forever."""

    default: Reply
    script: list[Reply] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    url: str = ""
    respond: Callable[[Received], Reply] | None = None  # the default, computed from the request
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_reply(self, received: Received) -> Reply:
        with self.lock:
            if self.script:
                return self.script.pop(0)
        return self.respond(received) if self.respond is not None else self.default

    def record(self, received: Received) -> None:
        with self.lock:
            self.requests.append(received)

    def bodies(self) -> list[dict]:
        with self.lock:
            return [r.json() for r in self.requests]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.02)
        raise AssertionError(f"receiver got {len(self.requests)} request(s), expected {count}")


def serve(receiver: Receiver) -> tuple[ThreadingHTTPServer, threading.Thread]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            received = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
            receiver.record(received)
            reply = receiver.next_reply(received)
            if reply.delay_s:
                time.sleep(reply.delay_s)
            try:
                self.send_response(reply.status)
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and left

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread


SLACK_OK = Reply(200, b"ok", (("Content-Type", "text/html"),))
SLACK_INVALID = Reply(400, b"invalid_payload")
SLACK_ERROR = Reply(500, b"rollup_error")


def slack_rate_limited(retry_after: int) -> Reply:
    return Reply(429, b"rate_limited", (("Retry-After", str(retry_after)),))


def pd_accepted(dedup_key: str = "ignored") -> Reply:
    body = json.dumps({"status": "success", "message": "Event processed", "dedup_key": dedup_key}).encode()
    return Reply(202, body, (("Content-Type", "application/json"),))


PD_INVALID = Reply(400, b'{"status":"invalid event","message":"Event object is invalid","errors":["bad"]}')
PD_THROTTLED = Reply(429, b"")
PD_ERROR = Reply(500, b"")
