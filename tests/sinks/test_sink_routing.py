from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from touchstone.contracts import Level
from touchstone.errors import ConfigError
from touchstone.sinks.metrics import SinkMetrics
from touchstone.sinks.pagerduty import PagerDutySink
from touchstone.sinks.routing import (
    BuildContext,
    PagerDutyOptions,
    SlackOptions,
    build_sinks,
    load_routes,
)
from touchstone.sinks.siem import SiemSink
from touchstone.sinks.store import DeliveryStore
from touchstone.sinks.testing import make_alert
from touchstone.sinks.topic import MemoryTopicWriter

pytestmark = pytest.mark.timeout(30)

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "sinks" / "routes.example.yaml"
ENV = {"SLACK_URL": "https://hooks.slack.com/services/T1/B2/SECRETPART", "PD_KEY": "pdkey-abcdef"}


def yaml_doc(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


BASIC = yaml_doc(
    """
    groups:
      tier1: [alice, "cs-*"]
    sinks:
      siem: {type: siem}
      team: {type: slack, url_env: SLACK_URL}
      pager: {type: pagerduty, routing_key_env: PD_KEY}
    routes:
      - {name: all, sinks: [siem]}
      - {name: channel, sinks: [team], min_level: medium}
      - {name: page, sinks: [pager, team], min_level: high, user_groups: [tier1], modalities: [keys, fused]}
    """
)


def test_routes_select_sinks_by_level_group_and_modality():
    config = load_routes(BASIC, env=ENV)
    assert config.targets(make_alert(level=Level.LOW)) == ("siem",)
    assert config.targets(make_alert(level=Level.MEDIUM)) == ("siem", "team")
    assert config.targets(make_alert(level=Level.HIGH)) == ("siem", "team", "pager")
    assert config.targets(make_alert(level=Level.HIGH, user="cs-0042")) == ("siem", "team", "pager")
    assert config.targets(make_alert(level=Level.HIGH, user="mallory")) == ("siem", "team")
    assert config.targets(make_alert(level=Level.CRITICAL, modality="mouse")) == ("siem", "team")


def test_a_resolve_reaches_the_sinks_that_may_hold_the_incident():
    config = load_routes(BASIC, env=ENV)
    resolved = make_alert(level=Level.NONE, status="resolved")
    assert config.targets(resolved) == ("siem", "team", "pager")


def test_secrets_come_from_env_and_files_and_never_print(tmp_path):
    key_file = tmp_path / "pd_key"
    key_file.write_text("pd-from-file\n")
    text = BASIC.replace("routing_key_env: PD_KEY", f"routing_key_file: {key_file}")
    config = load_routes(text, env=ENV)
    slack, pager = config.sinks["team"].options, config.sinks["pager"].options
    assert isinstance(slack, SlackOptions) and slack.url.reveal() == ENV["SLACK_URL"]
    assert isinstance(pager, PagerDutyOptions) and pager.routing_key.reveal() == "pd-from-file"
    shown = repr(config)
    assert "SECRETPART" not in shown and "pd-from-file" not in shown
    assert "env SLACK_URL" in shown  # where it came from is fine to show


def errors_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_routes(text, env=ENV if env is None else env)
    return str(caught.value).splitlines()


def test_unknown_keys_are_rejected_with_position_and_suggestion():
    text = yaml_doc(
        """
        sinks:
          pager:
            type: pagerduty
            routing_key_env: PD_KEY
            componnent: x
        routes:
          - sinks: [pager]
            min_levl: high
        """
    )
    assert errors_of(text) == [
        "routes config:5:5: sinks.pager.componnent: unknown key (did you mean component?)",
        "routes config:8:5: routes[0].min_levl: unknown key (did you mean min_level?)",
    ]


def test_all_problems_are_reported_together():
    text = yaml_doc(
        """
        sinks:
          team: {type: slack, url_env: NOT_SET}
          odd: {type: carrier-pigeon}
          hook: {type: webhook, url: "https://example/hook?token=abc"}
        routes:
          - sinks: [team, nowhere]
            min_level: severe
            user_groups: [ghosts]
        """
    )
    problems = errors_of(text)
    assert problems == [
        "routes config:2:23: sinks.team.url_env: environment variable NOT_SET is not set or empty",
        "routes config:3:9: sinks.odd.type: 'type' must be one of slack, pagerduty, webhook, jsonl, siem, "
        "got 'carrier-pigeon'",
        "routes config:4:25: sinks.hook.url: secrets are not written in the routes file; use url_env or url_file",
        "routes config:6:19: routes[0].sinks[1]: no sink named 'nowhere' (defined: hook, odd, team)",
        "routes config:7:5: routes[0].min_level: must be one of none, low, medium, high, critical, got 'severe'",
        "routes config:8:19: routes[0].user_groups[0]: no group named 'ghosts' under 'groups'",
    ]
    assert not any("token=abc" in line for line in problems)


def test_type_errors_and_missing_keys():
    text = yaml_doc(
        """
        defaults:
          delivery: {max_attempts: many, timeout_s: -1}
        sinks:
          pager: {type: pagerduty}
          log: {type: jsonl, format: xml, fsync: "yes"}
        routes:
          - sinks: [pager, log]
            modalities: [keys, eyes]
            user_groups: [nobody]
        worker: {batch_s: 0}
        """
    )
    problems = errors_of(text)
    assert "routes config:2:14: defaults.delivery.max_attempts: must be an integer, got str 'many'" in problems
    assert "routes config:4:3: sinks.pager: missing routing_key_env or routing_key_file" in problems
    assert "routes config:5:22: sinks.log.format: must be one of alert, ecs, ocsf, cef, got 'xml'" in problems
    assert "routes config:5:35: sinks.log.fsync: must be true or false, got str 'yes'" in problems
    assert "routes config:8:5: routes[0].modalities: values must be among keys, mouse, fused, got ['eyes']" in problems
    assert "routes config:9:19: routes[0].user_groups[0]: no group named 'nobody' under 'groups'" in problems
    assert "routes config:10:1: worker: batch_s must be in (0, 60], got 0.0" in problems
    assert len(problems) == 7


def test_policy_values_checked_by_the_dataclass_are_positioned():
    text = BASIC.replace("siem: {type: siem}", "siem: {type: siem, delivery: {timeout_s: 0}}")
    assert errors_of(text) == ["routes config:4:22: sinks.siem.delivery: timeout_s must be > 0, got 0.0"]


def test_yaml_syntax_errors_are_positioned(tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text("sinks:\n  a: {type: siem\nroutes: []\n")
    with pytest.raises(ConfigError, match=r"routes\.yaml:3:\d+: not valid YAML"):
        load_routes(path)


def test_duplicate_keys_are_an_error():
    text = "sinks:\n  a: {type: siem}\n  a: {type: jsonl}\nroutes:\n  - sinks: [a]\n"
    assert errors_of(text) == ["routes config:3:3: sinks.a: duplicate key"]


def test_a_dict_config_works_like_yaml():
    config = load_routes({"sinks": {"s": {"type": "siem", "format": "cef"}}, "routes": [{"sinks": ["s"]}]})
    assert config.sinks["s"].options.format == "cef" and config.routes[0].name == "route-0"
    with pytest.raises(ConfigError, match=r"routes config: sinks\.s\.formt: unknown key"):
        load_routes({"sinks": {"s": {"type": "siem", "formt": "cef"}}, "routes": [{"sinks": ["s"]}]})


def test_per_sink_delivery_overrides_the_defaults():
    text = BASIC.replace("pager: {type: pagerduty, routing_key_env: PD_KEY}",
                         "pager: {type: pagerduty, routing_key_env: PD_KEY, delivery: {max_attempts: 9}}")  # fmt: skip
    text = "defaults:\n  delivery: {max_attempts: 2, timeout_s: 3}\n" + text
    config = load_routes(text, env=ENV)
    assert config.sinks["pager"].policy.max_attempts == 9 and config.sinks["pager"].policy.timeout_s == 3.0
    assert config.sinks["team"].policy.max_attempts == 2


def test_link_templates_are_checked():
    text = BASIC.replace("url_env: SLACK_URL", 'url_env: SLACK_URL, siem_link: "https://x/{sesion}"')
    (problem,) = errors_of(text)
    assert problem.startswith("routes config:5:3: sinks.team: unknown placeholder(s) ['sesion']")


def test_the_example_routes_file_is_valid(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("k")
    text = EXAMPLE.read_text().replace("/run/secrets/touchstone_pagerduty_routing_key", str(key_file))
    env = {
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/X",
        "CASES_WEBHOOK_URL": "https://cases.example/hook",
        "CASES_SIGNING_SECRET": "s3cret",
    }
    config = load_routes(text, env=env)
    assert set(config.sinks) == {"siem", "team-channel", "on-call", "case-system", "local-log"}
    assert config.targets(make_alert(level=Level.HIGH, user="agent7")) == (
        "siem", "local-log", "team-channel", "on-call", "case-system",
    )  # fmt: skip


def test_build_sinks_from_the_registry():
    config = load_routes(BASIC, env=ENV)
    writers: dict[str, MemoryTopicWriter] = {}
    ctx = BuildContext(DeliveryStore(), SinkMetrics(), lambda t: writers.setdefault(t, MemoryTopicWriter(t)), "siem.t")
    sinks = build_sinks(config, ctx)
    assert isinstance(sinks["siem"], SiemSink) and sinks["siem"].writer.topic == "siem.t"
    assert isinstance(sinks["pager"], PagerDutySink) and sinks["pager"].kind == "pagerduty"
    assert {s.store for s in sinks.values()} == {ctx.store}
