"""Dedup claims against the real Redis and RabbitMQ: a content hash is held for the dedup window
only once the broker confirmed its document.

A publish that never completes — cancelled while it waits for its confirm, or its process
killed — must not leave the hash claimed for the window: the document would be answered
`duplicate` for a week and never published. A second submitter of content whose publish is in
flight elsewhere waits for that outcome instead of answering `duplicate` at once.

The confirm is held back by a FAKE network: `FakeStallingProxy` sits between a publisher and the
real RabbitMQ and, on cue, stops forwarding bytes either way (a stalled link); the real broker
cannot be made to withhold one connection's confirms without disturbing everyone else's.
"""

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from faststream.rabbit import RabbitBroker
from redis.asyncio import Redis

from sift_collector.dedup import Deduplicator
from sift_collector.ingest import DependencyUnavailableError, Ingest
from sift_collector.publisher import DocumentPublisher, PublishReport
from sift_common.contracts import Document, DocumentCollected, IncomingDocument
from sift_common.messaging.broker import declare_topology, make_broker
from sift_common.messaging.topology import ANALYZER_DOCUMENTS, Topology
from tests.support.rabbit import delete_topology, drain

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WINDOW_S = 3600
SOURCE = "claims-test"
CRASH_CONFIRM_S = 1.0  # the crashing publisher's confirm timeout; its pending TTL is twice that

MakePublisher = Callable[..., Awaitable[DocumentPublisher]]


