import logging
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from touchstone.config import Settings
from touchstone.detectors import snapshot as snapshot_module
from touchstone.detectors.exceptions import SnapshotError
from touchstone.detectors.snapshot import (
    DEV_SNAPSHOT_KEY,
    dump_snapshot,
    load_snapshot,
    load_snapshot_key,
    new_snapshot_key,
)
from touchstone.detectors.state import (
    CheckpointPolicy,
    Manifest,
    chunk_key,
    join_snapshot,
    manifest_key,
    split_snapshot,
)
from touchstone.errors import ConfigError, TouchstoneError

KEY = b"k" * 32
OTHER = b"o" * 32

json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)


class Detonator:
    """Unpickling this object calls its class: proof that bytes reached pickle."""

    fired = False

    def __reduce__(self):
        return (Detonator.fire, ())

    @staticmethod
    def fire():
        Detonator.fired = True
        return "boom"


@pytest.fixture
def no_unpickling(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pickle.loads reached with unauthenticated bytes")

    monkeypatch.setattr(snapshot_module.pickle, "loads", refuse)


@given(obj=json_like)
def test_round_trip(obj):
    assert load_snapshot(dump_snapshot(obj, KEY), KEY) == obj


def test_every_single_byte_flip_is_rejected_before_unpickling(no_unpickling):
    blob = dump_snapshot({"profile": [1.0, 2.0, 3.0], "user": "alice"}, KEY, kind="detector-engine")
    for position in range(len(blob)):
        tampered = bytearray(blob)
        tampered[position] ^= 0x01
        with pytest.raises(SnapshotError):
            load_snapshot(bytes(tampered), KEY, kind="detector-engine")


def test_every_truncation_and_extension_is_rejected_before_unpickling(no_unpickling):
    blob = dump_snapshot(list(range(50)), KEY)
    for length in range(len(blob)):
        with pytest.raises(SnapshotError):
            load_snapshot(blob[:length], KEY)
    with pytest.raises(SnapshotError, match="tampered"):
        load_snapshot(blob + b"\x00", KEY)


def test_wrong_key_is_named_as_such_and_never_unpickled():
    Detonator.fired = False
    blob = dump_snapshot(Detonator(), OTHER)
    with pytest.raises(SnapshotError) as caught:
        load_snapshot(blob, KEY)
    assert caught.value.reason == "wrong_key"
    assert not Detonator.fired


def test_forged_payload_under_our_header_is_rejected_without_running_it():
    Detonator.fired = False
    genuine = dump_snapshot("harmless", KEY)
    evil = pickle.dumps(Detonator())
    header_len = len(genuine) - 32 - len(pickle.dumps("harmless", protocol=5))
    forged = bytearray(genuine[:header_len] + evil + genuine[-32:])
    forged[header_len - 8 : header_len] = len(evil).to_bytes(8, "big")
    with pytest.raises(SnapshotError) as caught:
        load_snapshot(bytes(forged), KEY)
    assert caught.value.reason == "tampered"
    assert not Detonator.fired


def test_retired_keys_still_load_during_rotation():
    blob = dump_snapshot({"v": 1}, OTHER)
    assert load_snapshot(blob, [KEY, OTHER]) == {"v": 1}


def test_a_snapshot_of_one_kind_cannot_be_loaded_as_another():
    blob = dump_snapshot({"v": 1}, KEY, kind="detector-engine")
    with pytest.raises(SnapshotError) as caught:
        load_snapshot(blob, KEY, kind="something-else")
    assert caught.value.reason == "wrong_kind"


def test_unknown_version_and_foreign_bytes_have_clear_reasons():
    blob = bytearray(dump_snapshot(1, KEY))
    blob[6] = 99
    with pytest.raises(SnapshotError) as caught:
        load_snapshot(bytes(blob), KEY)
    assert caught.value.reason == "unknown_version"
    with pytest.raises(SnapshotError) as caught:
        load_snapshot(pickle.dumps({"not": "ours"}), KEY)
    assert caught.value.reason == "not_a_snapshot"
    assert isinstance(caught.value, TouchstoneError)


def test_short_keys_are_refused_for_signing():
    with pytest.raises(ValueError):
        dump_snapshot(1, b"short")


def test_key_from_settings(tmp_path):
    path = tmp_path / "snapshot.key"
    path.write_bytes(new_snapshot_key() + b"\n")
    path.chmod(0o600)
    key = load_snapshot_key(Settings(snapshot_key_file=str(path)))
    assert len(key) == 64 and not key.endswith(b"\n")
    assert load_snapshot(dump_snapshot("x", key), key) == "x"


def test_missing_or_short_key_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError):
        load_snapshot_key(Settings(snapshot_key_file=str(tmp_path / "absent.key")))
    short = tmp_path / "short.key"
    short.write_bytes(b"too short")
    with pytest.raises(ConfigError):
        load_snapshot_key(Settings(snapshot_key_file=str(short)))


def test_no_key_file_falls_back_to_the_dev_key_loudly(caplog):
    with caplog.at_level(logging.WARNING, logger="touchstone.detectors.snapshot"):
        assert load_snapshot_key(Settings()) == DEV_SNAPSHOT_KEY
    assert "INSECURE" in caplog.text


def test_world_readable_key_file_is_warned_about(tmp_path, caplog):
    path = tmp_path / "snapshot.key"
    path.write_bytes(new_snapshot_key())
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="touchstone.detectors.snapshot"):
        load_snapshot_key(Settings(snapshot_key_file=str(path)))
    assert "chmod 600" in caplog.text


# -- chunked checkpoints (detectors/state.py) -------------------------------------------------------


@given(data=st.binary(max_size=5000), chunk_bytes=st.integers(1, 700), generation=st.integers(0, 10**6))
def test_chunks_reassemble_exactly_and_stay_under_the_chunk_size(data, chunk_bytes, generation):
    manifest, chunks = split_snapshot(data, generation, chunk_bytes)
    assert all(len(c) <= chunk_bytes for c in chunks) and len(chunks) == manifest.chunks >= 1
    assert join_snapshot(Manifest.from_dict(manifest.to_dict()), chunks) == data


def test_a_missing_stale_or_altered_chunk_is_refused():
    manifest, chunks = split_snapshot(dump_snapshot(list(range(300)), KEY), 3, chunk_bytes=200)
    with pytest.raises(SnapshotError, match="truncated"):
        join_snapshot(manifest, chunks[:-1])
    with pytest.raises(SnapshotError, match="truncated"):
        join_snapshot(manifest, [*chunks[:-1], None])
    _, other = split_snapshot(dump_snapshot(list(range(301)), KEY), 2, chunk_bytes=200)
    with pytest.raises(SnapshotError, match="tampered"):
        join_snapshot(manifest, [*chunks[:-1], other[len(chunks) - 1]])
    with pytest.raises(SnapshotError, match="not_a_snapshot"):
        Manifest.from_dict({"generation": 1})


def test_table_keys_name_the_partition_and_generation():
    assert manifest_key(3) != manifest_key(4)
    assert len({chunk_key(p, g, i) for p in range(3) for g in range(3) for i in range(3)}) == 27
    assert manifest_key(3) not in {chunk_key(3, g, i) for g in range(3) for i in range(3)}


def test_checkpoint_policy():
    policy = CheckpointPolicy(every_windows=10, every_ms=1000.0)
    assert not policy.due(0, 10_000.0)
    assert policy.due(10, 0.0) and policy.due(1, 1000.0) and not policy.due(9, 999.0)
    with pytest.raises(ValueError):
        CheckpointPolicy(every_windows=0)
