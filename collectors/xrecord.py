"""A lean X11 input listener: the RECORD extension through libXtst (ctypes), no Python protocol parsing.

pynput's Xorg listeners decode every X reply in pure Python (python-xlib), which at 125 Hz of
mouse motion costs about 2 % of a core on its own, the whole budget of the collector. Here
libXtst does the protocol work in C and calls back into Python once per event with the 32-byte
wire event, from which only the type, detail (button or keycode) and root coordinates are read.
Mouse callbacks keep pynput's signatures (``on_move(x, y)``, ``on_click(x, y, button, pressed)``,
``on_scroll(x, y, dx, dy)``, ``button`` carrying pynput's ``name``); keys arrive as
``on_key(keycode, pressed)``, and :meth:`XRecordListener.key_names` maps keycodes to key names
(the unshifted keysym of each key, so a key keeps one identity whatever the modifiers).

Needs libX11 and libXtst (present wherever xdotool or pynput work) and ``DISPLAY``; raises
:class:`XRecordUnavailable` otherwise, so the caller can fall back to pynput.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import struct
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["XRecordUnavailable", "XRecordListener", "keysym_name"]

log = logging.getLogger(__name__)

_KEY_PRESS, _KEY_RELEASE, _BUTTON_PRESS, _BUTTON_RELEASE, _MOTION_NOTIFY = 2, 3, 4, 5, 6
_FROM_SERVER, _START_OF_DATA = 0, 4
_ALL_CLIENTS = 3
# Wheel buttons of the core protocol: 4 up, 5 down, 6 left, 7 right.
_SCROLL = {4: (0, 1), 5: (0, -1), 6: (-1, 0), 7: (1, 0)}
_ROOT_XY = struct.Struct("=hh")  # root_x, root_y at byte 20 of a core input event


class XRecordUnavailable(RuntimeError):
    """libX11/libXtst or the X display (or its RECORD extension) cannot be used."""


class _Button:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


_BUTTONS = {1: _Button("left"), 2: _Button("middle"), 3: _Button("right")}
_OTHER = _Button("other")


class _Range8(ctypes.Structure):
    _fields_ = [("first", ctypes.c_ubyte), ("last", ctypes.c_ubyte)]


class _Range16(ctypes.Structure):
    _fields_ = [("first", ctypes.c_ushort), ("last", ctypes.c_ushort)]


class _ExtRange(ctypes.Structure):
    _fields_ = [("ext_major", _Range8), ("ext_minor", _Range16)]


class _RecordRange(ctypes.Structure):
    _fields_ = [
        ("core_requests", _Range8),
        ("core_replies", _Range8),
        ("ext_requests", _ExtRange),
        ("ext_replies", _ExtRange),
        ("delivered_events", _Range8),
        ("device_events", _Range8),
        ("errors", _Range8),
        ("client_started", ctypes.c_int),
        ("client_died", ctypes.c_int),
    ]


class _InterceptData(ctypes.Structure):
    _fields_ = [
        ("id_base", ctypes.c_ulong),
        ("server_time", ctypes.c_ulong),
        ("client_seq", ctypes.c_ulong),
        ("category", ctypes.c_int),
        ("client_swapped", ctypes.c_int),
        ("data", ctypes.POINTER(ctypes.c_ubyte)),
        ("data_len", ctypes.c_ulong),
    ]


# The record pointer arrives as a plain address: reading the struct with one string_at + unpack is
# several times cheaper per event than going through ctypes Structure attribute access.
_InterceptProc = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
_INTERCEPT_SIZE = ctypes.sizeof(_InterceptData)
_OFFSET_CATEGORY = _InterceptData.category.offset
_OFFSET_DATA = _InterceptData.data.offset
_OFFSET_DATA_LEN = _InterceptData.data_len.offset
_CATEGORY = struct.Struct("@i")
_POINTER_AND_LEN = struct.Struct("@PL")  # data, data_len: adjacent in the C struct
if struct.calcsize("@P") != _OFFSET_DATA_LEN - _OFFSET_DATA:
    raise ImportError("unexpected XRecordInterceptData layout")


def _load(name: str) -> ctypes.CDLL:
    path = ctypes.util.find_library(name)
    if path is None:
        raise XRecordUnavailable(f"lib{name} not found")
    return ctypes.CDLL(path)


def _libraries() -> tuple[ctypes.CDLL, ctypes.CDLL]:
    x11, xtst = _load("X11"), _load("Xtst")
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    x11.XFlush.argtypes = [ctypes.c_void_p]
    x11.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
    x11.XFree.argtypes = [ctypes.c_void_p]
    x11.XDisplayKeycodes.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]
    x11.XGetKeyboardMapping.restype = ctypes.POINTER(ctypes.c_ulong)
    x11.XGetKeyboardMapping.argtypes = [ctypes.c_void_p, ctypes.c_ubyte, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    x11.XKeysymToString.restype = ctypes.c_char_p
    x11.XKeysymToString.argtypes = [ctypes.c_ulong]
    xtst.XRecordQueryVersion.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]
    xtst.XRecordAllocRange.restype = ctypes.POINTER(_RecordRange)
    xtst.XRecordCreateContext.restype = ctypes.c_ulong
    xtst.XRecordCreateContext.argtypes = [
        ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_ulong), ctypes.c_int,
        ctypes.POINTER(ctypes.POINTER(_RecordRange)), ctypes.c_int,
    ]  # fmt: skip
    xtst.XRecordEnableContext.argtypes = [ctypes.c_void_p, ctypes.c_ulong, _InterceptProc, ctypes.c_void_p]
    xtst.XRecordDisableContext.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
    xtst.XRecordFreeContext.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
    xtst.XRecordFreeData.argtypes = [ctypes.c_void_p]
    return x11, xtst


def keysym_name(keysym: int, x11: ctypes.CDLL | None = None) -> str:
    """Name of an X keysym: its character for Latin-1 and Unicode keysyms, else the X name (``Shift_L``).

    >>> keysym_name(0x61), keysym_name(0x2C), keysym_name(0x20AC + 0x01000000)
    ('a', ',', '€')
    """
    if 0x20 <= keysym <= 0x7E or 0xA0 <= keysym <= 0xFF:
        return chr(keysym)
    if 0x01000100 <= keysym <= 0x0110FFFF:
        return chr(keysym - 0x01000000)
    if x11 is not None and keysym:
        name = x11.XKeysymToString(keysym)
        if name:
            return name.decode("ascii", "replace")
    return "other"


def _noop(*_: Any) -> None:
    return None


class XRecordListener:
    """Keys, mouse motion, clicks and wheel from every client of the X display, via XRecord.

    Only the streams with a callback are recorded. ``start()`` returns once the server confirmed
    the recording; ``stop()`` ends it (call it from the thread that created the listener).
    """

    def __init__(
        self,
        on_move: Callable[..., Any] | None = None,
        on_click: Callable[..., Any] | None = None,
        on_scroll: Callable[..., Any] | None = None,
        on_key: Callable[[int, bool], Any] | None = None,
        display: str | None = None,
    ) -> None:
        self.on_move = on_move or _noop
        self.on_click = on_click or _noop
        self.on_scroll = on_scroll or _noop
        self.on_key = on_key or _noop
        mouse = on_move is not None or on_click is not None or on_scroll is not None
        self._first_event = _KEY_PRESS if on_key is not None else _BUTTON_PRESS
        self._last_event = _MOTION_NOTIFY if mouse else _KEY_RELEASE
        self._display_name = display.encode() if display else None
        self._x11, self._xtst = _libraries()
        self._control = self._open()
        self._data = self._open()
        major, minor = ctypes.c_int(), ctypes.c_int()
        if not self._xtst.XRecordQueryVersion(self._control, ctypes.byref(major), ctypes.byref(minor)):
            self._x11.XCloseDisplay(self._data)
            self._x11.XCloseDisplay(self._control)
            raise XRecordUnavailable("the X server has no RECORD extension")
        self._context = self._create_context()
        self._callback = _InterceptProc(self._intercept)  # kept referenced: C holds the pointer
        self._free = self._xtst.XRecordFreeData
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="xrecord", daemon=True)
        self._stopped = False

    def _open(self) -> int:
        display = self._x11.XOpenDisplay(self._display_name)
        if not display:
            raise XRecordUnavailable("cannot open the X display (is DISPLAY set?)")
        return int(display)

    def _create_context(self) -> int:
        record_range = self._xtst.XRecordAllocRange()
        if not record_range:
            raise XRecordUnavailable("XRecordAllocRange failed")
        record_range.contents.device_events.first = self._first_event
        record_range.contents.device_events.last = self._last_event
        clients = ctypes.c_ulong(_ALL_CLIENTS)
        ranges = ctypes.pointer(record_range)
        context = self._xtst.XRecordCreateContext(self._control, 0, ctypes.byref(clients), 1, ranges, 1)
        self._x11.XFree(record_range)
        if not context:
            raise XRecordUnavailable("XRecordCreateContext failed")
        # The data connection must see the context before enabling it on that connection.
        self._x11.XSync(self._control, 0)
        return int(context)

    # --- C callback: one call per recorded event ---

    def _intercept(self, _closure: int | None, record: int) -> None:
        try:
            header = ctypes.string_at(record, _INTERCEPT_SIZE)
            (category,) = _CATEGORY.unpack_from(header, _OFFSET_CATEGORY)
            if category == _FROM_SERVER:
                address, length = _POINTER_AND_LEN.unpack_from(header, _OFFSET_DATA)
                if length >= 8:  # 8 × 4 bytes: one core input event
                    self._dispatch(ctypes.string_at(address, 32))
            elif category == _START_OF_DATA:
                self._ready.set()
        except Exception:  # an exception must not unwind through C; log it and keep recording
            log.exception("mouse callback failed")
        finally:
            self._free(record)

    def _dispatch(self, raw: bytes) -> None:
        kind = raw[0] & 0x7F
        if kind in (_KEY_PRESS, _KEY_RELEASE):
            self.on_key(raw[1], kind == _KEY_PRESS)
            return
        x, y = _ROOT_XY.unpack_from(raw, 20)
        if kind == _MOTION_NOTIFY:
            self.on_move(x, y)
        elif kind in (_BUTTON_PRESS, _BUTTON_RELEASE):
            detail = raw[1]
            scroll = _SCROLL.get(detail)
            if scroll is None:
                self.on_click(x, y, _BUTTONS.get(detail, _OTHER), kind == _BUTTON_PRESS)
            elif kind == _BUTTON_PRESS:
                self.on_scroll(x, y, scroll[0], scroll[1])

    # --- keyboard mapping ---

    def key_names(self) -> dict[int, str]:
        """Keycode → name of the key's unshifted keysym, from the server's current keyboard mapping."""
        low, high = ctypes.c_int(), ctypes.c_int()
        self._x11.XDisplayKeycodes(self._control, ctypes.byref(low), ctypes.byref(high))
        count = high.value - low.value + 1
        per_code = ctypes.c_int()
        table = self._x11.XGetKeyboardMapping(self._control, low.value, count, ctypes.byref(per_code))
        if not table:
            return {}
        try:
            step = per_code.value
            return {low.value + i: keysym_name(table[i * step], self._x11) for i in range(count) if table[i * step]}
        finally:
            self._x11.XFree(table)

    # --- lifecycle ---

    def _run(self) -> None:
        try:
            if not self._xtst.XRecordEnableContext(self._data, self._context, self._callback, None):
                log.error("XRecordEnableContext failed")
        finally:
            self._ready.set()  # never leave start() waiting

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout) or not self._thread.is_alive():
            self.stop()
            raise XRecordUnavailable("the X server did not start recording")

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._xtst.XRecordDisableContext(self._control, self._context)
        self._x11.XFlush(self._control)
        self._thread.join(2.0)
        self._xtst.XRecordFreeContext(self._control, self._context)
        self._x11.XFlush(self._control)
        self._close_displays()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _close_displays(self) -> None:
        if not self._thread.is_alive():
            self._x11.XCloseDisplay(self._data)
        self._x11.XCloseDisplay(self._control)
