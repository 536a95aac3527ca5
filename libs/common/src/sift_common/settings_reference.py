"""The configuration reference, generated from the settings models: every `SIFT_*` variable
with its default, type, constraints and meaning (the field's description), grouped per service;
a variable of a shared fragment (sift_common.settings) is listed once, with the services that
read it. Defaults are the models', never this machine's environment.
"""

import inspect
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic.fields import FieldInfo

from sift_common.settings import ENV_PREFIX, SiftSettings

# A description may name its own variable ("SIFT_X: meaning", "meaning (SIFT_X)."); the table
# names it already.
_OWN_NAME = re.compile(r"^SIFT_[A-Z0-9_]+(?::\s*|$)|\s*\(SIFT_[A-Z0-9_]+\)")
_TYPE_NAMES = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    Path: "path",
    dict: "JSON object",
    list: "JSON array",
}
_BOUNDS = (
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Ge, "ge", "≥"),
    (annotated_types.Lt, "lt", "<"),
    (annotated_types.Le, "le", "≤"),
    (annotated_types.MinLen, "min_length", "length ≥"),
    (annotated_types.MaxLen, "max_length", "length ≤"),
)


@dataclass(frozen=True)
class Variable:
    """One `SIFT_*` variable as the reference shows it."""

    name: str
    default: str
    kind: str
    meaning: str
    declared_by: type[SiftSettings]


def variables(settings_class: type[SiftSettings], root: Path) -> list[Variable]:
    """Every variable `settings_class` reads, in field order; paths shown relative to `root`."""
    return [
        Variable(
            name=env_name(name, field),
            default=render_default(field.get_default(call_default_factory=True), root),
            kind=render_kind(field),
            meaning=meaning(field),
            declared_by=declared_by(settings_class, name),
        )
        for name, field in settings_class.model_fields.items()
    ]


def env_name(name: str, field: FieldInfo) -> str:
    alias = field.validation_alias
    return (alias if isinstance(alias, str) else f"{ENV_PREFIX}{name}").upper()


def declared_by(settings_class: type[SiftSettings], field_name: str) -> type[SiftSettings]:
    """The class in `settings_class`'s MRO that declares `field_name`."""
    for cls in settings_class.__mro__:
        if field_name in inspect.get_annotations(cls):
            assert issubclass(cls, SiftSettings)
            return cls
    raise LookupError(f"{settings_class.__name__}.{field_name} is declared nowhere")


def meaning(field: FieldInfo) -> str:
    """The field's description without its own variable name, as a sentence; '' if none."""
    text = _OWN_NAME.sub("", " ".join((field.description or "").split())).strip(" :")
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?", ")")) else f"{text}."


def undescribed(settings_classes: Mapping[str, type[SiftSettings]]) -> list[str]:
    """Variables whose field has no description worth the name."""
    return sorted(
        {
            env_name(name, field)
            for settings_class in settings_classes.values()
            for name, field in settings_class.model_fields.items()
            if not meaning(field)
        }
    )


def render_kind(field: FieldInfo) -> str:
    """'integer (≥ 1, ≤ 65535)', 'string, optional', 'one of `a`, `b`'."""
    kind = type_name(field.annotation)
    bounds = [
        f"{symbol} {_number(getattr(item, attribute))}"
        for item in field.metadata
        for cls, attribute, symbol in _BOUNDS
        if isinstance(item, cls)
    ]
    bounds += [
        f"pattern `{item.pattern}`" for item in field.metadata if getattr(item, "pattern", None)
    ]
    return f"{kind} ({', '.join(bounds)})" if bounds else kind


def type_name(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(f"`{value}`" for value in args)
    if origin in (Union, UnionType):
        present = [arg for arg in args if arg is not NoneType]
        optional = ", optional" if len(present) < len(args) else ""
        return " or ".join(type_name(arg) for arg in present) + optional
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "one of " + ", ".join(f"`{member.value}`" for member in annotation)
    base = origin or annotation
    if base in _TYPE_NAMES:
        return _TYPE_NAMES[base]
    name = getattr(base, "__name__", str(base))
    return {"AmqpDsn": "AMQP URL", "RedisDsn": "Redis URL", "HttpUrl": "HTTP URL"}.get(name, name)


def render_default(value: Any, root: Path) -> str:
    if value is None:
        return "unset"
    if value == "":
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, Path):
        return f"`{_relative(value, root)}`"
    if isinstance(value, dict | list | tuple):
        return f"`{json.dumps(value, ensure_ascii=False)}`"
    if isinstance(value, float):
        return f"`{_number(value)}`"
    return f"`{value}`"


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def reference_section(services: Mapping[str, type[SiftSettings]], root: Path) -> str:
    """The generated part of docs/configuration.md: the shared variables once, then each
    service's own, in the order of `services` (service name → its settings class)."""
    found = {service: variables(cls, root) for service, cls in services.items()}
    shared: dict[str, tuple[Variable, list[str]]] = {}
    for service, listed in found.items():
        for variable in listed:
            if variable.declared_by is not services[service]:
                shared.setdefault(variable.name, (variable, []))[1].append(service)
    parts = ["## Shared", _shared_table(shared)]
    for service, listed in found.items():
        cls = services[service]
        own = [variable for variable in listed if variable.declared_by is cls]
        also = [f"`{variable.name}`" for variable in listed if variable.declared_by is not cls]
        parts += [f"## {service}", f"`{cls.__module__}.{cls.__name__}`."]
        if also:
            parts[-1] += f" Shared variables it reads too: {', '.join(also)}."
        parts.append(_table(own))
    return "\n\n".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _shared_table(shared: Mapping[str, tuple[Variable, list[str]]]) -> str:
    rows = [
        "| variable | default | type | read by | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, (variable, readers) in sorted(shared.items()):
        cells = (f"`{name}`", variable.default, variable.kind, ", ".join(readers), variable.meaning)
        rows.append("| " + " | ".join(map(_cell, cells)) + " |")
    return "\n".join(rows)


def _table(listed: list[Variable]) -> str:
    if not listed:
        return "No variables of its own."
    rows = ["| variable | default | type | meaning |", "| --- | --- | --- | --- |"]
    for variable in listed:
        cells = (f"`{variable.name}`", variable.default, variable.kind, variable.meaning)
        rows.append("| " + " | ".join(map(_cell, cells)) + " |")
    return "\n".join(rows)
