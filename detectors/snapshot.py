"""Authenticated snapshots: pickle only what this deployment wrote, and prove it before loading.

Layout (all lengths fixed except the kind label and the payload)::

    magic "TSSNAP" | version u8 | kind length u8 | kind (ASCII) | key id (8 bytes)
    | payload length u64 BE | payload (pickle) | HMAC-SHA256(key, everything before)

:func:`load_snapshot` checks the framing, the key id and then the MAC with
:func:`hmac.compare_digest` before a single byte reaches :mod:`pickle`; anything else
raises :class:`~touchstone.detectors.exceptions.SnapshotError`. The key id (a keyed
hash of the key, not the key) lets a worker say "signed with another key" instead
of "tampered", and lets old keys stay valid during a rotation. The kind label
(e.g. ``detector-engine``) is authenticated too, so one kind of snapshot cannot be
loaded where another is expected.

The deployment key comes from ``Settings.snapshot_key_file``; without one, a fixed
development key is used and a warning says so, loudly, on every load of the key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import pickle
import secrets
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from touchstone.config import Settings
from touchstone.detectors.exceptions import SnapshotError
from touchstone.errors import ConfigError

__all__ = [
    "DEV_SNAPSHOT_KEY",
    "MIN_KEY_BYTES",
    "SNAPSHOT_VERSION",
    "dump_snapshot",
    "key_id",
    "load_snapshot",
    "load_snapshot_key",
    "new_snapshot_key",
]

log = logging.getLogger(__name__)

MAGIC = b"TSSNAP"
SNAPSHOT_VERSION = 1
MIN_KEY_BYTES = 32
# Public by construction: it authenticates nothing against an attacker who has read this file.
DEV_SNAPSHOT_KEY = b"touchstone-development-snapshot-key-NOT-FOR-PRODUCTION"
_MAC_BYTES = 32
_KEY_ID_BYTES = 8
_PICKLE_PROTOCOL = 5


def key_id(key: bytes) -> bytes:
    """8 bytes naming the key without revealing it."""
    return hmac.new(key, b"touchstone snapshot key id", hashlib.sha256).digest()[:_KEY_ID_BYTES]


def _header(kind: str, key: bytes, payload_len: int) -> bytes:
    label = kind.encode("ascii")
    if not 0 < len(label) < 256:
        raise ValueError(f"kind must be 1 to 255 ASCII characters, got {kind!r}")
    return b"".join((MAGIC, bytes((SNAPSHOT_VERSION, len(label))), label, key_id(key), struct.pack(">Q", payload_len)))


def dump_snapshot(obj: Any, key: bytes, *, kind: str = "object") -> bytes:
    """Pickle ``obj`` and sign it with ``key`` (HMAC-SHA256 over header and payload)."""
    _check_key(key)
    payload = pickle.dumps(obj, protocol=_PICKLE_PROTOCOL)
    signed = _header(kind, key, len(payload)) + payload
    return signed + hmac.new(key, signed, hashlib.sha256).digest()


def load_snapshot(data: bytes, key: bytes | Sequence[bytes], *, kind: str = "object") -> Any:
    """Verify and unpickle a snapshot made by :func:`dump_snapshot`.

    ``key`` may be a sequence (current key first, then retired ones still accepted).
    Raises SnapshotError, never unpickling bytes whose MAC does not verify.

    >>> blob = dump_snapshot({"a": 1}, b"k" * 32)
    >>> load_snapshot(blob, b"k" * 32)
    {'a': 1}
    >>> load_snapshot(blob[:-1] + bytes([blob[-1] ^ 1]), b"k" * 32)
    Traceback (most recent call last):
    ...
    touchstone.detectors.exceptions.SnapshotError: tampered: MAC does not match (altered or truncated snapshot)
    """
    keys = [key] if isinstance(key, (bytes, bytearray)) else list(key)
    view = memoryview(data)
    fixed = len(MAGIC) + 2
    if len(view) < fixed:
        raise SnapshotError("truncated", f"{len(view)} bytes is shorter than any snapshot header")
    if bytes(view[: len(MAGIC)]) != MAGIC:
        raise SnapshotError("not_a_snapshot", "missing the TSSNAP magic bytes")
    version, label_len = view[len(MAGIC)], view[len(MAGIC) + 1]
    if version != SNAPSHOT_VERSION:
        raise SnapshotError("unknown_version", f"snapshot version {version}, this build reads {SNAPSHOT_VERSION}")
    header_len = fixed + label_len + _KEY_ID_BYTES + 8
    if len(view) < header_len + _MAC_BYTES:
        raise SnapshotError("truncated", f"{len(view)} bytes cannot hold the header and MAC")
    offset = fixed + label_len
    found_id = bytes(view[offset : offset + _KEY_ID_BYTES])
    signer = next((k for k in keys if hmac.compare_digest(key_id(k), found_id)), None)
    if signer is None:
        raise SnapshotError("wrong_key", f"signed with key id {found_id.hex()}, not a key this worker holds")
    (payload_len,) = struct.unpack(">Q", view[offset + _KEY_ID_BYTES : header_len])
    signed_len = len(view) - _MAC_BYTES
    expected = hmac.new(signer, view[:signed_len], hashlib.sha256).digest()
    if not hmac.compare_digest(expected, bytes(view[signed_len:])) or header_len + payload_len != signed_len:
        raise SnapshotError("tampered", "MAC does not match (altered or truncated snapshot)")
    # Authenticated from here on: the header and payload are exactly what a holder of the key wrote.
    found_kind = bytes(view[fixed : fixed + label_len]).decode("ascii", errors="replace")
    if found_kind != kind:
        raise SnapshotError("wrong_kind", f"snapshot holds {found_kind!r}, expected {kind!r}")
    try:
        return pickle.loads(view[header_len:signed_len])
    except (AttributeError, ImportError, TypeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise SnapshotError("incompatible", f"authentic snapshot this code cannot load: {exc}") from exc


def _check_key(key: bytes) -> None:
    if not isinstance(key, (bytes, bytearray)) or len(key) < MIN_KEY_BYTES:
        raise ValueError(f"snapshot key must be bytes of length >= {MIN_KEY_BYTES}")


def new_snapshot_key() -> bytes:
    """A fresh random key in the form ``snapshot_key_file`` holds (64 hex characters)."""
    return secrets.token_hex(32).encode("ascii")


def load_snapshot_key(settings: Settings) -> bytes:
    """The deployment key from ``settings.snapshot_key_file``, or the development key with a warning."""
    if not settings.snapshot_key_file:
        log.warning(
            "INSECURE: no snapshot_key_file set (TOUCHSTONE_SNAPSHOT_KEY_FILE); detector snapshots are "
            "signed with the public development key. Anyone who can write the state store can run code "
            "in the detector worker. Use this only for the demo and tests."
        )
        return DEV_SNAPSHOT_KEY
    path = Path(settings.snapshot_key_file)
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"snapshot_key_file {str(path)!r} cannot be read: {exc.strerror}") from None
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"snapshot_key_file {str(path)!r} holds {len(key)} bytes; at least {MIN_KEY_BYTES} needed")
    if path.stat().st_mode & 0o077:
        log.warning("snapshot_key_file %s is readable by group or others; chmod 600 it", path)
    return key
