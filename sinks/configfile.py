"""Configuration documents with positions: YAML (or a plain dict) into small dataclasses.

Every problem is reported with where it is — ``routes.yaml:12:5: sinks.pager.routing_kye:
unknown key (did you mean routing_key_file?)`` — and all problems of a document are reported
together in one :class:`~touchstone.errors.ConfigError`.

Dataclass fields are filled by type: ``str``, ``int``, ``float``, ``bool``, ``Level`` (by
name), ``tuple[str, ...]`` (a list), ``dict[str, str]``, ``X | None``, and ``Secret``. A secret
is never written in the document: ``<field>_env: VAR`` or ``<field>_file: PATH`` supplies it.
Field metadata ``choices`` restricts a string.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from touchstone.contracts import Level
from touchstone.errors import ConfigError, ContractError
from touchstone.sinks.secrets import Secret

__all__ = [
    "KeyPath",
    "Document",
    "Problems",
    "dotted",
    "load_document",
    "fill_dataclass",
    "dataclass_keys",
    "reject_unknown",
]

KeyPath = tuple[str | int, ...]
T = TypeVar("T")


def dotted(path: KeyPath) -> str:
    """``("routes", 0, "min_level")`` → ``routes[0].min_level``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(top level)"


@dataclasses.dataclass
class Document:
    """A parsed document and where each of its values sits in the source."""

    data: Any
    source: str
    positions: dict[KeyPath, tuple[int, int]] = dataclasses.field(default_factory=dict)


class Problems:
    """Collects positioned problems; :meth:`raise_if_any` raises them all in one ConfigError."""

    def __init__(self, document: Document) -> None:
        self.document = document
        self.items: list[tuple[tuple[int, int], str]] = []

    def add(self, path: KeyPath, message: str) -> None:
        position = self._position(path)
        where = self.document.source
        if position != (0, 0):
            where += f":{position[0]}:{position[1]}"
        self.items.append((position, f"{where}: {dotted(path)}: {message}"))

    def _position(self, path: KeyPath) -> tuple[int, int]:
        # The nearest enclosing value with a known position (a missing key points at its parent).
        for end in range(len(path), -1, -1):
            found = self.document.positions.get(path[:end])
            if found is not None:
                return found
        return (0, 0)

    def raise_if_any(self) -> None:
        if self.items:
            lines = [message for _, message in sorted(self.items, key=lambda item: item[0])]
            raise ConfigError("\n".join(lines) if len(lines) > 1 else lines[0])


# --- YAML with positions --------------------------------------------------------------------------


def _mark(mark: yaml.Mark | None) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)


def _convert(node: yaml.Node, path: KeyPath, doc: Document, problems: Problems, constructor: yaml.SafeLoader) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                doc.positions[(*path, "?")] = _mark(key_node.start_mark)
                problems.add((*path, "?"), "keys must be strings")
                continue
            child = (*path, key)
            doc.positions[child] = _mark(key_node.start_mark)
            if key in out:
                problems.add(child, "duplicate key")
                continue
            out[key] = _convert(value_node, child, doc, problems, constructor)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            doc.positions[(*path, index)] = _mark(item.start_mark)
            items.append(_convert(item, (*path, index), doc, problems, constructor))
        return items
    return constructor.construct_object(node)


def load_document(source: str | Path | Mapping[str, Any], *, name: str | None = None) -> Document:
    """A YAML file (path), YAML text (a str holding a newline) or a mapping, with positions."""
    if isinstance(source, Mapping):
        return Document(dict(source), name or "routes config")
    if isinstance(source, Path) or "\n" not in source:
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read routes file {path}: {exc.strerror or exc}") from None
        label = name or str(path)
    else:
        text, label = source, name or "routes config"
    doc = Document(None, label)
    problems = Problems(doc)
    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            doc.positions[()] = _mark(root.start_mark) if root is not None else (1, 1)
            doc.data = _convert(root, (), doc, problems, loader) if root is not None else {}
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{label}:{mark.line + 1}:{mark.column + 1}" if mark is not None else label
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    problems.raise_if_any()
    return doc


# --- dataclasses from mappings -----------------------------------------------------------------------

_SECRET_SUFFIXES = ("_env", "_file")


def _strip_optional(kind: Any) -> tuple[Any, bool]:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return kind, False


