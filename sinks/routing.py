"""Routes from configuration: which alerts go to which sinks.

A routes file (YAML, or the same structure as a dict) names sinks — each a ``type:`` from
:data:`SINK_TYPES` with that type's options — and routes that send alerts to them::

    groups:                       # user groups, by name or glob
      tier1: [alice, "cs-*"]
    defaults:
      delivery: {max_attempts: 5, timeout_s: 10}
    sinks:
      siem:   {type: siem, format: ecs}
      team:   {type: slack, url_env: SLACK_WEBHOOK_URL, siem_link: "https://siem/s/{session_id}"}
      pager:  {type: pagerduty, routing_key_file: /run/secrets/pd_key}
    routes:
      - {name: record, sinks: [siem]}
      - {name: channel, sinks: [team], min_level: medium}
      - {name: page, sinks: [pager], min_level: high, user_groups: [tier1], modalities: [keys, fused]}

An alert goes to every sink of every route it matches, once per sink. A route matches when the
alert's level is at least ``min_level``, its user is in one of ``user_groups`` and its modality
is among ``modalities`` (an empty list matches all). A ``resolved`` alert ignores ``min_level``:
the resolve must reach each sink that may hold the incident (sinks that never opened it skip it).

Unknown keys, bad values, undefined sinks or groups and missing secrets are all reported at once,
each with its position. Secrets come from ``<key>_env`` or ``<key>_file`` and never print.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from touchstone.contracts import Alert, Level
from touchstone.sinks.base import Sink
from touchstone.sinks.configfile import Document, KeyPath, Problems, fill_dataclass, load_document, reject_unknown
from touchstone.sinks.delivery import DeliveryPolicy
from touchstone.sinks.jsonl import JSONL_FORMATS, JsonlSink
from touchstone.sinks.metrics import SinkMetrics
from touchstone.sinks.pagerduty import EVENTS_URL, PagerDutySink
from touchstone.sinks.render import check_link_template
from touchstone.sinks.secrets import Secret
from touchstone.sinks.siem import SIEM_FORMATS, SiemSink
from touchstone.sinks.slack import SlackSink
from touchstone.sinks.store import DeliveryStore
from touchstone.sinks.topic import TopicWriter
from touchstone.sinks.webhook import WEBHOOK_FORMATS, WebhookSink

__all__ = [
    "SlackOptions",
    "PagerDutyOptions",
    "WebhookOptions",
    "JsonlOptions",
    "SiemOptions",
    "SINK_TYPES",
    "SinkSpec",
    "Route",
    "WorkerOptions",
    "RoutesConfig",
    "load_routes",
    "BuildContext",
    "build_sinks",
]

log = logging.getLogger(__name__)

MODALITIES = ("keys", "mouse", "fused")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _check_link(template: str | None) -> None:
    if template:
        check_link_template(template)


@dataclass(frozen=True)
class BuildContext:
    """What sinks share when built: the delivery store, metrics, Kafka writers."""

    store: DeliveryStore
    metrics: SinkMetrics
    topic_writer: Callable[[str], TopicWriter]  # topic -> acknowledged writer (SIEM sinks)
    siem_topic: str  # Settings.topic_siem, for SIEM sinks that name no topic
    sleep: Callable[[float], None] = time.sleep

    def common(self, policy: DeliveryPolicy) -> dict[str, Any]:
        return {"policy": policy, "store": self.store, "metrics": self.metrics, "sleep": self.sleep}


# --- one small dataclass per sink type ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SlackOptions:
    url: Secret
    siem_link: str | None = None

    def __post_init__(self) -> None:
        _check_link(self.siem_link)

    def build(self, name: str, policy: DeliveryPolicy, ctx: BuildContext) -> Sink:
        return SlackSink(name, url=self.url, link_template=self.siem_link, **ctx.common(policy))


@dataclass(frozen=True, kw_only=True)
class PagerDutyOptions:
    routing_key: Secret
    url: str = EVENTS_URL
    component: str = "touchstone"
    group: str | None = None
    siem_link: str | None = None

    def __post_init__(self) -> None:
        _check_link(self.siem_link)

    def build(self, name: str, policy: DeliveryPolicy, ctx: BuildContext) -> Sink:
        return PagerDutySink(
            name, routing_key=self.routing_key, url=self.url, component=self.component, group=self.group,
            link_template=self.siem_link, **ctx.common(policy),
        )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class WebhookOptions:
    url: Secret
    signing_secret: Secret | None = None
    format: str = field(default="alert", metadata={"choices": WEBHOOK_FORMATS})
    headers: dict[str, str] = field(default_factory=dict)

    def build(self, name: str, policy: DeliveryPolicy, ctx: BuildContext) -> Sink:
        return WebhookSink(
            name, url=self.url, signing_secret=self.signing_secret, fmt=self.format, headers=self.headers,
            **ctx.common(policy),
        )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class JsonlOptions:
    path: str = "-"
    format: str = field(default="alert", metadata={"choices": JSONL_FORMATS})
    fsync: bool = False

    def build(self, name: str, policy: DeliveryPolicy, ctx: BuildContext) -> Sink:
        return JsonlSink(name, path=self.path, fmt=self.format, fsync=self.fsync, **ctx.common(policy))


@dataclass(frozen=True, kw_only=True)
class SiemOptions:
    topic: str | None = None  # default: Settings.topic_siem
    format: str = field(default="ecs", metadata={"choices": SIEM_FORMATS})

    def build(self, name: str, policy: DeliveryPolicy, ctx: BuildContext) -> Sink:
        writer = ctx.topic_writer(self.topic or ctx.siem_topic)
        return SiemSink(name, writer=writer, fmt=self.format, **ctx.common(policy))


SinkOptions = SlackOptions | PagerDutyOptions | WebhookOptions | JsonlOptions | SiemOptions

SINK_TYPES: dict[str, type[Any]] = {
    "slack": SlackOptions,
    "pagerduty": PagerDutyOptions,
    "webhook": WebhookOptions,
    "jsonl": JsonlOptions,
    "siem": SiemOptions,
}


@dataclass(frozen=True)
class SinkSpec:
    name: str
    type: str
    options: SinkOptions
    policy: DeliveryPolicy


# --- routes and the worker section -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Route:
    sinks: tuple[str, ...]
    name: str = ""
    min_level: Level = Level.NONE
    user_groups: tuple[str, ...] = ()
    modalities: tuple[str, ...] = field(default=(), metadata={"choices": MODALITIES})

    def matches(self, alert: Alert, groups: Mapping[str, tuple[str, ...]]) -> bool:
        if alert.status != "resolved" and alert.level < self.min_level:
            return False
        if self.modalities and alert.modality not in self.modalities:
            return False
        if self.user_groups:
            patterns = [p for group in self.user_groups for p in groups.get(group, ())]
            if not any(fnmatch.fnmatchcase(alert.user, pattern) for pattern in patterns):
                return False
        return True


@dataclass(frozen=True, kw_only=True)
class WorkerOptions:
    group_id: str = "touchstone-sinks"
    batch_s: float = 1.0  # how long the worker gathers alerts before delivering: the burst window
    max_batch: int = 500
    dedup_ttl_s: float = 7 * 86400.0
    dedup_max_entries: int = 500_000
    session_timeout_ms: int = 45_000
    instance_id: str | None = None  # Kafka static membership: a restart rejoins without a rebalance

    def __post_init__(self) -> None:
        if not 0 < self.batch_s <= 60:
            raise ValueError(f"batch_s must be in (0, 60], got {self.batch_s}")
        if self.max_batch < 1 or self.dedup_max_entries < 1 or self.dedup_ttl_s <= 0:
            raise ValueError("max_batch, dedup_max_entries and dedup_ttl_s must be positive")


@dataclass(frozen=True)
class RoutesConfig:
    sinks: Mapping[str, SinkSpec]
    routes: tuple[Route, ...]
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    worker: WorkerOptions = field(default_factory=WorkerOptions)
    source: str = "routes config"

    def targets(self, alert: Alert) -> tuple[str, ...]:
        """Names of the sinks ``alert`` goes to, each once, in route order."""
        names: dict[str, None] = {}
        for route in self.routes:
            if route.matches(alert, self.groups):
                names.update(dict.fromkeys(route.sinks))
        return tuple(names)


# --- loading ------------------------------------------------------------------------------------------

_TOP_KEYS = ("version", "groups", "defaults", "sinks", "routes", "worker")


def _top_level(doc: Document, problems: Problems) -> dict[str, Any]:
    data = doc.data
    if not isinstance(data, dict):
        problems.add((), f"must be a mapping with keys {', '.join(_TOP_KEYS)}")
        problems.raise_if_any()
    reject_unknown(data, _TOP_KEYS, (), problems)
    if data.get("version", 1) != 1:
        problems.add(("version",), f"only version 1 is understood, got {data.get('version')!r}")
    return data


def _groups(data: Any, problems: Problems) -> dict[str, tuple[str, ...]]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.add(("groups",), "must be a mapping of group name to a list of users (globs allowed)")
        return {}
    groups: dict[str, tuple[str, ...]] = {}
    for name, members in data.items():
        if not isinstance(members, list) or not all(isinstance(m, str) and m for m in members):
            problems.add(("groups", name), "must be a list of user names or globs")
            continue
        groups[name] = tuple(members)
    return groups


def _policy(data: Any, path: KeyPath, base: DeliveryPolicy, problems: Problems) -> DeliveryPolicy:
    if data is None:
        return base
    if not isinstance(data, dict):
        problems.add(path, "must be a mapping of delivery settings")
        return base
    merged = {**{f.name: getattr(base, f.name) for f in dataclasses.fields(DeliveryPolicy)}, **data}
    policy = fill_dataclass(DeliveryPolicy, merged, path, problems)
    return policy or base


def _sinks(
    data: Any, defaults: DeliveryPolicy, problems: Problems, env: Mapping[str, str] | None
) -> dict[str, SinkSpec]:
    if not isinstance(data, dict) or not data:
        problems.add(("sinks",), "must be a mapping of sink name to its settings, with at least one sink")
        return {}
    specs: dict[str, SinkSpec] = {}
    for name, body in data.items():
        path: KeyPath = ("sinks", name)
        if not _NAME.fullmatch(name):
            problems.add(path, "sink names are letters, digits, '_', '.', '-' (at most 64)")
        if not isinstance(body, dict):
            problems.add(path, "must be a mapping with a 'type' key")
            continue
        kind = body.get("type")
        if kind not in SINK_TYPES:
            at = (*path, "type") if "type" in body else path
            problems.add(at, f"'type' must be one of {', '.join(SINK_TYPES)}, got {kind!r}")
            continue
        options = fill_dataclass(
            SINK_TYPES[kind], body, path, problems, env=env, ignore=frozenset({"type", "delivery"})
        )
        policy = _policy(body.get("delivery"), (*path, "delivery"), defaults, problems)
        if options is not None:
            specs[name] = SinkSpec(name, kind, options, policy)
    return specs


def _routes(data: Any, sink_names: set[str], groups: Mapping[str, Any], problems: Problems) -> tuple[Route, ...]:
    if not isinstance(data, list) or not data:
        problems.add(("routes",), "must be a list of routes, with at least one")
        return ()
    routes = []
    for index, body in enumerate(data):
        path: KeyPath = ("routes", index)
        route = fill_dataclass(Route, body, path, problems)
        if isinstance(body, dict):  # references are checked even when another key of the route is wrong
            _check_references(body.get("sinks"), (*path, "sinks"), sink_names, "sink", "", problems)
            _check_references(body.get("user_groups"), (*path, "user_groups"), set(groups), "group", " under 'groups'",
                              problems)  # fmt: skip
        if route is not None:
            routes.append(dataclasses.replace(route, name=route.name or f"route-{index}"))
    return tuple(routes)


def _check_references(names: Any, path: KeyPath, known: set[str], what: str, where: str, problems: Problems) -> None:
    if not isinstance(names, list):
        return
    for i, name in enumerate(names):
        if isinstance(name, str) and name not in known:
            defined = f" (defined: {', '.join(sorted(known))})" if known and what == "sink" else ""
            problems.add((*path, i), f"no {what} named {name!r}{where}{defined}")


def load_routes(source: str | Path | Mapping[str, Any], *, env: Mapping[str, str] | None = None) -> RoutesConfig:
    """Parse and validate a routes file (path or YAML text) or mapping; ConfigError lists every problem."""
    doc = load_document(source)
    problems = Problems(doc)
    data = _top_level(doc, problems)
    groups = _groups(data.get("groups"), problems)
    defaults_doc = data.get("defaults") or {}
    if not isinstance(defaults_doc, dict):
        problems.add(("defaults",), "must be a mapping")
        defaults_doc = {}
    reject_unknown(defaults_doc, ("delivery",), ("defaults",), problems)
    defaults = _policy(defaults_doc.get("delivery"), ("defaults", "delivery"), DeliveryPolicy(), problems)
    sinks = _sinks(data.get("sinks"), defaults, problems, env)
    declared = set(data.get("sinks") or {}) if isinstance(data.get("sinks"), dict) else set()
    routes = _routes(data.get("routes"), declared, groups, problems)
    worker = fill_dataclass(WorkerOptions, data.get("worker") or {}, ("worker",), problems) or WorkerOptions()
    problems.raise_if_any()
    unused = sorted(set(sinks) - {name for route in routes for name in route.sinks})
    if unused:
        log.warning("%s: sink(s) %s are defined but no route uses them", doc.source, ", ".join(unused))
    return RoutesConfig(sinks=sinks, routes=routes, groups=groups, worker=worker, source=doc.source)


# --- building sinks -----------------------------------------------------------------------------------


def build_sinks(config: RoutesConfig, ctx: BuildContext) -> dict[str, Sink]:
    """One :class:`~touchstone.sinks.base.Sink` per configured sink, sharing the context's store and metrics."""
    return {name: spec.options.build(name, spec.policy, ctx) for name, spec in config.sinks.items()}
