"""What every source is: `poll(cursor) -> Poll`, and the cursor that makes a poll incremental.

A `Cursor` is what a source remembers between polls (persisted by the scheduler only after the
poll's documents were published and confirmed): the HTTP validators for a conditional request
(`etag`, `last_modified`) and, for items the server sends anyway, the keys of the items already
seen (bounded) plus the newest `published_at` seen (dates in the future do not count). An item
is new when its key is not among the seen keys and it is not more than `WATERMARK_GRACE` older
than that watermark (so an item that fell out of the bounded key list is not taken again, while
one published a little late still is); an item without a date is judged by its key alone.
Content dedup in the publisher stays the last line of defence.
"""

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict

from sift_common.contracts import IncomingDocument
from sift_common.errors import TransientError

MAX_SEEN_KEYS = 1_000
WATERMARK_GRACE = timedelta(hours=24)


class SourceError(TransientError):
    """A poll failed (unreachable, an HTTP error status, an unreadable response or folder)."""


class Cursor(BaseModel):
    """A source's position, JSON-serialisable; the empty cursor means 'never polled'."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    etag: str | None = None
    last_modified: str | None = None
    seen_keys: tuple[str, ...] = ()
    latest_published_at: AwareDatetime | None = None


@dataclass(frozen=True)
class Invalid:
    """A record the source could not turn into an IncomingDocument (never published)."""

    ref: str
    reason: str


@dataclass(frozen=True)
class Rejection:
    """A document normalisation refused; handed back to `after_publish`."""

    document: IncomingDocument
    reason: str


AfterPublish = Callable[[Sequence[Rejection]], Awaitable[None]]


@dataclass
class Poll:
    """The outcome of one poll. `after_publish` runs only once every document is confirmed."""

    documents: list[IncomingDocument]
    next_cursor: Cursor
    after_publish: AfterPublish | None = None
    invalid: list[Invalid] = field(default_factory=list)
    not_modified: bool = False


class Source(Protocol):
    @property
    def name(self) -> str: ...

    async def poll(self, cursor: Cursor) -> Poll: ...


def item_key(document: IncomingDocument) -> str:
    """How a source recognises an item it has seen: its id, else its URL, else its content."""
    if document.external_id:
        return f"id:{document.external_id}"
    if document.url:
        return f"url:{document.url}"
    return "sha:" + hashlib.sha256(document.body.encode()).hexdigest()[:32]


def _is_new(document: IncomingDocument, key: str, seen: set[str], since: datetime | None) -> bool:
    if key in seen:
        return False
    if since is None or document.published_at is None:
        return True
    return document.published_at >= since - WATERMARK_GRACE


def select_new(
    cursor: Cursor, documents: Sequence[IncomingDocument], now: datetime | None = None
) -> tuple[list[IncomingDocument], Cursor]:
    """The documents not seen before (one per key), and the cursor that remembers all of them."""
    now = now or datetime.now(UTC)
    seen = set(cursor.seen_keys)
    since = cursor.latest_published_at
    fresh: list[IncomingDocument] = []
    current: list[str] = []
    for document in documents:
        key = item_key(document)
        if _is_new(document, key, seen, since):
            fresh.append(document)
        seen.add(key)
        current.append(key)
    # What the source shows now first, then older keys, so the bound forgets the oldest.
    ordered = list(dict.fromkeys([*current, *cursor.seen_keys]))[:MAX_SEEN_KEYS]
    dates = [d.published_at for d in documents if d.published_at and d.published_at <= now]
    latest = max([*dates, *([since] if since else [])], default=None)
    return fresh, cursor.model_copy(
        update={"seen_keys": tuple(ordered), "latest_published_at": latest}
    )
