"""The sources YAML: which sources the collector polls, how often, and how to read them.

    tiers: {hot: 60, normal: 900, cold: 21600}     # optional; seconds between polls per tier
    sources:
      - {name: acme-news, type: rss, url: "${ACME_URL:-https://acme.example/feed}", tier: hot}
      - name: reviews-api
        type: json_api
        url: https://api.example/reviews
        items: $.data[*]
        fields: {body: $.text, title: $.headline, external_id: $.id, published_at: $.date}
      - {name: drops, type: directory, path: /var/lib/sift/drop, interval_s: 30}

A source's interval is its explicit `interval_s`, else its tier's. Values may use `${VAR}` or
`${VAR:-default}`. Every validation error names the source and the field.
"""

from pathlib import Path
from typing import Annotated, Any, Literal

import jsonpath
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from sift_common import envsubst
from sift_common.contracts import DocumentKind, Priority
from sift_common.errors import ConfigError

Tier = Literal["hot", "normal", "cold"]
DEFAULT_TIERS: dict[Tier, float] = {"hot": 60.0, "normal": 900.0, "cold": 6 * 3600.0}


class SourcesConfigError(ConfigError):
    """The sources file is missing, unreadable or invalid; the message names source and field."""


class _Source(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    tier: Tier = "normal"
    interval_s: float | None = Field(default=None, gt=0, description="Overrides the tier.")
    jitter: float = Field(default=0.1, ge=0, lt=1, description="± fraction of the interval.")
    kind: DocumentKind = "generic"
    language: str | None = Field(default=None, min_length=2, max_length=16)
    priority: Priority = "normal"


class _HttpSource(_Source):
    url: HttpUrl
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=30.0, gt=0)
    max_bytes: int = Field(default=20 * 1024**2, gt=0, description="Largest response read.")


class FeedSourceConfig(_HttpSource):
    """An RSS or Atom feed (`feed`: either; feedparser tells them apart)."""

    type: Literal["rss", "atom", "feed"]


def _compiles(expression: str) -> str:
    try:
        jsonpath.compile(expression)
    except jsonpath.JSONPathError as exc:
        raise ValueError(f"invalid JSONPath {expression!r}: {exc}") from exc
    return expression


JsonPathExpr = Annotated[str, Field(min_length=1)]


class FieldMapping(BaseModel):
    """JSONPath expressions, relative to one item, for the `IncomingDocument` fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    body: JsonPathExpr
    title: JsonPathExpr | None = None
    url: JsonPathExpr | None = None
    external_id: JsonPathExpr | None = None
    published_at: JsonPathExpr | None = None
    language: JsonPathExpr | None = None
    metadata: dict[str, JsonPathExpr] = Field(default_factory=dict)

    @field_validator("body", "title", "url", "external_id", "published_at", "language")
    @classmethod
    def _valid_path(cls, expression: str | None) -> str | None:
        return None if expression is None else _compiles(expression)

    @field_validator("metadata")
    @classmethod
    def _valid_paths(cls, mapping: dict[str, str]) -> dict[str, str]:
        return {key: _compiles(expression) for key, expression in mapping.items()}


class JsonApiSourceConfig(_HttpSource):
    """A JSON HTTP API: `items` selects the list of items, `fields` maps each one."""

    type: Literal["json_api"]
    items: JsonPathExpr = "$[*]"
    fields: FieldMapping
    content_type: Literal["text", "html"] = "text"
    since_param: str | None = Field(
        default=None,
        description="Query parameter sent with the newest published_at seen (ISO 8601).",
    )

    @field_validator("items")
    @classmethod
    def _valid_items(cls, expression: str) -> str:
        return _compiles(expression)


class DirectorySourceConfig(_Source):
    """A drop folder of `*.jsonl` / `*.json` files of IncomingDocument records."""

    type: Literal["directory"]
    path: Path
    max_files_per_poll: int = Field(default=50, gt=0)


SourceConfig = Annotated[
    FeedSourceConfig | JsonApiSourceConfig | DirectorySourceConfig, Field(discriminator="type")
]
_SOURCE: TypeAdapter[SourceConfig] = TypeAdapter(SourceConfig)


def expand_env(text: str, environ: dict[str, str] | None = None) -> str:
    """`${VAR}` / `${VAR:-default}` expanded; an unset variable is a SourcesConfigError."""
    try:
        return envsubst.expand_env(text, environ)
    except envsubst.MissingVariableError as exc:
        raise SourcesConfigError(
            f"sources file uses ${{{exc.name}}} but {exc.name} is not set"
        ) from None


def _describe(name: str, error: Any) -> str:
    # A discriminated union puts the tag first in the location; the reader wrote no such key.
    location = [str(part) for part in error["loc"]]
    if location and location[0] in ("rss", "atom", "feed", "json_api", "directory"):
        location = location[1:]
    return f"source {name!r}: {'.'.join(location) or '(source)'}: {error['msg']}"


def parse_source(raw: Any, position: int) -> SourceConfig:
    """Validate one source entry; a `SourcesConfigError` names the source and each bad field."""
    name = raw.get("name") if isinstance(raw, dict) else None
    label = str(name) if name else f"#{position + 1}"
    try:
        return _SOURCE.validate_python(raw)
    except ValidationError as exc:
        problems = [_describe(label, error) for error in exc.errors()]
        raise SourcesConfigError("; ".join(problems)) from exc


def _parse_tiers(raw: Any) -> dict[Tier, float]:
    tiers = dict(DEFAULT_TIERS)
    if raw is None:
        return tiers
    if not isinstance(raw, dict) or not set(raw) <= set(DEFAULT_TIERS):
        raise SourcesConfigError(f"tiers: expected a mapping of {sorted(DEFAULT_TIERS)} to seconds")
    for tier, seconds in raw.items():
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            raise SourcesConfigError(f"tiers.{tier}: expected a positive number of seconds")
        tiers[tier] = float(seconds)
    return tiers


def parse_sources(document: Any) -> list[SourceConfig]:
    """Validate a parsed sources document; each source gets its effective `interval_s`."""
    if not isinstance(document, dict) or not isinstance(document.get("sources"), list):
        raise SourcesConfigError("the sources file needs a top-level `sources:` list")
    unknown = set(document) - {"sources", "tiers"}
    if unknown:
        raise SourcesConfigError(f"unknown top-level keys: {sorted(unknown)}")
    tiers = _parse_tiers(document.get("tiers"))
    sources = [parse_source(raw, i) for i, raw in enumerate(document["sources"])]
    names = [source.name for source in sources]
    if repeated := sorted({name for name in names if names.count(name) > 1}):
        raise SourcesConfigError(f"source names must be unique; repeated: {repeated}")
    return [
        source
        if source.interval_s is not None
        else source.model_copy(update={"interval_s": tiers[source.tier]})
        for source in sources
    ]


def load_sources(path: Path) -> list[SourceConfig]:
    try:
        document = yaml.safe_load(expand_env(path.read_text()))
    except OSError as exc:
        raise SourcesConfigError(f"cannot read sources file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise SourcesConfigError(f"sources file {path} is not valid YAML: {exc}") from exc
    try:
        return parse_sources(document)
    except SourcesConfigError as exc:
        raise SourcesConfigError(f"sources file {path}: {exc}") from exc
