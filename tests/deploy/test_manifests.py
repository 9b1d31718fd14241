"""The deployment files under ``deploy/`` cannot run here; these tests check what can be checked.

Every YAML and JSON file parses; kustomizations name files that exist; images are Touchstone's own
(built by deploy/docker/Dockerfile) or pinned upstream images; every port is one of the project's;
every ``TOUCHSTONE_*`` variable is a field of :class:`~touchstone.config.Settings` and its value
parses; every command is a real ``touchstone`` sub-command with real options; every metric in the
alert rules and the dashboard is registered somewhere in the project's source. Each checker is a
plain function returning problems, and each has a negative test on a synthetic input, so none of
these tests can pass by finding nothing.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
import yaml

from touchstone.cli import _mount_optional, app
from touchstone.config import Settings, load_settings
from touchstone.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S_BASE = DEPLOY / "k8s" / "base"
COMPOSE_FILE = DEPLOY / "compose" / "docker-compose.yaml"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
ALERTS_FILE = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD_DIR = DEPLOY / "grafana" / "dashboards"
DOCS = [ROOT / "docs" / "deployment.md", ROOT / "docs" / "scaling.md"]
# Build output and fetched jars of deploy/kafka, not deployment files.
SKIP_DIRS = {"lib", "target"}
YAML_SUFFIXES = (".yaml", ".yml", ".yml.example", ".yaml.example")

TOUCHSTONE_IMAGE = "touchstone:0.1.0"
UPSTREAM_IMAGES = {
    "python:3.11-slim-bookworm": "base of deploy/docker/Dockerfile",
    "apache/kafka:4.1.2": "broker of the compose deployment (same version as deploy/kafka/pom.xml)",
    "danielqsj/kafka-exporter:v1.9.0": "consumer lag for Prometheus (compose)",
    "prom/prometheus:v3.5.0": "metrics and alert rules (compose)",
    "grafana/grafana:12.0.2": "dashboard (compose)",
}
PORTS = {
    9092: "Kafka",
    9093: "KRaft controller listener of the compose broker (not published)",
    9101: "collector /metrics",
    9102: "worker /metrics",
    9103: "sinks /metrics",
    9090: "Prometheus",
    3000: "Grafana",
    9308: "Kafka exporter (compose)",
    9404: "Strimzi Kafka Exporter metrics",
}
METRICS_PORTS = {9101, 9102, 9103}
# Port names that belong to upstream pods (Strimzi's Kafka Exporter), not to Touchstone's containers.
UPSTREAM_PORT_NAMES = {"tcp-prometheus"}
# Metrics the rules and the dashboard may use without Touchstone registering them.
EXTERNAL_METRICS = {
    "up": "Prometheus, per scrape target",
    "kafka_consumergroup_lag": "Kafka exporter",
    "kafka_consumergroup_lag_sum": "Kafka exporter",
}
METRIC_SOURCE_DIRS = ("collectors", "streams", "detectors", "sinks", "touchstone", "bench")


# --- reading the files ---------------------------------------------------------------------------------


def deploy_files() -> Iterator[Path]:
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file() and not SKIP_DIRS.intersection(path.relative_to(DEPLOY).parts):
            yield path


def yaml_files() -> list[Path]:
    return [p for p in deploy_files() if p.name.endswith(YAML_SUFFIXES)]


def json_files() -> list[Path]:
    return [p for p in deploy_files() if p.suffix == ".json"]


def load_docs(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def text_files() -> Iterator[tuple[Path, str]]:
    for path in [*deploy_files(), *DOCS]:
        try:
            yield path, path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue


def k8s_docs(directory: Path = K8S_BASE) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(directory.rglob("*.yaml")):
        docs += [d for d in load_docs(path) if isinstance(d, dict) and "kind" in d and d.get("kind") != "Kustomization"]
    return docs


def compose() -> dict[str, Any]:
    return load_docs(COMPOSE_FILE)[0]


def by_kind(docs: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(path, key, value) for every mapping entry in a parsed document, depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from walk(item, f"{path}[{index}]")


def pod_containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {})
    pod = spec.get("template", {}).get("spec", {}) if "template" in spec else {}
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def k8s_containers(docs: Iterable[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        for container in pod_containers(doc):
            yield f"{doc['kind']}/{doc['metadata']['name']}/{container.get('name')}", container


def configmap_env() -> dict[str, str]:
    (config,) = [d for d in by_kind(k8s_docs(), "ConfigMap") if d["metadata"]["name"] == "touchstone-config"]
    return {k: str(v) for k, v in config["data"].items()}


def k8s_settings() -> Settings:
    return load_settings(configmap_env())


# --- checkers: each returns a list of problems ---------------------------------------------------------


def kustomization_problems(directory: Path, doc: dict[str, Any]) -> list[str]:
    problems = []
    named = [*doc.get("resources", []), *doc.get("components", []), *doc.get("patchesStrategicMerge", [])]
    named += [p["path"] for p in doc.get("patches", []) if isinstance(p, dict) and "path" in p]
    for ref in named:
        target = directory / ref
        if target.is_dir():
            if not any((target / n).is_file() for n in ("kustomization.yaml", "kustomization.yml", "Kustomization")):
                problems.append(f"{directory}: {ref} is a directory without a kustomization")
        elif not target.is_file():
            problems.append(f"{directory}: {ref} does not exist")
    return problems


def image_problems(images: Iterable[tuple[str, str]]) -> list[str]:
    problems = []
    for where, image in images:
        tag = image.split("/")[-1].partition(":")[2]
        if image == TOUCHSTONE_IMAGE:
            if not DOCKERFILE.is_file():
                problems.append(f"{where}: {image} but {DOCKERFILE} is missing")
        elif not tag or tag == "latest":
            problems.append(f"{where}: {image} is not pinned to a tag")
        elif image not in UPSTREAM_IMAGES:
            problems.append(f"{where}: {image} is neither {TOUCHSTONE_IMAGE} nor an allowed upstream image")
    return problems


def dockerfile_images(text: str) -> list[str]:
    stages: set[str] = set()
    images = []
    for match in re.finditer(r"^FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I):
        if match.group(1) not in stages:
            images.append(match.group(1))
        if match.group(2):
            stages.add(match.group(2))
    return images


def manifest_images(doc: Any) -> list[str]:
    return [value for _, key, value in walk(doc) if key == "image" and isinstance(value, str)]


ENDPOINT = re.compile(r"(?:[A-Za-z0-9_.\]-]|/):(\d{2,5})(?![\d.])")


def port_problems(where: str, ports: Iterable[int | str], names: Iterable[str] = ()) -> list[str]:
    known_names = set(names) | UPSTREAM_PORT_NAMES
    problems = []
    for port in ports:
        if isinstance(port, str) and not port.isdigit():
            if port not in known_names:
                problems.append(f"{where}: port name {port!r} is not declared by the container")
        elif int(port) not in PORTS:
            problems.append(f"{where}: port {port} is not one of the project's ports {sorted(PORTS)}")
    return problems


def endpoint_ports(text: str) -> list[int]:
    """Ports of ``host:port`` and URL forms inside a string."""
    return [int(m.group(1)) for m in ENDPOINT.finditer(text)]


def doc_ports(doc: Any) -> tuple[list[int | str], set[str]]:
    """Port fields and ports inside endpoint strings of one parsed document; and declared port names."""
    ports: list[int | str] = []
    names: set[str] = set()
    for path, key, value in walk(doc):
        if key in {"containerPort", "port", "targetPort", "hostPort"} and isinstance(value, int | str):
            ports.append(value)
        elif key in {"ports", "expose"} and isinstance(value, list) and all(isinstance(v, str | int) for v in value):
            ports += [str(v).rsplit(":", 1)[-1].split("/")[0] for v in value]
        elif key == "prometheus.io/port":
            ports.append(str(value))
        elif key == "name" and path.endswith("]") and ".ports[" in path:
            names.add(str(value))
        if isinstance(value, str):
            ports += endpoint_ports(value)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            args = list(value)
            ports += [
                int(args[i + 1]) for i, a in enumerate(args[:-1]) if a == "--metrics-port" and args[i + 1].isdigit()
            ]
    return ports, names


def env_name_problems(where: str, text: str, known: set[str]) -> list[str]:
    found = set(re.findall(r"\bTOUCHSTONE_[A-Z0-9_]*[A-Z0-9]\b", text))
    return [f"{where}: {name} is not a Settings field" for name in sorted(found - known)]


def env_value_problems(where: str, env: dict[str, str]) -> list[str]:
    problems = []
    settings_env = {k: v for k, v in env.items() if k.startswith("TOUCHSTONE_")}
    try:
        load_settings(settings_env)
    except ConfigError as exc:
        problems.append(f"{where}: {exc}")
    port = settings_env.get("TOUCHSTONE_METRICS_PORT")
    if port is not None and port.isdigit() and int(port) not in METRICS_PORTS:
        problems.append(f"{where}: TOUCHSTONE_METRICS_PORT={port} is not a metrics port {sorted(METRICS_PORTS)}")
    for hostport in settings_env.get("TOUCHSTONE_BOOTSTRAP", "").split(","):
        if hostport and not hostport.endswith(":9092"):
            problems.append(f"{where}: TOUCHSTONE_BOOTSTRAP entry {hostport!r} is not on the Kafka port 9092")
    return problems


def _click_exception() -> type[Exception]:
    # Typer vendors click; its exceptions share the ClickException root, whichever click it is.
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


@functools.cache
def touchstone_cli() -> Any:
    """The click command behind ``touchstone``, with the stage commands mounted (once)."""
    _mount_optional()
    return typer.main.get_command(app)


def command_problems(where: str, argv: list[str]) -> list[str]:
    """Parse ``touchstone <argv>`` with the real CLI (options typed and checked), without running it."""
    click_error = _click_exception()
    command: Any = touchstone_cli()
    name, args, parent = "touchstone", list(argv), None
    try:
        while True:
            ctx = command.make_context(name, args, parent=parent)
            if not hasattr(command, "commands"):
                return []
            rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
            if not rest:
                if command.invoke_without_command:
                    return []
                return [f"{where}: `touchstone {' '.join(argv)}` names no sub-command"]
            name, command, args = command.resolve_command(ctx, rest)
            parent = ctx
    except click_error as exc:
        return [f"{where}: `touchstone {' '.join(argv)}`: {exc.format_message()}"]


PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
    "and", "or", "unless", "inf", "nan", "atan2",
}  # fmt: skip
_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords or labels."""
    text = _STRINGS.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries (also Grafana's $__rate_interval)
    text = _LABEL_LISTS.sub(" ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        before = text[match.start() - 1] if match.start() else " "
        if before.isdigit() or before in ".$":
            continue  # durations (5m), exponents (1e3), template variables
        if text[match.end() :].lstrip().startswith("(") or match.group(0) in PROMQL_WORDS:
            continue
        names.add(match.group(0))
    return names


_METRIC_CTOR = re.compile(
    r"\b(Counter|Gauge|Histogram|Summary|Info|Enum|CounterMetricFamily|GaugeMetricFamily|HistogramMetricFamily"
    r"|SummaryMetricFamily|InfoMetricFamily)\(\s*(?:name\s*=\s*)?[\"']([A-Za-z_:][A-Za-z0-9_:]*)[\"']"
)


def exposed_metric_names(sources: Iterable[str]) -> set[str]:
    """Sample names prometheus-client exposes for the metrics constructed in ``sources``."""
    names: set[str] = set()
    for text in sources:
        for kind, name in _METRIC_CTOR.findall(text):
            kind = kind.removesuffix("MetricFamily")
            if kind == "Counter":
                base = name.removesuffix("_total")
                names |= {f"{base}_total", f"{base}_created"}
            elif kind == "Histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"}
            elif kind == "Summary":
                names |= {name, f"{name}_sum", f"{name}_count", f"{name}_created"}
            elif kind == "Info":
                names.add(f"{name}_info")
            else:
                names.add(name)
    return names


def project_metric_names() -> set[str]:
    sources = [p.read_text(encoding="utf-8") for d in METRIC_SOURCE_DIRS for p in sorted((ROOT / d).rglob("*.py"))]
    return exposed_metric_names(sources)


def metric_problems(where: str, exprs: Iterable[str], known: set[str]) -> list[str]:
    problems = []
    for expr in exprs:
        for name in sorted(promql_metric_names(expr) - known - set(EXTERNAL_METRICS)):
            problems.append(f"{where}: metric {name} in `{' '.join(expr.split())}` is not exported by the project")
    return problems


def rule_exprs(groups: list[dict[str, Any]]) -> list[str]:
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [value for _, key, value in walk(dashboard.get("panels", [])) if key == "expr" and isinstance(value, str)]


# --- every file parses ---------------------------------------------------------------------------------


def test_the_deploy_tree_has_the_expected_files():
    expected = [
        DOCKERFILE, COMPOSE_FILE, ALERTS_FILE, DEPLOY / "prometheus" / "prometheus.yml",
        DASHBOARD_DIR / "touchstone.json", K8S_BASE / "kustomization.yaml",
        DEPLOY / "k8s" / "overlays" / "production" / "kustomization.yaml",
    ]  # fmt: skip
    assert [p for p in expected if not p.is_file()] == []


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_parses(path):
    assert load_docs(path), f"{path} holds no YAML document"


@pytest.mark.parametrize("path", json_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_json_parses(path):
    assert isinstance(json.loads(path.read_text(encoding="utf-8")), dict)


def test_malformed_yaml_is_an_error():
    with pytest.raises(yaml.YAMLError):
        list(yaml.safe_load_all("a: [1, 2\nb: {"))


# --- kustomize -----------------------------------------------------------------------------------------


def kustomizations() -> list[Path]:
    return sorted(p for p in (DEPLOY / "k8s").rglob("kustomization.yaml"))


@pytest.mark.parametrize("path", kustomizations(), ids=lambda p: str(p.relative_to(ROOT)))
def test_kustomization_names_existing_files(path):
    assert kustomization_problems(path.parent, load_docs(path)[0]) == []


def test_kustomization_checker_flags_a_missing_file(tmp_path):
    (tmp_path / "present.yaml").write_text("kind: ConfigMap\n")
    doc = {"resources": ["present.yaml", "absent.yaml"], "patches": [{"path": "gone.yaml"}]}
    assert len(kustomization_problems(tmp_path, doc)) == 2


def test_secret_template_is_not_deployed_and_covers_every_referenced_key():
    base = load_docs(K8S_BASE / "kustomization.yaml")[0]
    assert "secret.template.yaml" not in base["resources"], "placeholders must never be applied"
    (template,) = load_docs(K8S_BASE / "secret.template.yaml")
    keys = set(template["stringData"])
    assert all(value.startswith("REPLACE-") for value in template["stringData"].values())
    referenced = set()
    for _, key, value in walk(k8s_docs()):
        if key == "secretKeyRef":
            assert value["name"] == template["metadata"]["name"]
            referenced.add(value["key"])
        if key == "secret" and isinstance(value, dict):
            assert value["secretName"] == template["metadata"]["name"]
            referenced |= {item["key"] for item in value.get("items", [])}
    assert referenced, "no workload reads the secret"
    assert referenced <= keys


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (for `kubectl kustomize`) is not installed")
@pytest.mark.parametrize("overlay", ["base", "overlays/production"])
def test_kustomize_renders_and_the_rendered_output_passes_the_same_checks(overlay):
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / "k8s" / overlay)], capture_output=True, text=True, timeout=120
    )
    assert rendered.returncode == 0, rendered.stderr
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"touchstone"}
    for where, container in k8s_containers(docs):
        # The production overlay retags touchstone for a registry; the tag stays the project version.
        assert container["image"].endswith("touchstone:0.1.0"), where
        assert command_problems(where, container["args"]) == []
    ports: list[int | str] = []
    names: set[str] = set()
    for doc in docs:
        found, declared = doc_ports(doc)
        ports += found
        names |= declared
    assert port_problems(overlay, ports, names) == []


