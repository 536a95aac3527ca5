"""Scheduled sources against the real RabbitMQ and Redis, fed by a local test HTTP server.

RSS, Atom, a JSON API and a drop folder each produce the right documents on the analyzer's
queue; an unchanged second poll is a conditional request answered 304 and publishes nothing;
an article seen twice (two sources, one batch, two polls) is published once; a broker outage
(a FAKE publisher that raises) neither advances the cursor nor moves the drop file.
"""

import asyncio
import hashlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from sift_collector.dedup import Deduplicator
from sift_collector.publisher import BrokerUnavailableError, DocumentPublisher, PublishReport
from sift_collector.scheduler import Publishing, Scheduler
from sift_collector.sources.config import parse_sources
from sift_common.contracts import Document, DocumentCollected, Priority
from sift_common.messaging.broker import declare_topology, make_broker
from sift_common.messaging.topology import ANALYZER_DOCUMENTS, Topology
from tests.support.rabbit import delete_topology, drain

pytestmark = pytest.mark.integration

Source = dict[str, Any]  # one entry of the sources YAML


# --- a local HTTP server for feeds and APIs, with ETag / Last-Modified and a request log ---


@dataclass
class Resource:
    body: bytes
    content_type: str
    etag: str
    last_modified: str
    status: int = 200
    delay_s: float = 0.0


@dataclass(frozen=True)
class Seen:
    path: str
    at: float
    if_none_match: str | None
    if_modified_since: str | None
    status: int


