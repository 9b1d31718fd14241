"""Secrets of sink configuration (webhook URLs, routing keys, signing keys): read from an
environment variable or a file, never shown. ``repr`` and ``str`` print a mask; only
:meth:`Secret.reveal` gives the value, at the point of use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from touchstone.errors import ConfigError

__all__ = ["Secret"]


class Secret:
    """A value that must not reach logs.

    >>> key = Secret("R0UT1NGKEY", source="env PD_KEY")
    >>> key
    Secret('********', source='env PD_KEY')
    >>> f"{key}"
    '********'
    >>> key.reveal()
    'R0UT1NGKEY'
    """

    __slots__ = ("_value", "source")

    def __init__(self, value: str, *, source: str = "literal") -> None:
        if not value:
            raise ValueError("a secret must not be empty")
        self._value = value
        self.source = source

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('********', source={self.source!r})"

    def __str__(self) -> str:
        return "********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("secrets are not picklable")  # keeps them out of snapshots and queues

    @classmethod
    def from_env(cls, name: str, env: Mapping[str, str] | None = None) -> Secret:
        value = (os.environ if env is None else env).get(name, "")
        if not value.strip():
            raise ConfigError(f"environment variable {name} is not set or empty")
        return cls(value.strip(), source=f"env {name}")

    @classmethod
    def from_file(cls, path: str | Path) -> Secret:
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read secret file {path}: {exc.strerror or exc}") from None
        if not value:
            raise ConfigError(f"secret file {path} is empty")
        return cls(value, source=f"file {path}")