# --- images --------------------------------------------------------------------------------------------


def all_images() -> list[tuple[str, str]]:
    images = [(str(DOCKERFILE), image) for image in dockerfile_images(DOCKERFILE.read_text())]
    for path in yaml_files():
        images += [(str(path), image) for doc in load_docs(path) for image in manifest_images(doc)]
    return images


def test_images_are_touchstone_or_pinned_upstream():
    images = all_images()
    assert {image for _, image in images} >= {TOUCHSTONE_IMAGE, "apache/kafka:4.1.2"}
    assert image_problems(images) == []


def test_image_checker_flags_latest_untagged_and_unknown_images():
    flagged = image_problems([("x", "redis:latest"), ("x", "redis"), ("x", "nginx:1.27"), ("x", TOUCHSTONE_IMAGE)])
    assert len(flagged) == 3


def test_dockerfile_stage_names_are_not_images():
    text = "FROM python:3.11-slim-bookworm AS build\nFROM build AS test\nFROM --platform=linux/amd64 alpine:3.20\n"
    assert dockerfile_images(text) == ["python:3.11-slim-bookworm", "alpine:3.20"]


def test_dockerfile_copies_only_what_exists_and_runs_touchstone_as_non_root():
    text = DOCKERFILE.read_text()
    for line in re.findall(r"^COPY\s+(?!--from)(.+)$", text, re.M):
        *sources, _dest = shlex.split(line)
        for source in sources:
            assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
    assert re.search(r'^ENTRYPOINT \["touchstone"\]$', text, re.M)
    (user,) = re.findall(r"^USER\s+(\S+)$", text, re.M)
    assert not user.startswith(("0", "root"))
    assert "constraints.txt" in text