@dataclass
class FeedServer:
    """Serves registered paths; answers 304 to a matching If-None-Match / If-Modified-Since."""

    base_url: str = ""
    resources: dict[str, Resource] = field(default_factory=dict)
    log: list[Seen] = field(default_factory=list)
    in_flight: Counter[str] = field(default_factory=Counter)
    most_in_flight: Counter[str] = field(default_factory=Counter)

    def serve(self, path: str, body: bytes, content_type: str, **options: Any) -> str:
        self.resources[path] = Resource(
            body,
            content_type,
            etag=f'"{hashlib.sha256(body).hexdigest()[:16]}"',
            last_modified=formatdate(time.time(), usegmt=True),
            **options,
        )
        return f"{self.base_url}{path}"

    def requests(self, path: str) -> list[Seen]:
        return [seen for seen in self.log if seen.path == path]

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path
        self.in_flight[path] += 1
        self.most_in_flight[path] = max(self.most_in_flight[path], self.in_flight[path])
        try:
            resource = self.resources[path]
            await asyncio.sleep(resource.delay_s)
            status = self._status(resource, request)
            self.log.append(
                Seen(
                    path,
                    time.monotonic(),
                    request.headers.get("If-None-Match"),
                    request.headers.get("If-Modified-Since"),
                    status,
                )
            )
            validators = {"ETag": resource.etag, "Last-Modified": resource.last_modified}
            if status == 304:
                return web.Response(status=304, headers=validators)
            if status != 200:
                return web.Response(status=status, text="failing on purpose")
            return web.Response(
                body=resource.body, content_type=resource.content_type, headers=validators
            )
        finally:
            self.in_flight[path] -= 1

    @staticmethod
    def _status(resource: Resource, request: web.Request) -> int:
        if resource.status != 200:
            return resource.status
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match is not None:
            return 304 if if_none_match == resource.etag else 200
        if request.headers.get("If-Modified-Since") == resource.last_modified:
            return 304
        return 200


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    feeds = FeedServer()
    app = web.Application()
    app.router.add_get("/{tail:.*}", feeds.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    feeds.base_url = f"http://{host}:{port}"
    yield feeds
    await runner.cleanup()


# --- feed documents and source entries ---

Item = tuple[str, str, str, str]  # id, title, link, html body


def rss(items: Sequence[Item]) -> bytes:
    entries = "".join(
        f"<item><guid>{i}</guid><title>{t}</title><link>{link}</link>"
        f"<description><![CDATA[{body}]]></description>"
        f"<pubDate>Mon, 06 Jan 2025 10:{n:02d}:00 GMT</pubDate></item>"
        for n, (i, t, link, body) in enumerate(items)
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>{entries}'
        "</channel></rss>"
    ).encode()


def atom(items: Sequence[Item]) -> bytes:
    entries = "".join(
        f'<entry><id>{i}</id><title>{t}</title><link href="{link}"/>'
        f"<updated>2025-01-06T11:{n:02d}:00Z</updated>"
        f'<content type="html"><![CDATA[{body}]]></content></entry>'
        for n, (i, t, link, body) in enumerate(items)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>Blog</title><id>urn:blog</id><updated>2025-01-06T11:00:00Z</updated>{entries}"
        "</feed>"
    ).encode()


ACME: Item = ("wire-1", "Acme beats", "https://wire.example/acme", "<p>Acme <b>rose</b> 4%.</p>")
LAUNCH: Item = ("urn:blog:1", "Launch day", "https://blog.example/launch", "<p>We shipped.</p>")
REVIEW = {"id": 7, "headline": "Great pasta", "text": "Would eat there again.", "by": "Ann"}
API_FIELDS = {"body": "$.text", "title": "$.headline", "external_id": "$.id"}


def rss_source(server: "FeedServer", name: str, items: Sequence[Item], **extra: Any) -> Source:
    url = server.serve(f"/{name}", rss(items), "application/rss+xml")
    return {"name": name, "type": "rss", "url": url, **extra}


def atom_source(server: "FeedServer", name: str, items: Sequence[Item], **extra: Any) -> Source:
    url = server.serve(f"/{name}", atom(items), "application/atom+xml")
    return {"name": name, "type": "atom", "url": url, **extra}


def api_source(server: "FeedServer", name: str, data: Any, **extra: Any) -> Source:
    url = server.serve(f"/{name}", json.dumps(data).encode(), "application/json")
    return {"name": name, "type": "json_api", "url": url, "fields": API_FIELDS, **extra}


def drop_source(path: Path, name: str = "drops") -> Source:
    return {"name": name, "type": "directory", "path": str(path)}


# --- the pipeline under test ---


@pytest.fixture
async def redis(redis_url: str, namespace: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    keys = [key async for key in client.scan_iter(match=f"{namespace}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def publisher(
    rabbit_url: str, namespace: str, redis: Redis
) -> AsyncIterator[DocumentPublisher]:
    topology = Topology(namespace)
    broker = make_broker(rabbit_url)
    await broker.connect()
    await declare_topology(rabbit_url, topology)
    dedup = Deduplicator(redis, window_s=3600, prefix=namespace)
    yield DocumentPublisher(broker, topology, dedup, confirm_timeout_s=10)
    await broker.stop()
    await delete_topology(rabbit_url, topology)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


MakeScheduler = Callable[..., Scheduler]


@pytest.fixture
def make_scheduler(
    redis: Redis, publisher: DocumentPublisher, http: httpx.AsyncClient, namespace: str
) -> MakeScheduler:
    """A scheduler on this test's namespace; sources as YAML-shaped dicts (interval ~0)."""

    def make(sources: list[Source], using: Publishing | None = None, **kw: Any) -> Scheduler:
        entries = [{"interval_s": 0.01, "jitter": 0, **source} for source in sources]
        return Scheduler(
            parse_sources({"sources": entries}),
            redis,
            using or publisher,
            key_prefix=namespace,
            http=http,
            **{"registry": CollectorRegistry(), **kw},
        )

    return make


async def collected(rabbit_url: str, namespace: str) -> list[Document]:
    queue = Topology(namespace).work_queue(ANALYZER_DOCUMENTS)
    messages = await drain(rabbit_url, queue)
    return [DocumentCollected.model_validate_json(m.body).document for m in messages]


def by_source(documents: list[Document]) -> dict[str, list[Document]]:
    grouped: dict[str, list[Document]] = {}
    for document in documents:
        grouped.setdefault(document.source, []).append(document)
    return grouped


# --- the tests ---


async def test_each_kind_of_source_produces_the_right_documents(
    server: FeedServer,
    make_scheduler: MakeScheduler,
    rabbit_url: str,
    namespace: str,
    tmp_path: Path,
) -> None:
    note = {"body": "Dropped note about Acme.", "external_id": "d1", "title": "Note"}
    (tmp_path / "batch.jsonl").write_text(json.dumps(note))
    fields = {**API_FIELDS, "metadata": {"by": "$.by"}}
    reviews = {"kind": "review", "items": "$.data[*]", "fields": fields}
    scheduler = make_scheduler(
        [
            rss_source(server, "wire", [ACME], kind="news"),
            atom_source(server, "blog", [LAUNCH]),
            api_source(server, "reviews", {"data": [REVIEW]}, **reviews),
            drop_source(tmp_path),
        ]
    )

    await scheduler.run_once()

    documents = by_source(await collected(rabbit_url, namespace))
    assert {name: len(docs) for name, docs in documents.items()} == dict.fromkeys(
        ["wire", "blog", "reviews", "drops"], 1
    )
    wire, blog, review, dropped = (documents[n][0] for n in ("wire", "blog", "reviews", "drops"))
    assert (wire.title, wire.body, wire.url) == ("Acme beats", "Acme rose 4%.", ACME[2])
    assert (wire.external_id, wire.kind) == ("wire-1", "news")
    assert wire.published_at is not None
    assert (blog.title, blog.body, blog.url) == ("Launch day", "We shipped.", LAUNCH[2])
    assert blog.external_id == "urn:blog:1"
    assert (review.title, review.body, review.external_id) == (
        "Great pasta",
        "Would eat there again.",
        "7",
    )
    assert (review.kind, review.metadata) == ("review", {"by": "Ann"})
    assert (dropped.title, dropped.body, dropped.external_id) == (
        "Note",
        "Dropped note about Acme.",
        "d1",
    )
    assert (tmp_path / "done" / "batch.jsonl").exists()
    assert not (tmp_path / "batch.jsonl").exists()
    assert all(state["consecutive_failures"] == 0 for state in scheduler.status().values())


async def test_an_unchanged_second_poll_is_conditional_and_publishes_nothing(
    server: FeedServer, make_scheduler: MakeScheduler, rabbit_url: str, namespace: str
) -> None:
    scheduler = make_scheduler(
        [rss_source(server, "wire", [ACME]), api_source(server, "reviews", [REVIEW])]
    )
    await scheduler.run_once()
    assert len(await collected(rabbit_url, namespace)) == 2
    await asyncio.sleep(0.05)  # past the (tiny) interval

    await scheduler.run_once()

    assert await collected(rabbit_url, namespace) == []
    for path in ("/wire", "/reviews"):
        first, second = server.requests(path)
        assert (first.if_none_match, first.status) == (None, 200)
        assert second.if_none_match == server.resources[path].etag
        assert second.if_modified_since == server.resources[path].last_modified
        assert second.status == 304


async def test_the_same_article_is_published_once(
    server: FeedServer,
    make_scheduler: MakeScheduler,
    rabbit_url: str,
    namespace: str,
    redis: Redis,
) -> None:
    # Two sources carry the same story under other ids and links; the API lists one review
    # twice under two ids (twice in a batch).
    copy = ("blog-acme", "Acme (repost)", "https://blog.example/acme", ACME[3])
    scheduler = make_scheduler(
        [
            rss_source(server, "wire", [ACME]),
            atom_source(server, "blog", [copy]),
            api_source(server, "reviews", [REVIEW, {**REVIEW, "id": 8}]),
        ]
    )
    await scheduler.run_once()
    first = await collected(rabbit_url, namespace)
    assert sorted(d.body for d in first) == ["Acme rose 4%.", "Would eat there again."]

    # Over two polls: the feed changes (new ETag) and still lists the old story.
    new = ("wire-2", "Acme guidance", "https://wire.example/guidance", "<p>Raised guidance.</p>")
    rss_source(server, "wire", [new, ACME])
    await asyncio.sleep(0.05)
    await scheduler.run_once()
    assert [d.external_id for d in await collected(rabbit_url, namespace)] == ["wire-2"]

    # Even with its cursor lost, the source's old stories are not published again (dedup).
    await redis.delete(f"{namespace}sift:source-cursor:wire")
    await asyncio.sleep(0.05)
    await scheduler.run_once()
    assert await collected(rabbit_url, namespace) == []
    assert server.requests("/wire")[-1].if_none_match is None  # the cursor really was gone


async def test_a_drop_file_with_bad_records_goes_to_failed_with_the_reasons(
    make_scheduler: MakeScheduler, rabbit_url: str, namespace: str, tmp_path: Path
) -> None:
    lines = [
        json.dumps({"body": "A valid record.", "external_id": "ok-1"}),
        "{broken json",
        json.dumps({"body": "<p> </p>", "content_type": "html", "external_id": "empty-1"}),
    ]
    (tmp_path / "mixed.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "clean.json").write_text(json.dumps([{"body": "Clean record."}]))
    scheduler = make_scheduler([drop_source(tmp_path)])

    await scheduler.run_once()

    published = await collected(rabbit_url, namespace)
    assert sorted(d.body for d in published) == ["A valid record.", "Clean record."]
    assert (tmp_path / "done" / "clean.json").exists()
    assert (tmp_path / "failed" / "mixed.jsonl").exists()
    reasons = (tmp_path / "failed" / "mixed.jsonl.reason").read_text().splitlines()
    assert len(reasons) == 2
    assert reasons[0].startswith("line 2: ")
    assert reasons[1] == "empty-1: body: no text left after removing markup and whitespace"
    assert list(tmp_path.glob("*.json*")) == []


@dataclass
class FailingPublisherFake:
    """FAKE: a broker that never confirms (the real one cannot be made to refuse on cue)."""

    calls: int = 0

    async def publish(
        self, documents: list[Document], priority: Priority = "normal"
    ) -> PublishReport:
        self.calls += 1
        raise BrokerUnavailableError(f"{len(documents)} documents not confirmed")


async def test_a_broker_outage_neither_advances_the_cursor_nor_moves_the_file(
    server: FeedServer,
    make_scheduler: MakeScheduler,
    rabbit_url: str,
    namespace: str,
    redis: Redis,
    tmp_path: Path,
) -> None:
    (tmp_path / "batch.jsonl").write_text(json.dumps({"body": "Held back by the outage."}))
    sources = [rss_source(server, "wire", [ACME]), drop_source(tmp_path)]
    fake = FailingPublisherFake()
    outage = make_scheduler(sources, using=fake)

    await outage.run_once()

    assert fake.calls == 2
    assert await redis.exists(f"{namespace}sift:source-cursor:wire") == 0
    assert (tmp_path / "batch.jsonl").exists()
    assert not (tmp_path / "done").exists()
    status = outage.status()
    for name in ("wire", "drops"):
        assert status[name]["consecutive_failures"] == 1
        assert "BrokerUnavailableError" in status[name]["last_error"]
        assert status[name]["last_success_at"] is None

    # The broker is back: the next poll starts from the old cursor and loses nothing.
    await asyncio.sleep(0.05)
    recovered = make_scheduler(sources)
    await recovered.run_once()

    assert sorted(d.source for d in await collected(rabbit_url, namespace)) == ["drops", "wire"]
    assert [seen.if_none_match for seen in server.requests("/wire")] == [None, None]
    assert (tmp_path / "done" / "batch.jsonl").exists()
    assert await redis.exists(f"{namespace}sift:source-cursor:wire") == 1
    assert recovered.status()["wire"]["consecutive_failures"] == 0
