"""RSS and Atom feeds: a conditional GET with httpx, parsed by feedparser.

Each entry becomes an IncomingDocument: its id (else its link) as `external_id`, the link as
`url`, the full content (else the summary, else the title) as the HTML body, published (else
updated) as `published_at`. Only entries new to the cursor are returned.
"""

import asyncio
import calendar
from datetime import UTC, datetime
from typing import Any

import feedparser
import httpx
from pydantic import ValidationError

from sift_collector.sources.base import Cursor, Invalid, Poll, SourceError
from sift_collector.sources.config import FeedSourceConfig
from sift_collector.sources.http import conditional_get, fetched_poll
from sift_common.contracts import IncomingDocument


def _entry_time(entry: Any) -> datetime | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if parsed is None:
        return None
    return datetime.fromtimestamp(calendar.timegm(parsed), UTC)  # feedparser gives UTC


def _entry_body(entry: Any) -> tuple[str, str]:
    """The richest text the entry carries and whether it is HTML."""
    for detail in [*entry.get("content", []), entry.get("summary_detail")]:
        if detail and str(detail.get("value", "")).strip():
            kind = "html" if "html" in str(detail.get("type", "")) else "text"
            return str(detail["value"]), kind
    return str(entry.get("title", "")), "html"


def entry_document(entry: Any, config: FeedSourceConfig, feed_title: str) -> IncomingDocument:
    """One feed entry as an IncomingDocument; pydantic's ValidationError when it cannot be."""
    body, content_type = _entry_body(entry)
    metadata = {"feed": feed_title} if feed_title else {}
    if entry.get("author"):
        metadata["author"] = str(entry["author"])
    return IncomingDocument(
        source=config.name,
        external_id=entry.get("id") or entry.get("link") or None,
        url=entry.get("link") or None,
        title=entry.get("title") or None,
        body=body,
        content_type="html" if content_type == "html" else "text",
        kind=config.kind,
        language=config.language,
        published_at=_entry_time(entry),
        metadata=metadata,
    )


def parse_feed(
    body: bytes, content_type: str | None, config: FeedSourceConfig
) -> tuple[list[IncomingDocument], list[Invalid]]:
    """Every entry of a feed document, in feed order, and the entries that could not be read."""
    headers = {"content-type": content_type} if content_type else {}
    parsed = feedparser.parse(body, response_headers=headers)
    if parsed.bozo and not parsed.entries:
        raise SourceError(f"{config.name}: not a readable feed: {parsed.get('bozo_exception')!r}")
    feed_title = str(parsed.feed.get("title", ""))
    documents: list[IncomingDocument] = []
    invalid: list[Invalid] = []
    for position, entry in enumerate(parsed.entries):
        try:
            documents.append(entry_document(entry, config, feed_title))
        except ValidationError as exc:
            ref = str(entry.get("id") or entry.get("link") or f"entry #{position + 1}")
            invalid.append(Invalid(ref, str(exc.errors()[0]["msg"])))
    return documents, invalid


class FeedSource:
    def __init__(self, config: FeedSourceConfig, client: httpx.AsyncClient) -> None:
        self.config = config
        self._client = client

    @property
    def name(self) -> str:
        return self.config.name

    async def poll(self, cursor: Cursor) -> Poll:
        fetched = await conditional_get(
            self._client,
            str(self.config.url),
            cursor=cursor,
            headers=self.config.headers,
            timeout_s=self.config.timeout_s,
            max_bytes=self.config.max_bytes,
        )
        if fetched is None:
            return Poll([], cursor, not_modified=True)
        documents, invalid = await asyncio.to_thread(
            parse_feed, fetched.body, fetched.content_type, self.config
        )
        return fetched_poll(cursor, fetched, documents, invalid)