def _type_name(kind: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", Level: "a level name"}
    if kind in names:
        return names[kind]
    if typing.get_origin(kind) is tuple:
        return "a list of strings"
    if typing.get_origin(kind) is dict:
        return "a mapping of strings"
    return getattr(kind, "__name__", str(kind))


def _coerce(kind: Any, value: Any, choices: tuple[str, ...] | None) -> Any:
    """The value as ``kind``; raises ValueError with a short reason."""
    wrong = ValueError(f"must be {_type_name(kind)}, got {type(value).__name__} {value!r}")
    if kind is bool:
        if not isinstance(value, bool):
            raise wrong
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong
        return float(value)
    if kind is str:
        if not isinstance(value, str) or not value:
            raise wrong if not isinstance(value, str) else ValueError("must not be empty")
        if choices is not None and value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {value!r}")
        return value
    if kind is Level:
        if not isinstance(value, str):
            raise wrong
        try:
            return Level.parse(value)
        except ContractError:
            raise ValueError(f"must be one of {', '.join(level.label for level in Level)}, got {value!r}") from None
    if typing.get_origin(kind) is tuple:
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            raise wrong
        if choices is not None:
            bad = [item for item in value if item not in choices]
            if bad:
                raise ValueError(f"values must be among {', '.join(choices)}, got {bad}")
        return tuple(value)
    if typing.get_origin(kind) is dict:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise wrong
        return dict(value)
    raise TypeError(f"unsupported field type {kind!r}")  # a programming error in a config class


def dataclass_keys(cls: type) -> list[str]:
    """The keys a document may use for ``cls``: plain fields, and ``_env``/``_file`` for secrets."""
    hints = typing.get_type_hints(cls)
    keys: list[str] = []
    for f in dataclasses.fields(cls):
        kind, _ = _strip_optional(hints[f.name])
        keys.extend([f.name + s for s in _SECRET_SUFFIXES] if kind is Secret else [f.name])
    return keys


def _secret(
    field: str, doc: Mapping[str, Any], path: KeyPath, problems: Problems, env: Mapping[str, str] | None
) -> Any:
    given = [field + s for s in _SECRET_SUFFIXES if field + s in doc]
    if field in doc:
        problems.add((*path, field), f"secrets are not written in the routes file; use {field}_env or {field}_file")
        return None
    if len(given) > 1:
        problems.add((*path, given[1]), f"give one of {field}_env and {field}_file, not both")
        return None
    if not given:
        return dataclasses.MISSING
    key = given[0]
    value = doc[key]
    if not isinstance(value, str) or not value:
        problems.add((*path, key), "must be a non-empty string")
        return None
    try:
        return Secret.from_env(value, env) if key.endswith("_env") else Secret.from_file(value)
    except ConfigError as exc:
        problems.add((*path, key), str(exc))
        return None


def reject_unknown(
    doc: Mapping[str, Any],
    allowed: list[str] | tuple[str, ...],
    path: KeyPath,
    problems: Problems,
    *,
    also: frozenset[str] | set[str] = frozenset(),
) -> None:
    """Add an "unknown key" problem, with the closest known key, for each key not in ``allowed``."""
    for key in doc:
        if key in allowed or key in also:
            continue
        close = difflib.get_close_matches(str(key), list(allowed), n=1)
        hint = f" (did you mean {close[0]}?)" if close else f"; known keys: {', '.join(allowed)}"
        problems.add((*path, key), f"unknown key{hint}")


def fill_dataclass(
    cls: type[T],
    doc: Any,
    path: KeyPath,
    problems: Problems,
    *,
    env: Mapping[str, str] | None = None,
    ignore: frozenset[str] = frozenset(),
) -> T | None:
    """An instance of ``cls`` from mapping ``doc``, or None after adding its problems."""
    if not isinstance(doc, dict):
        problems.add(path, f"must be a mapping, got {type(doc).__name__}")
        return None
    hints = typing.get_type_hints(cls)
    secret_fields = {f.name for f in dataclasses.fields(cls) if _strip_optional(hints[f.name])[0] is Secret}
    # A literal secret is not "unknown": it gets its own message below.
    reject_unknown(doc, dataclass_keys(cls), path, problems, also=ignore | secret_fields)
    values: dict[str, Any] = {}
    before = len(problems.items)
    for f in dataclasses.fields(cls):
        kind, optional = _strip_optional(hints[f.name])
        if kind is Secret:
            value = _secret(f.name, doc, path, problems, env)
            if value is dataclasses.MISSING:
                if f.default is dataclasses.MISSING:
                    problems.add(path, f"missing {f.name}_env or {f.name}_file")
                continue
            values[f.name] = value
            continue
        if f.name not in doc:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                problems.add(path, f"missing required key {f.name!r}")
            continue
        raw = doc[f.name]
        if raw is None and optional:
            values[f.name] = None
            continue
        try:
            values[f.name] = _coerce(kind, raw, f.metadata.get("choices"))
        except ValueError as exc:
            problems.add((*path, f.name), str(exc))
    if len(problems.items) > before:
        return None
    try:
        return cls(**values)
    except ValueError as exc:  # the dataclass's own cross-field checks
        problems.add(path, str(exc))
        return None
