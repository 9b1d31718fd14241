"""One exception root for everything Touchstone raises on purpose."""

from __future__ import annotations

__all__ = ["TouchstoneError", "ConfigError", "ContractError", "BrokerError", "DeliveryError"]


class TouchstoneError(Exception):
    """Root of Touchstone's own errors."""


class ConfigError(TouchstoneError):
    """A setting is missing, malformed or inconsistent."""


class ContractError(TouchstoneError):
    """A message does not satisfy its wire contract.

    ``reason`` is a short stable code (for metrics and dead-letter routing),
    ``detail`` a human-readable explanation naming the offending field.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class BrokerError(TouchstoneError):
    """The local Kafka broker could not be resolved, started, reached or stopped."""


class DeliveryError(TouchstoneError):
    """A sink could not deliver an alert."""

    def __init__(self, message: str, *, retry_after: float | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent
