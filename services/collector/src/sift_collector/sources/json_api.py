"""JSON HTTP APIs: a conditional GET, then JSONPath mapping of each item to a document.

`items` selects the items in the response; each field of `fields` is a JSONPath evaluated on
one item, its first match taken. Dates may be ISO 8601 (a naive one is taken as UTC), RFC 2822
or Unix seconds. With `since_param`, the newest date seen is sent so the API can filter too.
"""

import asyncio
import json
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import jsonpath
from pydantic import ValidationError

from sift_collector.sources.base import Cursor, Invalid, Poll, SourceError
from sift_collector.sources.config import FieldMapping, JsonApiSourceConfig
from sift_collector.sources.http import conditional_get, fetched_poll
from sift_common.contracts import IncomingDocument

_SCALAR_FIELDS = ("title", "url", "external_id", "language")


class ItemError(ValueError):
    """One item of the response cannot be mapped to a document."""


def _first(expression: str | None, item: Any) -> Any:
    if expression is None:
        return None
    matches = jsonpath.findall(expression, item)
    return matches[0] if matches else None


def _text(field: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, dict | list):
        raise ItemError(f"{field}: expected a scalar, got {type(value).__name__}")
    return str(value)


def parse_date(value: Any) -> datetime | None:
    """ISO 8601, RFC 2822 or Unix seconds, as an aware datetime (naive taken as UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if not isinstance(value, str):
        raise ItemError(f"published_at: expected a date, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError) as exc:
            raise ItemError(f"published_at: not a date: {value[:100]!r}") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def map_item(item: Any, config: JsonApiSourceConfig) -> IncomingDocument:
    """One API item as an IncomingDocument; ItemError (or ValidationError) when it cannot be."""
    fields: FieldMapping = config.fields
    values = {name: _text(name, _first(getattr(fields, name), item)) for name in _SCALAR_FIELDS}
    metadata = {
        key: text
        for key, expression in fields.metadata.items()
        if (text := _text(f"metadata.{key}", _first(expression, item))) is not None
    }
    body = _text("body", _first(fields.body, item))
    if body is None:
        raise ItemError(f"body: nothing at {fields.body}")
    return IncomingDocument(
        source=config.name,
        body=body,
        content_type=config.content_type,
        kind=config.kind,
        language=values.pop("language") or config.language,
        published_at=parse_date(_first(fields.published_at, item)),
        metadata=metadata,
        external_id=values.get("external_id"),
        url=values.get("url"),
        title=values.get("title"),
    )


def parse_items(
    body: bytes, config: JsonApiSourceConfig
) -> tuple[list[IncomingDocument], list[Invalid]]:
    """Every item of a response, mapped; items that cannot be mapped are reported, not raised."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise SourceError(f"{config.name}: response is not JSON: {exc}") from exc
    documents: list[IncomingDocument] = []
    invalid: list[Invalid] = []
    for position, item in enumerate(jsonpath.findall(config.items, data)):
        try:
            documents.append(map_item(item, config))
        except (ItemError, ValidationError) as exc:
            reason = str(exc.errors()[0]["msg"]) if isinstance(exc, ValidationError) else str(exc)
            invalid.append(Invalid(f"item #{position + 1}", reason))
    return documents, invalid


class JsonApiSource:
    def __init__(self, config: JsonApiSourceConfig, client: httpx.AsyncClient) -> None:
        self.config = config
        self._client = client

    @property
    def name(self) -> str:
        return self.config.name

    def _params(self, cursor: Cursor) -> dict[str, str] | None:
        if self.config.since_param is None or cursor.latest_published_at is None:
            return None
        return {self.config.since_param: cursor.latest_published_at.isoformat()}

    async def poll(self, cursor: Cursor) -> Poll:
        fetched = await conditional_get(
            self._client,
            str(self.config.url),
            cursor=cursor,
            headers=self.config.headers,
            timeout_s=self.config.timeout_s,
            max_bytes=self.config.max_bytes,
            params=self._params(cursor),
        )
        if fetched is None:
            return Poll([], cursor, not_modified=True)
        # JSON decoding and JSONPath over a response of up to `max_bytes`: off the loop.
        documents, invalid = await asyncio.to_thread(parse_items, fetched.body, self.config)
        return fetched_poll(cursor, fetched, documents, invalid)
