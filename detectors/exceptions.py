"""Errors raised by the detector stage, all under :class:`~touchstone.errors.TouchstoneError`."""

from __future__ import annotations

from touchstone.errors import TouchstoneError

__all__ = ["DetectorError", "SnapshotError"]


class DetectorError(TouchstoneError):
    """The detector engine was asked something it cannot do (e.g. a window contradicting its session)."""


class SnapshotError(DetectorError):
    """A snapshot was refused: not ours, tampered with, signed with another key, or unreadable.

    ``reason`` is a short stable code (``truncated``, ``not_a_snapshot``, ``unknown_version``,
    ``wrong_key``, ``tampered``, ``wrong_kind``, ``incompatible``); ``detail`` explains.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
