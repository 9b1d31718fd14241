"""A minimal JSON-over-HTTP(S) POST on the standard library, for the webhook-style sinks.

Errors never carry the URL: for Slack and many webhooks the URL *is* the credential.
Redirects are not followed (a redirected webhook would send the alert somewhere unreviewed).
"""

from __future__ import annotations

import email.utils
import http.client
import ssl
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from touchstone import __version__
from touchstone.errors import DeliveryError
from touchstone.sinks.delivery import RateLimited

__all__ = ["HttpResponse", "Transport", "post", "check_response", "retry_after_seconds", "USER_AGENT"]

USER_AGENT = f"touchstone-sinks/{__version__}"
_MAX_BODY = 64 * 1024  # receivers answer in a few bytes; never buffer an unbounded reply


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace").strip()


Transport = Callable[[str, bytes, Mapping[str, str], float], HttpResponse]


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise DeliveryError("sink URL must be an absolute http(s) URL", permanent=True)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if parts.scheme == "https":
        context = ssl.create_default_context()
        return http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=context), path
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout), path


def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> HttpResponse:
    """POST ``body``; return the response of any status. Transport failures (refused, reset,
    timeout — ``timeout`` bounds the connect and each read) raise a retryable DeliveryError."""
    connection, path = _connection(url, timeout)
    sent = {"User-Agent": USER_AGENT, "Content-Type": "application/json", **headers}
    try:
        connection.request("POST", path, body=body, headers=sent)
        response = connection.getresponse()
        data = response.read(_MAX_BODY)
        return HttpResponse(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    except TimeoutError:
        raise DeliveryError(f"no answer within {timeout:.1f}s") from None
    except ssl.SSLError as exc:
        raise DeliveryError(f"TLS error: {exc.reason or exc}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise DeliveryError(f"transport error: {type(exc).__name__}: {exc}") from None
    finally:
        connection.close()


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    >>> retry_after_seconds("7")
    7.0
    >>> retry_after_seconds("Thu, 01 Jan 2026 00:00:10 GMT", now=1767225600.0)
    10.0
    >>> retry_after_seconds("soon") is None
    True
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def check_response(response: HttpResponse, *, ok: tuple[int, ...] = (200,)) -> None:
    """Raise the DeliveryError a non-success answer means: 429 → RateLimited (with its
    Retry-After), 408 and 5xx → retryable, any other status → permanent (retrying cannot help)."""
    if response.status in ok:
        return
    detail = f"HTTP {response.status}: {response.text[:300] or '(empty body)'}"
    retry_after = retry_after_seconds(response.headers.get("retry-after"))
    if response.status == 429:
        raise RateLimited(detail, retry_after=retry_after)
    if response.status == 408 or response.status >= 500:
        raise DeliveryError(detail, retry_after=retry_after)
    raise DeliveryError(detail, permanent=True)
