"""JSON Lines to a file or stdout, for local use and the demo: one alert per line.

``format`` picks the line: ``alert`` (the alert/1 JSON), ``ecs``, ``ocsf`` or ``cef``. The file
is opened for append and flushed per line (``fsync: true`` also forces it to disk).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, Any

from touchstone.contracts import Alert, encode_alert
from touchstone.errors import DeliveryError
from touchstone.sinks.base import AlertSink
from touchstone.sinks.siem import render_siem

__all__ = ["JSONL_FORMATS", "jsonl_line", "JsonlSink"]

JSONL_FORMATS = ("alert", "ecs", "ocsf", "cef")
STDOUT = "-"


def jsonl_line(alert: Alert, fmt: str = "alert") -> str:
    if fmt == "alert":
        return encode_alert(alert).decode()
    if fmt in JSONL_FORMATS:
        return render_siem(alert, fmt).decode()
    raise ValueError(f"jsonl format must be one of {JSONL_FORMATS}, got {fmt!r}")


class JsonlSink(AlertSink):
    kind = "jsonl"

    def __init__(
        self,
        name: str,
        *,
        path: str | Path = STDOUT,
        fmt: str = "alert",
        fsync: bool = False,
        stream: IO[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if fmt not in JSONL_FORMATS:
            raise ValueError(f"jsonl format must be one of {JSONL_FORMATS}, got {fmt!r}")
        super().__init__(name, **kwargs)
        self.path = str(path)
        self.fmt = fmt
        self.fsync = fsync
        self._stream = stream
        self._owned = False

    def _open(self) -> IO[str]:
        if self._stream is None:
            if self.path == STDOUT:
                self._stream = sys.stdout
            else:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                self._stream = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open across alerts
                self._owned = True
        return self._stream

    def send(self, alert: Alert, timeout: float) -> None:
        line = jsonl_line(alert, self.fmt)
        try:
            stream = self._open()
            stream.write(line + "\n")
            stream.flush()
            if self.fsync and self._owned:
                os.fsync(stream.fileno())
        except OSError as exc:
            raise DeliveryError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        if self._owned and self._stream is not None:
            self._stream.close()
        self._stream = None
        self._owned = False
