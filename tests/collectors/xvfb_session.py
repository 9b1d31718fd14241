"""An Xvfb display and xdotool, for the tests and the benchmark that drive real X input."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENSURE_SCRIPT = REPO / "deploy" / "xvfb" / "ensure-xvfb.sh"


def ensure_tools() -> str | None:
    """None when Xvfb and xdotool are available (installing them if possible), else why not."""
    if shutil.which("Xvfb") and shutil.which("xdotool"):
        return None
    proc = subprocess.run(["bash", str(ENSURE_SCRIPT)], capture_output=True, text=True, check=False)
    if shutil.which("Xvfb") and shutil.which("xdotool"):
        return None
    return f"Xvfb/xdotool unavailable and {ENSURE_SCRIPT.name} could not install them: {proc.stderr.strip()[-300:]}"


@contextmanager
def xvfb_display(size: str = "1280x1024x24", timeout: float = 10.0) -> Iterator[str]:
    """Start Xvfb on a display it picks itself (``-displayfd``: no race for a free number)."""
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", size, "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        number = _read_display_number(read_fd, proc, timeout)
        yield f":{number}"
    finally:
        os.close(read_fd)
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _read_display_number(fd: int, proc: subprocess.Popen[bytes], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    data = b""
    os.set_blocking(fd, False)
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 64)
        except BlockingIOError:
            chunk = b""
        data += chunk
        if data.endswith(b"\n"):
            return int(data.strip())
        if proc.poll() is not None:
            raise RuntimeError(f"Xvfb exited with {proc.returncode} before reporting its display")
        time.sleep(0.02)
    raise RuntimeError("Xvfb did not report a display in time")


def xdotool(display: str, *args: str) -> None:
    subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": display}, check=True, timeout=120)


def xdotool_major_version(display: str) -> int:
    # Without a display xdotool exits before its buffered version line reaches stdout.
    env = {**os.environ, "DISPLAY": display}
    out = subprocess.run(["xdotool", "version"], capture_output=True, text=True, check=False, env=env).stdout
    # "xdotool version 3.20160805.1"
    try:
        return int(out.split("version", 1)[1].strip().split(".", 1)[0])
    except (IndexError, ValueError):
        return 0
