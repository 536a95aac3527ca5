"""The ingest API against the real RabbitMQ and Redis: acceptance, refusals, limits, outages."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import httpx
import pytest
from redis.asyncio import Redis

from sift_collector.app import Collector
from sift_collector.settings import CollectorSettings
from sift_common.contracts import DocumentCollected
from sift_common.messaging.topology import ANALYZER_DOCUMENTS, Topology
from tests.support.rabbit import delete_topology, drain, ready_count
from tests.support.security import assert_refused, auth_failures, key_entry, write_key_file

pytestmark = pytest.mark.integration

KEY, OTHER_KEY = "key-tester", "key-other"
MAX_REQUEST_BYTES = 64 * 1024
MAX_BODY_CHARS = 5_000
MAX_BATCH = 5

StartCollector = Callable[..., Awaitable[Collector]]


def doc(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "source": "wire",
        "title": f"Story {n}",
        "body": f"Story number {n}: the harbour reopened after the storm and ships came in.",
        "url": f"https://news.example/story/{n}",
        "kind": "news",
        **fields,
    }


@pytest.fixture
async def start_collector(
    rabbit_url: str, redis_url: str, namespace: str
) -> AsyncIterator[StartCollector]:
    """Start collectors (lifespan entered, as uvicorn would) with settings overrides."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(**overrides: Any) -> Collector:
            fields: dict[str, Any] = {
                "rabbit_url": rabbit_url,
                "redis_url": redis_url,
                "namespace": namespace,
                "collector_api_keys": {KEY: "tester", OTHER_KEY: "other"},
                "collector_rate_limit": "1000/minute",
                "collector_max_request_bytes": MAX_REQUEST_BYTES,
                "collector_max_body_chars": MAX_BODY_CHARS,
                "collector_max_batch": MAX_BATCH,
                "collector_confirm_timeout_s": 3.0,
                **overrides,
            }
            collector = Collector(CollectorSettings(**fields))
            await stack.enter_async_context(collector.lifespan(collector.api))
            return collector

        yield start
    await delete_topology(rabbit_url, Topology(namespace))
    redis = Redis.from_url(redis_url)
    keys = [key async for key in redis.scan_iter(f"{namespace}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


@contextlib.asynccontextmanager
async def client_for(collector: Collector) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=collector.api)
    async with httpx.AsyncClient(transport=transport, base_url="http://collector") as client:
        yield client


async def post(client: httpx.AsyncClient, body: Any, key: str | None = KEY) -> httpx.Response:
    headers = {"X-API-Key": key} if key else {}
    return await client.post("/v1/documents", json=body, headers=headers)


async def collected(rabbit_url: str, namespace: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    return await drain(rabbit_url, Topology(namespace).work_queue(ANALYZER_DOCUMENTS))


async def test_batch_is_accepted_with_ids_and_published_once(
    start_collector: StartCollector, rabbit_url: str, namespace: str
) -> None:
    collector = await start_collector()
    async with client_for(collector) as client:
        response = await post(client, {"documents": [doc(1), doc(2), doc(3)]})
    assert response.status_code == 202, response.text
    accepted = response.json()["accepted"]
    assert [entry["status"] for entry in accepted] == ["published"] * 3
    messages = await collected(rabbit_url, namespace)
    events = [DocumentCollected.model_validate_json(message.body) for message in messages]
    assert sorted(event.document.id for event in events) == sorted(a["id"] for a in accepted)
    assert all(m.delivery_mode == aio_pika.DeliveryMode.PERSISTENT for m in messages)
    assert {event.document.source for event in events} == {"wire"}
    assert {event.document.metadata["publisher"] for event in events} == {"tester"}


async def test_single_document_and_priority(
    start_collector: StartCollector, rabbit_url: str, namespace: str
) -> None:
    collector = await start_collector()
    async with client_for(collector) as client:
        single = await post(client, doc(1, metadata={"publisher": "spoofed", "lang": "en"}))
        batch = await post(client, {"documents": [doc(2)], "priority": "backfill"})
    assert single.status_code == 202
    assert batch.status_code == 202
    [first] = single.json()["accepted"]
    events = {
        event.document.id: event
        for event in (
            DocumentCollected.model_validate_json(m.body)
            for m in await collected(rabbit_url, namespace)
        )
    }
    assert events[first["id"]].document.metadata == {"publisher": "tester", "lang": "en"}
    assert events[first["id"]].priority == "normal"
    assert events[batch.json()["accepted"][0]["id"]].priority == "backfill"


async def test_publisher_subjects_travel_with_the_document(
    start_collector: StartCollector, rabbit_url: str, namespace: str
) -> None:
    collector = await start_collector()
    subjects = [
        {"kind": "business", "name": "Casa Luna"},
        {"kind": "company", "name": "Acme", "ticker": "ACME"},
    ]
    async with client_for(collector) as client:
        answer = await post(client, doc(1, kind="review", subjects=subjects))
    assert answer.status_code == 202
    [message] = await collected(rabbit_url, namespace)
    event = DocumentCollected.model_validate_json(message.body)
    assert [s.model_dump(exclude_none=True) for s in event.document.subjects] == subjects


BAD_REQUESTS: list[tuple[str, dict[str, Any], int, str, str | None]] = [
    # (name, request kwargs, status, error code, field named)
    ("malformed JSON", {"content": b'{"documents": [', "key": KEY}, 400, "invalid_json", None),
    (
        "missing field",
        {"json": {"documents": [doc(1), {"source": "wire"}]}, "key": KEY},
        422,
        "invalid_request",
        "documents[1].body",
    ),
    (
        "single document missing source",
        {"json": {"body": "text"}, "key": KEY},
        422,
        "invalid_request",
        "source",
    ),
    (
        "oversize request",
        {"json": {"documents": [doc(1, body="x " * MAX_REQUEST_BYTES)]}, "key": KEY},
        413,
        "body_too_large",
        None,
    ),
    (
        "oversize body text",
        {"json": {"documents": [doc(1), doc(2, body="word " * MAX_BODY_CHARS)]}, "key": KEY},
        422,
        "document_rejected",
        "documents[1].body",
    ),
    ("bad key", {"json": doc(1), "key": "not-a-key"}, 401, "unknown_api_key", None),
    ("missing key", {"json": doc(1), "key": None}, 401, "missing_api_key", None),
    ("empty batch", {"json": {"documents": []}, "key": KEY}, 422, "invalid_request", "documents"),
    (
        "batch over the limit",
        {"json": {"documents": [doc(n) for n in range(MAX_BATCH + 1)]}, "key": KEY},
        422,
        "batch_too_large",
        "documents",
    ),
    (
        "a subject without a name",
        {"json": {"documents": [doc(1, subjects=[{"kind": "company"}])]}, "key": KEY},
        422,
        "invalid_request",
        "documents[0].subjects[0].name",
    ),
    (
        "a date given as a number",  # the schema says an ISO 8601 string; 0 is not 1970
        {"json": {"documents": [doc(1, published_at=0.0)]}, "key": KEY},
        422,
        "invalid_request",
        "documents[0].published_at",
    ),
    (
        "not an http URL",
        {"json": {"documents": [doc(1, url="ftp://x.example/a")]}, "key": KEY},
        422,
        "document_rejected",
        "documents[0].url",
    ),
]


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code", "field"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
async def test_bad_requests_get_the_right_4xx_and_publish_nothing(
    start_collector: StartCollector,
    rabbit_url: str,
    namespace: str,
    request_kwargs: dict[str, Any],
    status: int,
    code: str,
    field: str | None,
) -> None:
    collector = await start_collector()
    kwargs = dict(request_kwargs)
    key = kwargs.pop("key")
    headers = {"X-API-Key": key} if key else {}
    if "content" in kwargs:
        headers["Content-Type"] = "application/json"
    async with client_for(collector) as client:
        response = await client.post("/v1/documents", headers=headers, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == code
    assert set(error) == {"message", "type", "field", "errors"}
    if field is not None:
        assert field in [entry["field"] for entry in error["errors"]], error
        assert error["field"] == error["errors"][0]["field"]
    else:
        assert error["field"] is None
    assert await ready_count(rabbit_url, Topology(namespace).work_queue(ANALYZER_DOCUMENTS)) == 0


async def test_declared_length_over_the_limit_is_refused_before_reading(
    start_collector: StartCollector,
) -> None:
    collector = await start_collector()
    headers = {
        "X-API-Key": KEY,
        "Content-Type": "application/json",
        "Content-Length": str(MAX_REQUEST_BYTES + 1),
    }
    async with client_for(collector) as client:
        response = await client.post("/v1/documents", headers=headers, content=b"{}")
    assert response.status_code == 413


async def test_streamed_body_over_the_limit_is_refused_without_content_length(
    start_collector: StartCollector, rabbit_url: str, namespace: str
) -> None:
    collector = await start_collector()

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"documents": [{"source": "wire", "body": "'
        for _ in range(4):
            yield b"x" * (MAX_REQUEST_BYTES // 3)
        yield b'"}]}'

    headers = {"X-API-Key": KEY, "Content-Type": "application/json"}
    async with client_for(collector) as client:
        response = await client.post("/v1/documents", headers=headers, content=chunks())
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert await ready_count(rabbit_url, Topology(namespace).work_queue(ANALYZER_DOCUMENTS)) == 0


async def test_wrong_content_type_is_415(start_collector: StartCollector) -> None:
    collector = await start_collector()
    async with client_for(collector) as client:
        response = await client.post(
            "/v1/documents", headers={"X-API-Key": KEY}, data={"source": "a", "body": "b"}
        )
    assert response.status_code == 415
    assert response.json()["error"]["type"] == "unsupported_media_type"


async def test_duplicates_in_a_batch_and_on_repeat_are_published_once(
    start_collector: StartCollector, rabbit_url: str, namespace: str
) -> None:
    collector = await start_collector()
    async with client_for(collector) as client:
        first = await post(client, {"documents": [doc(1), doc(1), doc(2)]})
        repeat = await post(client, {"documents": [doc(1), doc(2)]})
    assert [a["status"] for a in first.json()["accepted"]] == [
        "published",
        "duplicate",
        "published",
    ]
    assert first.json()["accepted"][0]["id"] == first.json()["accepted"][1]["id"]
    assert [a["status"] for a in repeat.json()["accepted"]] == ["duplicate", "duplicate"]
    messages = await collected(rabbit_url, namespace)
    assert len(messages) == 2


async def test_rate_limit_answers_429_with_retry_after_per_publisher(
    start_collector: StartCollector,
) -> None:
    collector = await start_collector(collector_rate_limit="3/minute")
    async with client_for(collector) as client:
        statuses = [(await post(client, doc(n))).status_code for n in range(3)]
        limited = await post(client, doc(9))
        other = await post(client, doc(10), key=OTHER_KEY)
    assert statuses == [202, 202, 202]
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.json()["error"]["type"] == "rate_limited"
    assert other.status_code == 202  # another publisher has its own budget


async def test_health_and_metrics(start_collector: StartCollector) -> None:
    collector = await start_collector()
    async with client_for(collector) as client:
        live = await client.get("/health/live")
        ready = await client.get("/health/ready")
        await post(client, {"documents": [doc(1), doc(1)]})
        await post(client, {"documents": [doc(2, body=" ")]})
        metrics = (await client.get("/metrics")).text
    assert live.json() == {"status": "live"}
    assert ready.status_code == 200, ready.text
    assert ready.json() == {
        "status": "ready",
        "checks": {
            "broker": {"ok": True, "error": None, "detail": None, "advisory": False},
            "redis": {"ok": True, "error": None, "detail": None, "advisory": False},
        },
    }
    for line in (
        'sift_collector_documents_total{outcome="published",publisher="tester"} 1.0',
        'sift_collector_documents_total{outcome="duplicate",publisher="tester"} 1.0',
        'sift_collector_documents_total{outcome="rejected",publisher="tester"} 1.0',
        'sift_collector_http_requests_total{route="/v1/documents",status="202"} 1.0',
        'sift_collector_http_requests_total{route="/v1/documents",status="422"} 1.0',
    ):
        assert line in metrics, line


class FakeTcpProxy:
    """FAKE: a TCP forwarder on 127.0.0.1 in front of the real RabbitMQ that a test can cut
    (every connection dropped, new ones closed at once) and restore. Stopping the machine's
    RabbitMQ would disturb every other test; this breaks only the collector's own link."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._cut = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.cut()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def cut(self) -> None:
        self._cut = True
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self._cut = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        finally:
            writer.transport.abort()
            self._writers.discard(writer)


def via_proxy(rabbit_url: str, port: int) -> str:
    parts = urlsplit(rabbit_url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


async def wait_for_status(client: httpx.AsyncClient, path: str, status: int) -> httpx.Response:
    async with asyncio.timeout(60):
        while (response := await client.get(path)).status_code != status:
            await asyncio.sleep(0.2)
    return response


@pytest.fixture
async def rabbit_proxy(rabbit_url: str) -> AsyncIterator[FakeTcpProxy]:
    """Requested before `start_collector`, so it outlives the collector using it."""
    target = urlsplit(rabbit_url)
    proxy = FakeTcpProxy(target.hostname or "127.0.0.1", target.port or 5672)
    await proxy.start()
    yield proxy
    await proxy.stop()


async def test_broker_outage_answers_503_and_loses_nothing(
    rabbit_proxy: FakeTcpProxy, start_collector: StartCollector, rabbit_url: str, namespace: str
) -> None:
    collector = await start_collector(rabbit_url=via_proxy(rabbit_url, rabbit_proxy.port))
    before, during = [doc(1), doc(2)], [doc(3), doc(4)]
    async with client_for(collector) as client:
        accepted = await post(client, {"documents": before})
        assert accepted.status_code == 202, accepted.text
        rabbit_proxy.cut()
        refused = await post(client, {"documents": during})
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["error"]["type"] == "unavailable"
        not_ready = await wait_for_status(client, "/health/ready", 503)
        assert not_ready.json()["status"] == "not_ready"
        assert not_ready.json()["checks"]["broker"]["ok"] is False
        assert not_ready.json()["checks"]["broker"]["error"]
        assert (await post(client, {"documents": during})).status_code == 503
        rabbit_proxy.restore()
        await wait_for_status(client, "/health/ready", 200)
        retried = await post(client, {"documents": during})
        again = await post(client, {"documents": before})
    assert retried.status_code == 202, retried.text
    assert [a["status"] for a in retried.json()["accepted"]] == ["published"] * 2
    assert [a["status"] for a in again.json()["accepted"]] == ["duplicate"] * 2
    ids = [a["id"] for a in accepted.json()["accepted"] + retried.json()["accepted"]]
    messages = await collected(rabbit_url, namespace)
    delivered = [DocumentCollected.model_validate_json(m.body).document.id for m in messages]
    assert sorted(delivered) == sorted(ids)  # each document exactly once


# --- the API-key door (sift_common.security) -----------------------------------------------------

DOOR_KEY, QUERY_ONLY_KEY = "p" * 40, "q" * 40


async def test_the_collector_door(start_collector: StartCollector) -> None:
    keys = {DOOR_KEY: "wire", QUERY_ONLY_KEY: {"name": "analyst", "scopes": ["query"]}}
    collector = await start_collector(collector_api_keys=keys, auth_failures_per_minute=4)
    async with client_for(collector) as http:

        async def post(key: str | None) -> httpx.Response:
            headers = {"X-API-Key": key} if key is not None else {}
            return await http.post("/v1/documents", json=doc(1), headers=headers)

        missing = await post(None)
        assert_refused(missing, 401, "missing_api_key")
        assert missing.headers["WWW-Authenticate"] == "ApiKey"
        assert_refused(await post("x" * 40), 401, "unknown_api_key")
        assert_refused(await post(QUERY_ONLY_KEY), 403, "forbidden")  # a query key cannot ingest
        assert (await post(DOOR_KEY)).status_code == 202
        throttled = await post("y" * 40)  # the fourth failure from this address is still a 401
        assert_refused(throttled, 401, "unknown_api_key")
        throttled = await post(DOOR_KEY)  # no token left: even the right key waits
        assert_refused(throttled, 429, "too_many_failed_attempts")
        assert int(throttled.headers["Retry-After"]) >= 1
        metrics = (await http.get("/metrics")).text
    for reason in ("missing", "unknown", "forbidden", "throttled"):
        assert auth_failures(metrics, reason) == (2 if reason == "unknown" else 1), reason


async def test_closed_metrics_answer_only_the_metrics_scope(
    start_collector: StartCollector,
) -> None:
    scraper = "m" * 40
    keys = {DOOR_KEY: "wire", scraper: {"name": "prometheus", "scopes": ["metrics"]}}
    collector = await start_collector(collector_api_keys=keys, open_metrics=False)
    async with client_for(collector) as http:
        assert_refused(await http.get("/metrics"), 401, "missing_api_key")
        as_publisher = await http.get("/metrics", headers={"X-API-Key": DOOR_KEY})
        assert_refused(as_publisher, 403, "forbidden")
        scraped = await http.get("/metrics", headers={"Authorization": f"Bearer {scraper}"})
        assert scraped.status_code == 200, scraped.text
        assert (await http.get("/health/ready")).status_code == 200  # probes carry no key
        ingest = await http.post("/v1/documents", json=doc(1), headers={"X-API-Key": scraper})
        assert_refused(ingest, 403, "forbidden")  # the scraper's key reads metrics only
    assert auth_failures(scraped.text, "forbidden") == 1
    assert auth_failures(scraped.text, "missing") == 1


async def test_collector_keys_rotate_through_the_key_file(
    start_collector: StartCollector, tmp_path: Path
) -> None:
    old, new = "o" * 40, "n" * 40
    path = tmp_path / "collector-keys.json"
    write_key_file(path, {old: "wire"}, 1_000_000)
    collector = await start_collector(collector_api_keys_file=path, auth_failures_per_minute=100)
    async with client_for(collector) as http:

        async def status(key: str) -> int:
            response = await http.post("/v1/documents", json=doc(1), headers={"X-API-Key": key})
            return response.status_code

        assert (await status(old), await status(new), await status("dev-key")) == (202, 401, 401)
        new_hash = key_entry(new)
        write_key_file(path, {old: "wire", new_hash: "wire"}, 2_000_000)
        assert (await status(old), await status(new)) == (202, 202)
        write_key_file(path, {new_hash: "wire"}, 3_000_000)
        assert (await status(old), await status(new)) == (401, 202)
