"""Delivery discipline shared by every sink: timeouts, retries with backoff, a circuit breaker.

A send is a callable taking the per-attempt timeout in seconds. It succeeds by returning and
fails by raising :class:`~touchstone.errors.DeliveryError`: ``permanent=True`` for an answer that
will not change on retry (400 invalid payload, 404 unknown webhook), ``retry_after`` when the
receiver said how long to wait (HTTP 429 ``Retry-After``). :meth:`Delivery.run` retries the rest
with exponential backoff and full jitter, never waits less than a ``retry_after``, and gives up
with :class:`DeliveryFailed` after ``max_attempts`` or ``deadline_s`` — the caller then routes the
alert to the dead-letter topic.

The breaker counts consecutive transient failures of one sink; once open it fails deliveries at
once (``reason="circuit_open"``) instead of stalling the worker on a dead endpoint, and after
``breaker_reset_s`` lets one trial through (half-open). Throttling (:class:`RateLimited`) is a
healthy endpoint asking for patience, so it does not count towards opening.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from touchstone.errors import DeliveryError
from touchstone.sinks.metrics import SinkMetrics

__all__ = [
    "DeliveryPolicy",
    "BreakerState",
    "CircuitBreaker",
    "RateLimited",
    "DeliveryFailed",
    "Delivery",
    "backoff_delay",
]

log = logging.getLogger(__name__)

Send = Callable[[float], None]


@dataclass(frozen=True, kw_only=True, slots=True)
class DeliveryPolicy:
    """How hard one sink tries before an alert goes to the dead-letter topic."""

    timeout_s: float = 10.0
    """Socket timeout of one attempt (connect and each read)."""
    max_attempts: int = 5
    """Attempts per delivery, the first included; after the last failure the alert is dead-lettered."""
    base_delay_s: float = 0.5
    """Backoff ceiling before the second attempt; doubles per attempt."""
    max_delay_s: float = 30.0
    """Largest backoff ceiling."""
    deadline_s: float = 120.0
    """Total time one delivery may take, waits included; a Retry-After beyond it gives up early."""
    breaker_failures: int = 5
    """Consecutive transient failures that open the sink's circuit breaker."""
    breaker_reset_s: float = 30.0
    """Seconds an open breaker fails fast before letting one trial delivery through."""

    def __post_init__(self) -> None:
        for name in ("timeout_s", "deadline_s", "breaker_reset_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("base_delay_s", "max_delay_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("max_attempts", "breaker_failures"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")


class RateLimited(DeliveryError):
    """The receiver throttled us (HTTP 429); retry after ``retry_after`` seconds if it said."""


class DeliveryFailed(DeliveryError):
    """A delivery gave up. ``reason`` is a stable code for metrics and the dead-letter record:
    ``permanent`` (the receiver refused the payload), ``exhausted`` (max attempts), ``deadline``
    (out of time, or a Retry-After beyond it), ``circuit_open`` (the breaker failed it fast)."""

    def __init__(self, message: str, *, reason: str, attempts: int, last_error: DeliveryError | None = None) -> None:
        super().__init__(message, permanent=True)
        self.reason = reason
        self.attempts = attempts
        self.last_error = last_error


def backoff_delay(attempt: int, policy: DeliveryPolicy, rng: random.Random) -> float:
    """Full-jitter backoff after failed attempt number ``attempt`` (1-based).

    >>> policy = DeliveryPolicy(base_delay_s=1.0, max_delay_s=4.0)
    >>> all(0.0 <= backoff_delay(n, policy, random.Random(n)) <= min(4.0, 2.0 ** (n - 1)) for n in range(1, 9))
    True
    """
    ceiling = min(policy.max_delay_s, policy.base_delay_s * 2.0 ** (attempt - 1))
    return rng.uniform(0.0, ceiling)


class BreakerState(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    """Consecutive-failure breaker of one sink.

    >>> now = [0.0]
    >>> breaker = CircuitBreaker(failures=2, reset_s=10.0, clock=lambda: now[0])
    >>> breaker.record_failure(); breaker.record_failure(); breaker.state.name
    'OPEN'
    >>> breaker.wait_s()
    10.0
    >>> now[0] = 10.0; breaker.state.name
    'HALF_OPEN'
    >>> breaker.record_success(); breaker.state.name
    'CLOSED'
    """

    def __init__(self, *, failures: int, reset_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if failures < 1 or reset_s <= 0:
            raise ValueError("failures must be >= 1 and reset_s > 0")
        self.failures = failures
        self.reset_s = reset_s
        self._clock = clock
        self._consecutive = 0
        self._opened_at: float | None = None

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.reset_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def wait_s(self) -> float:
        """Seconds until a trial is allowed; 0 when closed or half-open."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.reset_s - (self._clock() - self._opened_at))

    def record_success(self) -> None:
        self._consecutive = 0
        self._opened_at = None

    def record_failure(self) -> None:
        self._consecutive += 1
        # A failed half-open trial re-opens at once; a closed breaker opens at the threshold.
        if self._opened_at is not None or self._consecutive >= self.failures:
            self._opened_at = self._clock()


class Delivery:
    """Runs sends for one sink under its :class:`DeliveryPolicy` and :class:`CircuitBreaker`."""

    def __init__(
        self,
        sink: str,
        sink_type: str,
        policy: DeliveryPolicy | None = None,
        *,
        metrics: SinkMetrics | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.sink = sink
        self.sink_type = sink_type
        self.policy = policy or DeliveryPolicy()
        self.breaker = CircuitBreaker(
            failures=self.policy.breaker_failures, reset_s=self.policy.breaker_reset_s, clock=clock
        )
        self.metrics = metrics or SinkMetrics()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()

    def run(self, send: Send) -> int:
        """Call ``send(timeout)`` until it succeeds; return the attempts used.

        Raises :class:`DeliveryFailed` when the delivery gives up.
        """
        started = self._clock()
        labels = (self.sink, self.sink_type)
        attempt = 0
        last_error: DeliveryError | None = None
        while True:
            if self.breaker.state is BreakerState.OPEN:
                self._publish_breaker()
                suffix = f", last: {last_error}" if last_error is not None else ""
                raise DeliveryFailed(
                    f"sink {self.sink!r}: circuit open for another {self.breaker.wait_s():.1f}s{suffix}",
                    reason="circuit_open",
                    attempts=attempt,
                    last_error=last_error,
                )
            remaining = self.policy.deadline_s - (self._clock() - started)
            attempt += 1
            if attempt > 1:
                self.metrics.retried.labels(*labels).inc()
            try:
                send(min(self.policy.timeout_s, max(remaining, 0.001)))
            except DeliveryError as exc:
                last_error = exc
                self.metrics.requests.labels(*labels, "error").inc()
                delay = self._after_failure(exc, attempt, started)
                log.warning("sink %s attempt %d failed: %s", self.sink, attempt, exc)
                self._sleep(delay)
                continue
            self.metrics.requests.labels(*labels, "ok").inc()
            self.breaker.record_success()
            self._publish_breaker()
            self.metrics.delivery_seconds.labels(*labels).observe(self._clock() - started)
            return attempt

    def _after_failure(self, exc: DeliveryError, attempt: int, started: float) -> float:
        """Seconds to wait before the next attempt, or raise DeliveryFailed to give up."""
        if exc.permanent:
            raise DeliveryFailed(
                f"sink {self.sink!r} refused the alert: {exc}", reason="permanent", attempts=attempt, last_error=exc
            )
        if not isinstance(exc, RateLimited):
            self.breaker.record_failure()
            self._publish_breaker()
        if attempt >= self.policy.max_attempts:
            raise DeliveryFailed(
                f"sink {self.sink!r} failed {attempt} attempt(s), last: {exc}",
                reason="exhausted",
                attempts=attempt,
                last_error=exc,
            )
        delay = backoff_delay(attempt, self.policy, self._rng)
        if exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        remaining = self.policy.deadline_s - (self._clock() - started)
        if delay >= remaining:
            raise DeliveryFailed(
                f"sink {self.sink!r} out of time after {attempt} attempt(s) "
                f"(next wait {delay:.1f}s, {max(remaining, 0.0):.1f}s left), last: {exc}",
                reason="deadline",
                attempts=attempt,
                last_error=exc,
            )
        return delay

    def _publish_breaker(self) -> None:
        self.metrics.breaker_state.labels(self.sink, self.sink_type).set(int(self.breaker.state))
