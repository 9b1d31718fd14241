from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from touchstone.errors import DeliveryError
from touchstone.sinks.delivery import (
    BreakerState,
    CircuitBreaker,
    Delivery,
    DeliveryFailed,
    DeliveryPolicy,
    RateLimited,
    backoff_delay,
)
from touchstone.sinks.metrics import SinkMetrics

pytestmark = pytest.mark.timeout(30)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class ScriptedSend:
    """Raises the scripted errors in order, then succeeds; records the timeouts it was given."""

    def __init__(self, *errors: DeliveryError, hang_on: Clock | None = None) -> None:
        self.errors = list(errors)
        self.timeouts: list[float] = []
        self.hang_on = hang_on  # a failing attempt uses its whole timeout on this clock

    def __call__(self, timeout: float) -> None:
        self.timeouts.append(timeout)
        if self.errors:
            if self.hang_on is not None:
                self.hang_on.now += timeout
            raise self.errors.pop(0)


def make_delivery(policy: DeliveryPolicy, clock: Clock, metrics: SinkMetrics | None = None) -> tuple[Delivery, list]:
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.sleep(seconds)

    delivery = Delivery(
        "s", "webhook", policy, metrics=metrics or SinkMetrics(), sleep=sleep, clock=clock, rng=random.Random(7)
    )
    return delivery, waits


@given(st.integers(1, 40), st.floats(0.0, 5.0), st.floats(0.0, 100.0), st.integers(0, 2**32 - 1))
def test_backoff_is_full_jitter_below_the_capped_exponential(attempt, base, cap, seed):
    policy = DeliveryPolicy(base_delay_s=base, max_delay_s=cap)
    delay = backoff_delay(attempt, policy, random.Random(seed))
    assert 0.0 <= delay <= min(cap, base * 2.0 ** (attempt - 1)) + 1e-12


def test_backoff_spreads_out_instead_of_synchronising():
    policy = DeliveryPolicy(base_delay_s=1.0, max_delay_s=60.0)
    rng = random.Random(1)
    delays = [backoff_delay(5, policy, rng) for _ in range(200)]
    assert max(delays) - min(delays) > 8.0  # ceiling 16 s: a fixed delay would give a spread of 0


def test_transient_failures_are_retried_until_success():
    clock = Clock()
    metrics = SinkMetrics()
    delivery, waits = make_delivery(DeliveryPolicy(max_attempts=4), clock, metrics)
    send = ScriptedSend(DeliveryError("HTTP 500"), DeliveryError("HTTP 503"))
    assert delivery.run(send) == 3
    assert len(send.timeouts) == 3 and len(waits) == 2
    assert metrics.value("touchstone_sink_retried_total", sink="s", type="webhook") == 2
    assert metrics.value("touchstone_sink_requests_total", sink="s", type="webhook", status="error") == 2
    assert metrics.value("touchstone_sink_requests_total", sink="s", type="webhook", status="ok") == 1


def test_permanent_errors_are_not_retried():
    delivery, waits = make_delivery(DeliveryPolicy(), Clock())
    send = ScriptedSend(DeliveryError("HTTP 400: invalid_payload", permanent=True))
    with pytest.raises(DeliveryFailed) as caught:
        delivery.run(send)
    assert caught.value.reason == "permanent" and caught.value.attempts == 1
    assert "invalid_payload" in str(caught.value)
    assert waits == []


def test_exhausted_after_max_attempts():
    delivery, waits = make_delivery(DeliveryPolicy(max_attempts=3, breaker_failures=10), Clock())
    send = ScriptedSend(*[DeliveryError("HTTP 500")] * 5)
    with pytest.raises(DeliveryFailed) as caught:
        delivery.run(send)
    assert caught.value.reason == "exhausted" and caught.value.attempts == 3
    assert len(send.timeouts) == 3 and len(waits) == 2


def test_retry_after_is_a_floor_on_the_wait():
    delivery, waits = make_delivery(DeliveryPolicy(base_delay_s=0.01, max_delay_s=0.01), Clock())
    send = ScriptedSend(RateLimited("HTTP 429", retry_after=7.0))
    delivery.run(send)
    assert waits == [7.0]


def test_retry_after_beyond_the_deadline_gives_up_at_once():
    delivery, waits = make_delivery(DeliveryPolicy(deadline_s=5.0), Clock())
    with pytest.raises(DeliveryFailed) as caught:
        delivery.run(ScriptedSend(RateLimited("HTTP 429", retry_after=60.0)))
    assert caught.value.reason == "deadline" and waits == []


def test_attempt_timeout_shrinks_to_the_time_left():
    clock = Clock()
    policy = DeliveryPolicy(timeout_s=10.0, deadline_s=12.0, base_delay_s=1.0, max_delay_s=1.0)
    delivery, waits = make_delivery(policy, clock)
    send = ScriptedSend(DeliveryError("no answer within 10.0s"), hang_on=clock)
    delivery.run(send)
    assert send.timeouts[0] == 10.0
    assert send.timeouts[1] == pytest.approx(12.0 - 10.0 - waits[0])


def test_breaker_opens_after_consecutive_failures_and_fails_fast():
    clock = Clock()
    metrics = SinkMetrics()
    policy = DeliveryPolicy(max_attempts=10, breaker_failures=3, breaker_reset_s=30.0, base_delay_s=0.1)
    delivery, _ = make_delivery(policy, clock, metrics)
    dead = ScriptedSend(*[DeliveryError("connection refused")] * 10)
    with pytest.raises(DeliveryFailed) as caught:
        delivery.run(dead)
    assert caught.value.reason == "circuit_open" and len(dead.timeouts) == 3
    assert metrics.value("touchstone_sink_circuit_state", sink="s", type="webhook") == int(BreakerState.OPEN)
    # While open, the next alert does not touch the endpoint at all.
    untouched = ScriptedSend()
    with pytest.raises(DeliveryFailed) as caught:
        delivery.run(untouched)
    assert caught.value.reason == "circuit_open" and untouched.timeouts == []
    # After the reset time one trial goes through; success closes the breaker.
    clock.now += 30.0
    trial = ScriptedSend()
    assert delivery.run(trial) == 1
    assert delivery.breaker.state is BreakerState.CLOSED
    assert metrics.value("touchstone_sink_circuit_state", sink="s", type="webhook") == int(BreakerState.CLOSED)


def test_failed_half_open_trial_reopens_immediately():
    now = [0.0]
    breaker = CircuitBreaker(failures=3, reset_s=5.0, clock=lambda: now[0])
    for _ in range(3):
        breaker.record_failure()
    now[0] = 5.0
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and breaker.wait_s() == 5.0


def test_throttling_does_not_open_the_breaker():
    delivery, _ = make_delivery(DeliveryPolicy(max_attempts=6, breaker_failures=2), Clock())
    send = ScriptedSend(*[RateLimited("HTTP 429", retry_after=0.5)] * 4)
    assert delivery.run(send) == 5
    assert delivery.breaker.state is BreakerState.CLOSED


@pytest.mark.parametrize(
    "bad",
    [{"max_attempts": 0}, {"timeout_s": 0}, {"base_delay_s": -1}, {"breaker_failures": 0}, {"deadline_s": -2}],
)
def test_policy_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        DeliveryPolicy(**bad)