class FakeStallingProxy:
    """FAKE network: a TCP forwarder on 127.0.0.1 in front of the real RabbitMQ that a test can
    stall (bytes held back both ways, connections left open: a confirm never comes) and
    resume (the held bytes flow on)."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._flowing.set()
        for writer in list(self._writers):
            writer.transport.abort()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def url(self, rabbit_url: str) -> str:
        parts = urlsplit(rabbit_url)
        credentials = parts.netloc.rpartition("@")[0]
        host = f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=f"{credentials}@{host}" if credentials else host))

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                await self._flowing.wait()
                writer.write(chunk)
                await writer.drain()
        finally:
            writer.transport.abort()
            self._writers.discard(writer)


def doc(text: str) -> Document:
    return Document.create(source=SOURCE, body=f"{text}: the harbour reopened after the storm.")


def publisher_for(
    broker: RabbitBroker, redis: Redis, namespace: str, confirm_timeout_s: float
) -> DocumentPublisher:
    dedup = Deduplicator(redis, window_s=WINDOW_S, prefix=namespace)
    return DocumentPublisher(
        broker, Topology(namespace), dedup, confirm_timeout_s=confirm_timeout_s
    )


def key_of(document: Document, namespace: str) -> str:
    return f"{namespace}sift:dedup:{document.content_hash}"


async def wait_for_key(
    redis: Redis, key: str, alive: Callable[[], bool] = lambda: True, timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while not await redis.exists(key):
        assert alive(), "the publisher stopped before it claimed the document"
        assert time.monotonic() < deadline, f"{key} was never claimed"
        await asyncio.sleep(0.01)


@pytest.fixture
async def redis(redis_url: str, namespace: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    keys = [key async for key in client.scan_iter(match=f"{namespace}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def proxy(rabbit_url: str, namespace: str) -> AsyncIterator[FakeStallingProxy]:
    """The topology is declared here too (and deleted after the brokers stopped)."""
    topology = Topology(namespace)
    await declare_topology(rabbit_url, topology)
    target = urlsplit(rabbit_url)
    proxy = FakeStallingProxy(target.hostname or "127.0.0.1", target.port or 5672)
    await proxy.start()
    yield proxy
    await proxy.stop()
    await delete_topology(rabbit_url, topology)


@pytest.fixture
async def make_publisher(
    proxy: FakeStallingProxy, rabbit_url: str, redis: Redis, namespace: str
) -> AsyncIterator[MakePublisher]:
    """Publishers on this test's namespace: straight to RabbitMQ, or `stallable` through the
    proxy (warmed up by one publish, so its channel is open before a stall)."""
    brokers: list[RabbitBroker] = []

    async def make(
        *, stallable: bool = False, confirm_timeout_s: float = 10.0
    ) -> DocumentPublisher:
        broker = make_broker(proxy.url(rabbit_url) if stallable else rabbit_url)
        await broker.connect()
        brokers.append(broker)
        publisher = publisher_for(broker, redis, namespace, confirm_timeout_s)
        if stallable:
            await publisher.publish([doc(f"warm-up {len(brokers)}")])
        return publisher

    yield make
    proxy.resume()
    for broker in brokers:
        await broker.stop()


async def stalled_publish(
    publisher: DocumentPublisher,
    proxy: FakeStallingProxy,
    redis: Redis,
    key: str,
    document: Document,
) -> "asyncio.Task[PublishReport]":
    """A publish of `document` that claimed `key` and now waits for a confirm that cannot come."""
    proxy.stall()
    task = asyncio.create_task(publisher.publish([document]))
    await wait_for_key(redis, key, lambda: not task.done())
    await asyncio.sleep(0.3)
    assert not task.done(), "the publish completed through a stalled link"
    return task


async def delivered(rabbit_url: str, namespace: str) -> list[str]:
    messages = await drain(rabbit_url, Topology(namespace).work_queue(ANALYZER_DOCUMENTS))
    bodies = [DocumentCollected.model_validate_json(m.body).document for m in messages]
    return [document.body for document in bodies if not document.body.startswith("warm-up")]


async def test_a_publish_cancelled_while_awaiting_its_confirm_leaves_no_claim(
    make_publisher: MakePublisher, proxy: FakeStallingProxy, redis: Redis, namespace: str
) -> None:
    stalled = await make_publisher(stallable=True, confirm_timeout_s=30.0)
    direct = await make_publisher()
    document = doc("cancelled")
    key = key_of(document, namespace)
    task = await stalled_publish(stalled, proxy, redis, key, document)
    assert 0 < await redis.ttl(key) <= 60  # pending: twice the confirm timeout, not the window
    task.cancel()  # a poll's timeout, a shutdown
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not await redis.exists(key), "the cancelled publish did not give its claim back"
    again = await direct.publish([document])
    assert again.published == [document], "the cancelled publish kept the document claimed"


async def test_b_a_crashed_publisher_holds_the_document_only_for_the_pending_ttl(
    make_publisher: MakePublisher, redis: Redis, rabbit_url: str, redis_url: str, namespace: str
) -> None:
    direct = await make_publisher()
    document = doc("crashed")
    key = key_of(document, namespace)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import asyncio, sys\n"
        "from tests.integration.test_collector_dedup_claims import crash_victim\n"
        "asyncio.run(crash_victim(*sys.argv[1:]))",
        rabbit_url,
        redis_url,
        namespace,
        "crashed",
        cwd=ROOT,
    )
    try:
        await wait_for_key(redis, key, lambda: child.returncode is None, timeout=60)
    finally:
        child.kill()  # claimed, publishing, never confirmed, never released
        await child.wait()
    assert await redis.ttl(key) <= 2 * CRASH_CONFIRM_S
    started = time.monotonic()
    report = await direct.publish([document])
    assert report.published == [document], "the crashed publisher's claim outlived it"
    assert time.monotonic() - started < 2 * CRASH_CONFIRM_S + 2
    assert WINDOW_S - 60 < await redis.ttl(key) <= WINDOW_S


async def crash_victim(rabbit_url: str, redis_url: str, namespace: str, text: str) -> None:
    """Run in a child process that the test kills: publish `doc(text)` over a stalled link."""
    target = urlsplit(rabbit_url)
    proxy = FakeStallingProxy(target.hostname or "127.0.0.1", target.port or 5672)
    await proxy.start()
    broker = make_broker(proxy.url(rabbit_url))
    await broker.connect()
    publisher = publisher_for(broker, Redis.from_url(redis_url), namespace, CRASH_CONFIRM_S)
    await publisher.publish([doc("warm-up crash")])
    proxy.stall()
    await publisher.publish([doc(text)])
    await asyncio.sleep(3600)  # killed long before


async def test_c_a_confirmed_publish_holds_the_claim_for_the_window(
    make_publisher: MakePublisher, redis: Redis, rabbit_url: str, namespace: str
) -> None:
    direct = await make_publisher()
    document = doc("confirmed")
    first = await direct.publish([document, doc("confirmed")])
    assert first.published == [document]
    assert len(first.duplicates) == 1  # the second copy in the batch
    assert WINDOW_S - 60 < await redis.ttl(key_of(document, namespace)) <= WINDOW_S
    again = await direct.publish([document])
    assert (again.published, again.duplicates) == ([], [document])
    assert await delivered(rabbit_url, namespace) == [document.body]


async def test_d_a_second_copy_waits_and_is_published_when_the_first_is_given_up(
    make_publisher: MakePublisher, proxy: FakeStallingProxy, redis: Redis, namespace: str
) -> None:
    stalled = await make_publisher(stallable=True, confirm_timeout_s=30.0)
    direct = await make_publisher()
    document = doc("second copy, first given up")
    first = await stalled_publish(stalled, proxy, redis, key_of(document, namespace), document)
    second = asyncio.create_task(direct.publish([document]))
    await asyncio.sleep(0.5)
    assert not second.done(), "answered while the first copy's publish was still open"
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    report = await asyncio.wait_for(second, 10)
    assert report.published == [document]


async def test_e_a_second_copy_waits_and_is_a_duplicate_when_the_first_is_confirmed(
    make_publisher: MakePublisher, proxy: FakeStallingProxy, redis: Redis, namespace: str
) -> None:
    stalled = await make_publisher(stallable=True, confirm_timeout_s=30.0)
    direct = await make_publisher()
    document = doc("second copy, first confirmed")
    first = await stalled_publish(stalled, proxy, redis, key_of(document, namespace), document)
    second = asyncio.create_task(direct.publish([document]))
    await asyncio.sleep(0.5)
    assert not second.done(), "answered while the first copy's publish was still open"
    proxy.resume()
    assert (await asyncio.wait_for(first, 10)).published == [document]
    report = await asyncio.wait_for(second, 10)
    assert (report.published, report.duplicates) == ([], [document])


async def test_f_a_copy_still_in_flight_elsewhere_is_a_transient_refusal(
    make_publisher: MakePublisher, proxy: FakeStallingProxy, redis: Redis, namespace: str
) -> None:
    stalled = await make_publisher(stallable=True, confirm_timeout_s=30.0)
    impatient = await make_publisher(confirm_timeout_s=0.5)  # waits about a second at most
    document = doc("in flight elsewhere")
    first = await stalled_publish(stalled, proxy, redis, key_of(document, namespace), document)
    incoming = IncomingDocument(source=SOURCE, body=document.body)
    with pytest.raises(DependencyUnavailableError):  # the API's 503 + Retry-After
        await asyncio.wait_for(Ingest(impatient).submit([incoming], "tester"), 10)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
