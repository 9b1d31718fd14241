"""Settings: environment defaults, validation, and documentation kept in step with the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from touchstone.cli import configuration_markdown
from touchstone.config import load_settings
from touchstone.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_environment_overrides_defaults():
    settings = load_settings({"TOUCHSTONE_PARTITIONS": "12", "TOUCHSTONE_BOOTSTRAP": "127.0.0.1:19092"})
    assert settings.partitions == 12 and settings.bootstrap == "127.0.0.1:19092"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TOUCHSTONE_PARTITIONS": "many"}, "TOUCHSTONE_PARTITIONS='many' is not a valid int"),
        ({"TOUCHSTONE_PRIVACY": "plain"}, "privacy must be timing, keyed or full"),
        ({"TOUCHSTONE_KEY_WINDOW": "0"}, "key_window must be at least 1"),
        ({"TOUCHSTONE_BATCH_INTERVAL_S": "0"}, "batch_interval_s must lie within"),
        ({"TOUCHSTONE_BATCH_INTERVAL_S": "60"}, "batch_interval_s must lie within"),
        ({"TOUCHSTONE_WORKER_EVENT_LOOP": "trio"}, "worker_event_loop must be uvloop or asyncio"),
    ],
)
def test_bad_values_are_clear_errors(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_unknown_override_is_rejected():
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings({}, partitons=3)


def test_configuration_doc_matches_the_code():
    # docs/configuration.md is generated: `touchstone config --markdown > docs/configuration.md`
    assert (ROOT / "docs" / "configuration.md").read_text() == configuration_markdown()


def test_collectors_cut_batches_at_the_configured_interval():
    from touchstone.collectors.batcher import BatchPolicy

    policy = BatchPolicy.from_settings(load_settings({"TOUCHSTONE_BATCH_INTERVAL_S": "1.5"}))
    assert policy.max_interval_s == 1.5
    # The dataclass default and the setting's default are one number, stated twice.
    assert BatchPolicy().max_interval_s == load_settings({}).batch_interval_s
