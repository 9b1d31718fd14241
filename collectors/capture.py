"""Live keyboard and mouse capture: pynput, or on X11 a lean XRecord listener.

The listener callbacks run on listener threads and must be cheap and never block: each reads
the monotonic clock, reduces the key to its privacy token (so no raw character is ever queued in
``timing`` or ``keyed`` mode) and appends one small tuple to a bounded :class:`EventQueue`.
The collector's sender thread drains the queue into the batcher. A full queue drops the event
and counts it (:attr:`EventQueue.dropped`); at 125 Hz mouse motion plus typing the queue is
drained ten times a second and stays far from its bound.

Backends (``backend``):

``pynput``
    pynput's keyboard and mouse listeners (imported only in :meth:`InputCapture.start`: on Linux
    pynput needs an X display and python-xlib). The only choice on Windows and macOS.
``xrecord``
    :class:`~touchstone.collectors.xrecord.XRecordListener`: the same X RECORD stream pynput uses
    on Linux, decoded by libXtst in C instead of python-xlib in Python. At 125 Hz of motion plus
    typing pynput's Xorg listeners alone cost about the whole 2 % CPU budget; this one a little
    over half of it (``bench/collector_cost.py``). Keys are identified by the unshifted keysym of
    their keycode, read from the server's keyboard mapping (refreshed every few seconds).
``auto`` (default)
    ``xrecord`` on Linux with ``DISPLAY`` when libXtst loads, else ``pynput``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from typing import Any

from touchstone.collectors.batcher import MOVE, PRESS, RELEASE, SCROLL
from touchstone.collectors.privacy import KeyEventTokenizer, KeyTokenizer, normalise_key_name, normalise_pynput_key
from touchstone.errors import TouchstoneError

__all__ = ["KEY", "MOUSE", "BACKENDS", "CaptureError", "EventQueue", "InputCapture", "DEFAULT_QUEUE_CAPACITY"]

log = logging.getLogger(__name__)

KEY = 0
MOUSE = 1
DEFAULT_QUEUE_CAPACITY = 65_536
BACKENDS = ("auto", "xrecord", "pynput")
_KEYMAP_REFRESH_S = 5.0
# Event tuples: (KEY, t_ns, down, token) and (MOUSE, t_ns, kind, x, y, button).
Event = tuple[Any, ...]
# raw/1 button codes (touchstone.contracts.Button), restated to keep numpy out of the collector.
_BUTTON_CODES = {"left": 1, "right": 2, "middle": 3}
_OTHER_BUTTON = 4


class CaptureError(TouchstoneError):
    """Input capture could not start (no display, no permission, unsupported platform)."""


class EventQueue:
    """Bounded FIFO from listener threads to the sender thread; :meth:`put` never blocks.

    ``deque.append`` and ``popleft`` are atomic in CPython, so producers and the consumer need no
    lock; the length check makes the bound approximate by at most the number of producer threads.
    """

    def __init__(self, capacity: int = DEFAULT_QUEUE_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._items: deque[Event] = deque()
        self._drop_lock = threading.Lock()
        self.dropped = 0
        self.high_water = 0

    def put(self, item: Event) -> bool:
        size = len(self._items)
        if size >= self.capacity:
            with self._drop_lock:
                self.dropped += 1
            return False
        self._items.append(item)
        if size >= self.high_water:
            self.high_water = size + 1
        return True

    def drain(self) -> list[Event]:
        """Everything queued so far, oldest first."""
        items = self._items
        out = []
        for _ in range(len(items)):
            out.append(items.popleft())
        return out

    def __len__(self) -> int:
        return len(self._items)


def _button_code(button: Any) -> int:
    return _BUTTON_CODES.get(getattr(button, "name", ""), _OTHER_BUTTON)


class InputCapture:
    """Keyboard (press/release) and mouse (move, press/release, scroll) listeners feeding a queue."""

    def __init__(
        self,
        tokenizer: KeyTokenizer,
        queue: EventQueue | None = None,
        *,
        keyboard: bool = True,
        mouse: bool = True,
        backend: str = "auto",
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        self.tokenizer = tokenizer
        self.queue = queue or EventQueue()
        self._want_keyboard = keyboard
        self._want_mouse = mouse
        self._listeners: list[Any] = []
        self._clock = time.monotonic_ns
        # Tokens are taken in the listener thread, so no key name is ever queued in timing/keyed mode.
        # One KeyEventTokenizer: it pairs the releases of two held same-class keys with their presses
        # (pynput and XRecord each deliver all key events on one thread, so it needs no lock).
        self._key_events = KeyEventTokenizer(tokenizer)
        self._xrecord: Any = None
        self._key_names: dict[int, str] = {}
        self._keymap_read_at = 0.0

    # --- callbacks: listener threads; no I/O, no locks on the normal path ---

    def _on_press(self, key: Any, injected: bool = False) -> None:
        t_ns = self._clock()
        self.queue.put((KEY, t_ns, True, self._key_events.press(normalise_pynput_key(key))))

    def _on_release(self, key: Any, injected: bool = False) -> None:
        t_ns = self._clock()
        self.queue.put((KEY, t_ns, False, self._key_events.release(normalise_pynput_key(key))))

    def _on_keycode(self, keycode: int, pressed: bool) -> None:
        t_ns = self._clock()
        token = self._key_events.event(self._key_names.get(keycode, "other"), pressed)
        self.queue.put((KEY, t_ns, pressed, token))

    def _on_move(self, x: float, y: float, injected: bool = False) -> None:
        self.queue.put((MOUSE, self._clock(), MOVE, x, y, 0))

    def _on_click(self, x: float, y: float, button: Any, pressed: bool, injected: bool = False) -> None:
        t_ns = self._clock()
        self.queue.put((MOUSE, t_ns, PRESS if pressed else RELEASE, x, y, _button_code(button)))

    def _on_scroll(self, x: float, y: float, dx: float, dy: float, injected: bool = False) -> None:
        t_ns = self._clock()
        self.queue.put((MOUSE, t_ns, SCROLL, x, y, int(dy)))

    # --- lifecycle ---

    def start(self, timeout: float = 10.0) -> None:
        """Start the listeners and return once they receive events; CaptureError if they cannot."""
        if self.backend in ("auto", "xrecord") and self._start_xrecord(timeout):
            self.backend = "xrecord"
        else:
            self._start_pynput(timeout)
            self.backend = "pynput"
        log.info("capturing %s via %s", " and ".join(self._kinds()), self.backend)

    def _start_xrecord(self, timeout: float) -> bool:
        if not (sys.platform.startswith("linux") and os.environ.get("DISPLAY")):
            if self.backend == "xrecord":
                raise CaptureError("the xrecord backend needs Linux with an X display (DISPLAY)")
            return False
        from touchstone.collectors.xrecord import XRecordListener, XRecordUnavailable

        mouse = self._want_mouse
        try:
            listener = XRecordListener(
                on_move=self._on_move if mouse else None,
                on_click=self._on_click if mouse else None,
                on_scroll=self._on_scroll if mouse else None,
                on_key=self._on_keycode if self._want_keyboard else None,
            )
            self._xrecord = listener
            self._refresh_keymap(force=True)
            listener.start(timeout)
        except XRecordUnavailable as exc:
            self._xrecord = None
            if self.backend == "xrecord":
                raise CaptureError(f"XRecord capture unavailable: {exc}") from exc
            log.info("XRecord unavailable (%s); capturing with pynput", exc)
            return False
        self._listeners.append(listener)
        return True

    def _refresh_keymap(self, force: bool = False) -> None:
        # Layouts change rarely; re-reading the mapping every few seconds from the sender thread keeps
        # the callback a dictionary lookup. The dict is replaced whole, so the listener never sees it half-built.
        now = time.monotonic()
        if (
            self._xrecord is None
            or not self._want_keyboard
            or (not force and now - self._keymap_read_at < _KEYMAP_REFRESH_S)
        ):
            return
        self._keymap_read_at = now
        names = self._xrecord.key_names()
        self._key_names = {code: normalise_key_name(name) for code, name in names.items()}

    def _start_pynput(self, timeout: float) -> None:
        try:
            from pynput import keyboard, mouse
        except Exception as exc:  # pynput raises ImportError or Xlib errors depending on what is missing
            raise CaptureError(f"pynput cannot capture input here (is DISPLAY set?): {exc}") from exc
        if self._want_keyboard:
            self._listeners.append(keyboard.Listener(on_press=self._on_press, on_release=self._on_release))
        if self._want_mouse:
            self._listeners.append(
                mouse.Listener(on_move=self._on_move, on_click=self._on_click, on_scroll=self._on_scroll)
            )
        for listener in self._listeners:
            listener.daemon = True
            listener.start()
        deadline = time.monotonic() + timeout
        for listener in self._listeners:
            if not self._wait_ready(listener, deadline):
                self.stop()
                raise CaptureError("pynput listener did not become ready (X server unreachable?)")

    @staticmethod
    def _wait_ready(listener: Any, deadline: float) -> bool:
        # Listener.wait() blocks without a timeout and never returns if the thread died early.
        while time.monotonic() < deadline:
            if getattr(listener, "_ready", False):
                return True
            if not listener.is_alive():
                return False
            time.sleep(0.01)
        return False

    def _kinds(self) -> list[str]:
        return [k for k, on in (("keyboard", self._want_keyboard), ("mouse", self._want_mouse)) if on]

    def stop(self) -> None:
        for listener in self._listeners:
            listener.stop()
        for listener in self._listeners:
            listener.join(2.0)
        self._listeners.clear()

    @property
    def running(self) -> bool:
        return any(listener.is_alive() for listener in self._listeners)

    def drain(self) -> list[Event]:
        self._refresh_keymap()
        return self.queue.drain()
