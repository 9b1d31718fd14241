"""Starting and stopping Touchstone's own processes (workers, sinks) for the demo, benchmarks and tests."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from touchstone.config import Settings

__all__ = ["ManagedProcess", "start_touchstone"]

log = logging.getLogger(__name__)


class ManagedProcess:
    """A child ``touchstone`` command in its own process group, logging to a file."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log_path: Path) -> None:
        self.name, self.popen, self.log_path = name, popen, log_path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing it", self.name, timeout)
                self.kill()
        return self.popen.poll()

    def kill(self) -> None:
        """SIGKILL the whole group: no chance to commit, flush or say goodbye."""
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_touchstone(
    name: str, args: list[str], settings: Settings, log_dir: Path, extra_env: dict[str, str] | None = None
) -> ManagedProcess:
    """Run ``touchstone ARGS`` with ``settings`` passed through the environment."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    env = {**os.environ, **settings.to_env(), **(extra_env or {})}
    with log_path.open("ab") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "touchstone.cli", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    log.info("started %s (pid %d): touchstone %s", name, popen.pid, " ".join(args))
    return ManagedProcess(name, popen, log_path)
