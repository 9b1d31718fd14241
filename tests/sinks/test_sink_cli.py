from __future__ import annotations

import orjson
import pytest
from typer.testing import CliRunner

from touchstone.contracts import encode_alert
from touchstone.sinks.cli import sinks_app
from touchstone.sinks.testing import make_alert

pytestmark = pytest.mark.timeout(30)

runner = CliRunner()

ROUTES = """
sinks:
  team: {type: slack, url_env: TS_CLI_SLACK}
  log: {type: jsonl}
routes:
  - {name: channel, sinks: [team], min_level: medium, modalities: [keys]}
  - {sinks: [log]}
"""


def test_check_shows_routes_with_secrets_masked(tmp_path, monkeypatch):
    monkeypatch.setenv("TS_CLI_SLACK", "https://hooks.slack.com/services/T/B/TOPSECRET")
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES)
    result = runner.invoke(sinks_app, ["check", "--routes", str(path)])
    assert result.exit_code == 0, result.output
    assert "2 sink(s), 2 route(s)" in result.output
    assert "route channel: level >= medium; modalities keys -> team" in result.output
    assert "route route-1: level >= none -> log" in result.output
    assert "TOPSECRET" not in result.output and "env TS_CLI_SLACK" in result.output


def test_check_reports_positioned_errors(tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES.replace("min_level: medium", "min_level: loud"))
    result = runner.invoke(sinks_app, ["check", "--routes", str(path)])
    assert result.exit_code == 2
    assert f"{path}:3:" in result.output and "TS_CLI_SLACK is not set" in result.output
    assert f"{path}:6:" in result.output and "routes[0].min_level" in result.output


def test_running_without_routes_is_a_usage_error():
    assert runner.invoke(sinks_app, []).exit_code == 2


@pytest.mark.parametrize("fmt", ["ecs", "ocsf", "cef", "slack", "pagerduty"])
def test_render_prints_one_record_per_alert(fmt):
    lines = encode_alert(make_alert()) + b"\n" + encode_alert(make_alert(alert_id="b")) + b"\n"
    result = runner.invoke(sinks_app, ["render", "--format", fmt], input=lines)
    assert result.exit_code == 0, result.output
    out = result.output.splitlines()
    assert len(out) == 2
    if fmt == "cef":
        assert out[0].startswith("CEF:0|")
    else:
        assert all(isinstance(orjson.loads(line), dict) for line in out)


def test_render_rejects_bad_input():
    result = runner.invoke(sinks_app, ["render"], input=b'{"schema": "alert/1"}\n')
    assert result.exit_code == 2 and "line 1" in result.output
