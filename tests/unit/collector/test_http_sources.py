"""Feed and JSON API polls over httpx's MockTransport: conditional requests and HTTP errors."""

import json
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from sift_collector.sources.base import Cursor, SourceError
from sift_collector.sources.config import FeedSourceConfig, JsonApiSourceConfig
from sift_collector.sources.feed import FeedSource
from sift_collector.sources.json_api import JsonApiSource
from tests.unit.collector.test_source_parsing import RSS

Handler = Callable[[httpx.Request], httpx.Response]


def _client(handler: Handler, seen: list[httpx.Request]) -> httpx.AsyncClient:
    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    return httpx.AsyncClient(transport=httpx.MockTransport(record))


FEED = FeedSourceConfig.model_validate(
    {"name": "wire", "type": "rss", "url": "https://wire.example/rss", "max_bytes": 4096}
)
API = JsonApiSourceConfig.model_validate(
    {
        "name": "api",
        "type": "json_api",
        "url": "https://api.example/items?lang=en",
        "headers": {"Authorization": "Bearer t"},
        "since_param": "since",
        "fields": {"body": "$.text", "external_id": "$.id", "published_at": "$.at"},
    }
)


async def test_a_first_poll_is_unconditional_and_stores_the_validators() -> None:
    seen: list[httpx.Request] = []
    headers = {"ETag": '"v1"', "Last-Modified": "Mon, 06 Jan 2025 10:00:00 GMT"}
    async with _client(lambda _: httpx.Response(200, content=RSS, headers=headers), seen) as c:
        poll = await FeedSource(FEED, c).poll(Cursor())
    assert "if-none-match" not in seen[0].headers
    assert len(poll.documents) == 2
    assert (poll.next_cursor.etag, poll.next_cursor.last_modified) == (
        '"v1"',
        "Mon, 06 Jan 2025 10:00:00 GMT",
    )
    assert not poll.not_modified


async def test_a_304_yields_nothing_and_keeps_the_cursor() -> None:
    seen: list[httpx.Request] = []
    cursor = Cursor(etag='"v1"', last_modified="Mon, 06 Jan 2025 10:00:00 GMT")
    async with _client(lambda _: httpx.Response(304), seen) as client:
        poll = await FeedSource(FEED, client).poll(cursor)
    assert seen[0].headers["if-none-match"] == '"v1"'
    assert seen[0].headers["if-modified-since"] == "Mon, 06 Jan 2025 10:00:00 GMT"
    assert (poll.documents, poll.next_cursor, poll.not_modified) == ([], cursor, True)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (httpx.Response(500), "HTTP 500"),
        (httpx.Response(404), "HTTP 404"),
        (httpx.Response(200, content=b"x" * 5000), "larger than 4096 bytes"),
    ],
)
async def test_http_failures_are_source_errors(response: httpx.Response, expected: str) -> None:
    async with _client(lambda _: response, []) as client:
        with pytest.raises(SourceError, match=expected):
            await FeedSource(FEED, client).poll(Cursor())


async def test_a_network_error_is_a_source_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with _client(refuse, []) as client:
        with pytest.raises(SourceError, match="refused"):
            await FeedSource(FEED, client).poll(Cursor())


async def test_json_api_sends_headers_and_the_since_parameter() -> None:
    seen: list[httpx.Request] = []
    items = [{"id": 1, "text": "one", "at": "2025-01-06T10:00:00Z"}, {"id": 2, "text": "two"}]
    body = json.dumps(items).encode()
    async with _client(lambda _: httpx.Response(200, content=body), seen) as client:
        first = await JsonApiSource(API, client).poll(Cursor())
        second = await JsonApiSource(API, client).poll(first.next_cursor)
    assert seen[0].headers["authorization"] == "Bearer t"
    assert dict(seen[0].url.params) == {"lang": "en"}
    assert dict(seen[1].url.params) == {"lang": "en", "since": "2025-01-06T10:00:00+00:00"}
    assert [d.external_id for d in first.documents] == ["1", "2"]
    assert second.documents == []  # the server ignored `since`: the cursor's keys still hold
    assert first.next_cursor.latest_published_at == datetime(2025, 1, 6, 10, tzinfo=UTC)
