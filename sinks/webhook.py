"""Generic webhook: every alert as a JSON POST, optionally signed with HMAC-SHA256.

Signed requests carry ``X-Touchstone-Timestamp`` (unix seconds) and
``X-Touchstone-Signature: sha256=<hex>``, the HMAC of ``"<timestamp>.<body>"`` under the shared
secret. Binding the timestamp lets a receiver refuse replays (:func:`verify_signature` rejects
signatures older than five minutes). Any 2xx is success; 408, 429 and 5xx are retried.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from touchstone.contracts import Alert, encode_alert
from touchstone.sinks.base import AlertSink
from touchstone.sinks.http import Transport, check_response, post
from touchstone.sinks.secrets import Secret
from touchstone.sinks.siem import ecs_document, ocsf_finding

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WEBHOOK_FORMATS",
    "webhook_body",
    "sign",
    "verify_signature",
    "WebhookSink",
]

SIGNATURE_HEADER = "X-Touchstone-Signature"
TIMESTAMP_HEADER = "X-Touchstone-Timestamp"
ALERT_ID_HEADER = "X-Touchstone-Alert-Id"
WEBHOOK_FORMATS = ("alert", "ecs", "ocsf")
_OK = tuple(range(200, 300))


def webhook_body(alert: Alert, fmt: str = "alert") -> bytes:
    if fmt == "alert":
        return encode_alert(alert)
    if fmt == "ecs":
        return orjson.dumps(ecs_document(alert))
    if fmt == "ocsf":
        return orjson.dumps(ocsf_finding(alert))
    raise ValueError(f"webhook format must be one of {WEBHOOK_FORMATS}, got {fmt!r}")


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` over ``"<timestamp>.<body>"``.

    >>> signature = sign(b"k", 1700000000, b"{}")
    >>> verify_signature(b"k", "1700000000", b"{}", signature, now=1700000010.0)
    True
    >>> verify_signature(b"k", "1700000000", b'{"x":1}', signature, now=1700000010.0)
    False
    """
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: bytes, timestamp: str, body: bytes, signature: str, *, tolerance_s: float = 300.0, now: float | None = None
) -> bool:
    """Receiver side: True when ``signature`` is valid for ``body`` and ``timestamp`` is recent."""
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - stamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, stamp, body), signature)


class WebhookSink(AlertSink):
    kind = "webhook"

    def __init__(
        self,
        name: str,
        *,
        url: Secret,
        signing_secret: Secret | None = None,
        fmt: str = "alert",
        headers: Mapping[str, str] | None = None,
        transport: Transport = post,
        wall_clock: Callable[[], float] = time.time,
        **kwargs: Any,
    ) -> None:
        if fmt not in WEBHOOK_FORMATS:
            raise ValueError(f"webhook format must be one of {WEBHOOK_FORMATS}, got {fmt!r}")
        super().__init__(name, **kwargs)
        self._url = url
        self._signing_secret = signing_secret
        self.fmt = fmt
        self.headers = dict(headers or {})
        self._transport = transport
        self._wall_clock = wall_clock

    def send(self, alert: Alert, timeout: float) -> None:
        body = webhook_body(alert, self.fmt)
        headers = {**self.headers, ALERT_ID_HEADER: alert.alert_id}
        if self._signing_secret is not None:
            stamp = int(self._wall_clock())  # per attempt: a retry is signed fresh
            headers[TIMESTAMP_HEADER] = str(stamp)
            headers[SIGNATURE_HEADER] = sign(self._signing_secret.reveal().encode(), stamp, body)
        check_response(self._transport(self._url.reveal(), body, headers, timeout), ok=_OK)