def test_kafka_version_is_the_same_everywhere():
    pom = (DEPLOY / "kafka" / "pom.xml").read_text()
    (version,) = re.findall(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    assert compose()["services"]["kafka"]["image"] == f"apache/kafka:{version}"
    (kafka,) = by_kind(k8s_docs(), "Kafka")
    assert kafka["spec"]["kafka"]["version"] == version


# --- ports ---------------------------------------------------------------------------------------------


def test_every_port_is_a_project_port():
    parsed = [
        (str(path.relative_to(ROOT)), doc)
        for path in [*yaml_files(), *json_files()]
        for doc in (load_docs(path) if path.suffix != ".json" else [json.loads(path.read_text())])
    ]
    # Named ports resolve across files: a PodMonitor names the port a StatefulSet declares.
    declared = {name for _, doc in parsed for name in doc_ports(doc)[1]}
    problems = []
    seen: list[int | str] = []
    for where, doc in parsed:
        ports, _ = doc_ports(doc)
        seen += ports
        problems += port_problems(where, ports, declared)
    docker_ports = re.findall(r"^EXPOSE\s+(.+)$", DOCKERFILE.read_text(), re.M)
    problems += port_problems("Dockerfile", [p for line in docker_ports for p in line.split()])
    assert problems == []
    assert {9092, 9102, 9103, 9308, 9090, 3000} <= {int(p) for p in seen if str(p).isdigit()}


def test_port_checker_flags_unknown_ports_and_undeclared_names():
    manifest = yaml.safe_load(
        """
        containers:
          - name: worker
            ports: [{name: metrics, containerPort: 8080}]
            readinessProbe: {httpGet: {path: /metrics, port: web}}
            env: [{name: TOUCHSTONE_BOOTSTRAP, value: "kafka:29092"}]
            args: [worker, --metrics-port, "9999"]
        """
    )
    ports, names = doc_ports(manifest)
    problems = port_problems("synthetic", ports, names)
    assert len(problems) == 4, problems  # 8080, 'web', 29092 and 9999


def test_endpoint_ports_are_found_in_urls_listeners_and_targets():
    assert endpoint_ports("http://localhost:9090/-/healthy") == [9090]
    assert endpoint_ports("PLAINTEXT://:9092,CONTROLLER://:9093") == [9092, 9093]
    assert endpoint_ports("CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT") == []
    assert endpoint_ports("rocksdb://") == []


def test_worker_and_sinks_serve_metrics_on_their_ports():
    services = compose()["services"]
    assert services["worker"]["environment"]["TOUCHSTONE_METRICS_PORT"] == "9102"
    assert services["sinks"]["environment"]["TOUCHSTONE_METRICS_PORT"] == "9103"
    for where, container in k8s_containers(k8s_docs()):
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        role = container["name"]
        if role in {"worker", "sinks"}:
            expected = {"worker": "9102", "sinks": "9103"}[role]
            assert env["TOUCHSTONE_METRICS_PORT"] == expected, where
            declared = {p["name"]: p["containerPort"] for p in container["ports"]}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                port = container[probe]["httpGet"]["port"]
                assert declared.get(port, port) == int(expected), f"{where} {probe}"


# --- settings ------------------------------------------------------------------------------------------


def known_settings() -> set[str]:
    return {env for env, *_ in Settings.describe()}


def test_every_touchstone_variable_is_a_settings_field():
    known = known_settings()
    problems = []
    for path, text in text_files():
        problems += env_name_problems(str(path.relative_to(ROOT)), text, known)
    assert problems == []


def test_env_name_checker_flags_an_unknown_variable():
    manifest = "env:\n  - {name: TOUCHSTONE_BOOTSTRAP, value: kafka:9092}\n  - {name: TOUCHSTONE_KAFKA_URL, value: x}\n"
    assert env_name_problems("synthetic", manifest, known_settings()) == [
        "synthetic: TOUCHSTONE_KAFKA_URL is not a Settings field"
    ]


def environments() -> Iterator[tuple[str, dict[str, str]]]:
    for name, service in compose()["services"].items():
        yield f"compose {name}", {k: str(v) for k, v in (service.get("environment") or {}).items()}
    shared = configmap_env()
    yield "configmap touchstone-config", shared
    for where, container in k8s_containers(k8s_docs()):
        own = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
        yield where, {**shared, **own}


def test_every_setting_value_parses():
    problems = [p for where, env in environments() for p in env_value_problems(where, env)]
    assert problems == []


def test_env_value_checker_flags_bad_values():
    env = {"TOUCHSTONE_PARTITIONS": "twelve", "TOUCHSTONE_METRICS_PORT": "8000", "TOUCHSTONE_BOOTSTRAP": "kafka:19092"}
    assert len(env_value_problems("synthetic", env)) == 3


# --- commands ------------------------------------------------------------------------------------------


def touchstone_commands() -> Iterator[tuple[str, list[str]]]:
    for name, service in compose()["services"].items():
        if service.get("image") == TOUCHSTONE_IMAGE:
            command = service.get("command", [])
            yield f"compose {name}", shlex.split(command) if isinstance(command, str) else list(command)
            assert "entrypoint" not in service, f"compose {name} overrides the touchstone entrypoint"
    for where, container in k8s_containers(k8s_docs()):
        if container["image"] == TOUCHSTONE_IMAGE:
            command = container.get("command", ["touchstone"])
            assert command == ["touchstone"], f"{where}: command must be touchstone (or unset), not {command}"
            yield where, list(container.get("args", []))


def test_commands_are_real_touchstone_sub_commands():
    commands = list(touchstone_commands())
    assert {argv[0] for _, argv in commands} >= {"topics", "worker", "sinks"}
    assert [p for where, argv in commands for p in command_problems(where, argv)] == []


def test_command_checker_flags_unknown_commands_and_options():
    assert command_problems("synthetic", ["topics"]) == []
    assert len(command_problems("synthetic", ["frobnicate"])) == 1
    assert len(command_problems("synthetic", ["worker", "--no-such-flag"])) == 1
    assert len(command_problems("synthetic", ["worker", "--metrics-port", "lots"])) == 1
    assert len(command_problems("synthetic", ["kafka", "up", "--port"])) == 1


def test_keda_scales_the_worker_group_within_the_partitions():
    docs = k8s_docs()
    (scaled,) = by_kind(docs, "ScaledObject")
    target = scaled["spec"]["scaleTargetRef"]
    (workload,) = [d for d in docs if d["kind"] == target["kind"] and d["metadata"]["name"] == target["name"]]
    (container,) = pod_containers(workload)
    args = container["args"]
    app_id = args[args.index("--app-id") + 1]
    settings = k8s_settings()
    partitions = {t["spec"]["topicName"]: t["spec"]["partitions"] for t in by_kind(docs, "KafkaTopic")}
    triggers = scaled["spec"]["triggers"]
    assert {t["metadata"]["topic"] for t in triggers} == {settings.topic_raw, settings.topic_features}
    for trigger in triggers:
        assert trigger["type"] == "kafka"
        assert trigger["metadata"]["consumerGroup"] == app_id
        assert trigger["metadata"]["bootstrapServers"].startswith(settings.bootstrap.split(":")[0])
        assert scaled["spec"]["maxReplicaCount"] <= partitions[trigger["metadata"]["topic"]]
    overlay = load_docs(DEPLOY / "k8s" / "overlays" / "production" / "worker-scaling.yaml")[0]
    assert overlay["spec"]["minReplicaCount"] <= overlay["spec"]["maxReplicaCount"] <= settings.partitions


def test_kafka_topics_are_the_settings_topics_with_the_configured_counts():
    settings = k8s_settings()
    topics = by_kind(k8s_docs(), "KafkaTopic")
    assert sorted(t["spec"]["topicName"] for t in topics) == sorted(settings.all_topics())
    assert {t["spec"]["partitions"] for t in topics} == {settings.partitions}
    assert {t["spec"]["replicas"] for t in topics} == {settings.replication}


# --- sinks routes --------------------------------------------------------------------------------------


def routes_documents() -> Iterator[tuple[str, str, set[str]]]:
    """(where, routes YAML, env var names the sinks container gets) for compose and Kubernetes."""
    sinks = compose()["services"]["sinks"]
    (mount,) = [v for v in sinks["volumes"] if v.endswith(":/etc/touchstone/routes.yaml:ro")]
    yield "compose", (COMPOSE_FILE.parent / mount.split(":")[0]).read_text(), set(sinks["environment"])
    docs = k8s_docs()
    (routes,) = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"] == "touchstone-sinks-routes"]
    ((_, container),) = [(w, c) for w, c in k8s_containers(docs) if c["name"] == "sinks"]
    yield "kubernetes", routes["data"]["routes.yaml"], {e["name"] for e in container.get("env", [])}


def secret_env_names(routes_text: str) -> set[str]:
    return set(re.findall(r"^\s*[^#\n]*?\b\w+_env:\s*([A-Za-z_][A-Za-z0-9_]*)", routes_text, re.M))


@pytest.mark.parametrize("where", ["compose", "kubernetes"])
def test_routes_files_load_with_the_secrets_the_sinks_container_gets(where):
    from touchstone.sinks.routing import load_routes

    ((_, text, env_names),) = [r for r in routes_documents() if r[0] == where]
    wanted = secret_env_names(text)
    assert wanted <= env_names, f"{where}: the sinks container lacks {sorted(wanted - env_names)}"
    config = load_routes(text, env={name: "placeholder-secret" for name in wanted})
    assert config.routes and config.sinks


def test_kubernetes_routes_need_their_secrets():
    from touchstone.sinks.routing import load_routes

    ((_, text, _),) = [r for r in routes_documents() if r[0] == "kubernetes"]
    assert secret_env_names(text) == {"SLACK_WEBHOOK_URL", "PAGERDUTY_ROUTING_KEY"}
    with pytest.raises(ConfigError):
        load_routes(text, env={})
    assert secret_env_names("sinks:\n  # a: {type: slack, url_env: COMMENTED_OUT}\n") == set()


# --- metrics -------------------------------------------------------------------------------------------


def test_metric_names_are_read_from_promql():
    expr = 'sum by (modality) (rate(touchstone_streams_events_total{modality="keys"}[5m])) > bool 1e3'
    assert promql_metric_names(expr) == {"touchstone_streams_events_total"}
    expr = "histogram_quantile(0.99, sum by (le) (rate(x_bucket[$__rate_interval]))) / on (job) group_left up"
    assert promql_metric_names(expr) == {"x_bucket", "up"}
    assert promql_metric_names('time() - max by (segment) (last_seen{a=~"b.*"}) offset 5m') == {"last_seen"}


def test_exposed_names_follow_prometheus_client_suffixes():
    source = 'A = Counter("a_total", "x")\nB = Histogram(\n    "b_seconds", "y")\nc = Gauge("c", "z", ["l"])\n'
    assert exposed_metric_names([source]) == {
        "a_total", "a_created", "b_seconds_bucket", "b_seconds_sum", "b_seconds_count", "b_seconds_created", "c",
    }  # fmt: skip


def test_alert_rules_use_only_exported_metrics():
    groups = load_docs(ALERTS_FILE)[0]["groups"]
    exprs = rule_exprs(groups)
    assert len(exprs) >= 10
    assert metric_problems("alerts.yml", exprs, project_metric_names()) == []


@pytest.mark.parametrize("path", sorted(DASHBOARD_DIR.glob("*.json")), ids=lambda p: p.name)
def test_dashboard_uses_only_exported_metrics_and_the_provisioned_datasource(path):
    dashboard = json.loads(path.read_text())
    exprs = dashboard_exprs(dashboard)
    assert len(exprs) >= 10
    assert metric_problems(path.name, exprs, project_metric_names()) == []
    provisioned = {
        ds["uid"]
        for p in sorted((DEPLOY / "grafana" / "provisioning" / "datasources").glob("*.yaml"))
        for ds in load_docs(p)[0]["datasources"]
    }
    used = {value["uid"] for _, key, value in walk(dashboard) if key == "datasource" and isinstance(value, dict)}
    assert used and used <= provisioned


def test_metric_checker_flags_unknown_names_and_bare_counters():
    known = project_metric_names()
    assert "touchstone_streams_batches_total" in known
    exprs = ["rate(touchstone_made_up_total[5m])", "touchstone_streams_batches > 0", "up == 0"]
    assert len(metric_problems("synthetic", exprs, known)) == 2


def test_prometheus_operator_rules_equal_the_plain_rules():
    plain = load_docs(ALERTS_FILE)[0]["groups"]
    (rule,) = load_docs(DEPLOY / "k8s" / "components" / "monitoring" / "prometheusrule.yaml")
    assert rule["spec"]["groups"] == plain


def test_prometheus_loads_the_rule_files_compose_mounts():
    config = load_docs(DEPLOY / "prometheus" / "prometheus.yml")[0]
    prometheus = compose()["services"]["prometheus"]
    mounts = {
        v.split(":")[1]: COMPOSE_FILE.parent / v.split(":")[0] for v in prometheus["volumes"] if v.startswith(".")
    }
    for rule_file in config["rule_files"]:
        assert rule_file in mounts and mounts[rule_file].is_file(), rule_file
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert {"touchstone-worker", "touchstone-sinks", "touchstone-collector", "kafka-exporter"} <= jobs
    used = set(re.findall(r'job="([^"]+)"', ALERTS_FILE.read_text()))
    assert used <= jobs


def test_compose_bind_mounts_exist():
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE_FILE.parent / source).exists(), f"compose {name}: {source} is missing"
