"""The archiver for tests: the real app served in-process on a free port, a gateway in front
of the real vLLM embeddings server (or of a FAKE one, for tests that need no real vectors),
event factories and store helpers."""

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from aiohttp import web

from sift_archiver.app import Archiver
from sift_archiver.pool import asyncpg_dsn
from sift_archiver.settings import ArchiverSettings
from sift_common.contracts import Analysis, Document, DocumentAnalyzed, EntityMention, Event
from sift_common.messaging.broker import JSON, declare_topology, make_broker, publish_event
from sift_common.messaging.topology import (
    ANALYZER_ENTITY_REFRESH,
    ARCHIVER_DIGESTS,
    ARCHIVER_DOCUMENTS,
    ConsumerQueue,
    Topology,
)
from sift_common.store.models import EMBEDDING_DIM
from tests.support.fake_upstream import FakeUpstream, running_fake
from tests.support.gateway import RunningGateway, embed_profile, free_port, running_gateway
from tests.support.rabbit import delete_topology
from tests.support.vllm import VllmServers


def _fast(spec: ConsumerQueue) -> ConsumerQueue:
    return replace(spec, retry_delays_ms=(300,), max_retries=3)


# The analyzer's entity.refresh queue is declared too: the tests read what the archiver sends.
TEST_QUEUES = tuple(map(_fast, (ARCHIVER_DOCUMENTS, ARCHIVER_DIGESTS, ANALYZER_ENTITY_REFRESH)))
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
API_KEY = "test-key"
HEADERS = {"X-API-Key": API_KEY}
REAL_TIMEOUTS = {"connect_s": 2, "ttft_s": 120, "stall_s": 60, "total_s": 300}


def archiver_topology(namespace: str) -> Topology:
    return Topology(namespace, TEST_QUEUES)


@asynccontextmanager
async def embedding_gateway(vllm: VllmServers, directory: Path) -> AsyncIterator[RunningGateway]:
    profiles = {
        "local-embed": embed_profile(
            vllm.embed_url, served_model=vllm.embed_model, timeouts=REAL_TIMEOUTS
        )
    }
    async with running_gateway(
        directory, profiles, {"embed": "local-embed"}, gateway_probe_timeout_s=120
    ) as gateway:
        yield gateway


@dataclass
class FakeEmbeddings(FakeUpstream):
    """A FAKE embeddings upstream answering 384-d unit vectors that depend on the text only
    (no meaning in them): for tests of the archiver's write path that need no real model."""

    model: str = "fake-embed"

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = (await self._record(request))["body"]
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": fake_vector(text)}
            for i, text in enumerate(inputs)
        ]
        return web.json_response({"object": "list", "data": data, "model": self.model})


def fake_vector(text: str) -> list[float]:
    seed = hashlib.sha256(text.encode()).digest()
    raw = [seed[i % len(seed)] - 127.5 + i % 7 for i in range(EMBEDDING_DIM)]
    norm = sum(x * x for x in raw) ** 0.5
    return [x / norm for x in raw]


@asynccontextmanager
async def fake_embedding_gateway(directory: Path) -> AsyncIterator[RunningGateway]:
    """The real gateway in front of a FAKE embeddings upstream (`FakeEmbeddings`)."""
    async with running_fake(FakeEmbeddings()) as fake:
        profiles = {"fake-embed": embed_profile(fake.url, served_model=fake.model)}
        async with running_gateway(directory, profiles, {"embed": "fake-embed"}) as gateway:
            yield gateway


def archiver_settings(
    rabbit_url: str, namespace: str, database_url: str, gateway_url: str, **overrides: Any
) -> ArchiverSettings:
    fields: dict[str, Any] = {
        "rabbit_url": rabbit_url,
        "namespace": namespace,
        "database_url": database_url,
        "gateway_url": gateway_url,
        "archiver_api_keys": {API_KEY: "tester"},
        "archiver_batch_size": 8,
        "archiver_batch_wait_s": 0.3,
        "archiver_drain_grace_s": 0.2,
        **overrides,
    }
    return ArchiverSettings(**fields)


@dataclass
class RunningArchiver:
    url: str
    archiver: Archiver

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=HEADERS, timeout=120)


@asynccontextmanager
async def running_archiver(settings: ArchiverSettings) -> AsyncIterator[RunningArchiver]:
    """The archiver app (consumers included) on 127.0.0.1:<free port>; stopped on exit."""
    port = free_port()
    archiver = Archiver(settings, archiver_topology(settings.namespace))
    config = uvicorn.Config(archiver.api, host="127.0.0.1", port=port, log_config=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the archiver did not start")
        await asyncio.sleep(0.05)
    try:
        yield RunningArchiver(f"http://127.0.0.1:{port}", archiver)
    finally:
        server.should_exit = True
        await task


def analyzed(
    title: str,
    body: str,
    *,
    source: str = "test-wire",
    kind: str = "news",
    language: str = "en",
    published_at: datetime = T0,
    entities: tuple[tuple[str, str, float | None], ...] = (),
    score: float | None = 50.0,
    prompt_version: str = "v1",
    fencing_token: int | None = None,
) -> DocumentAnalyzed:
    """A `document.analyzed` event; entities as (kind, name, score)."""
    document = Document.create(
        source=source, body=body, title=title, kind=kind, language=language,
        published_at=published_at, collected_at=published_at + timedelta(minutes=5),
    )  # fmt: skip
    analysis = Analysis(
        analysis_type="news",
        prompt_version=prompt_version,
        model="smollm2-135m-instruct",
        score=score,
        result={"summary": f"Summary: {title}", "score": score},
        entities=[EntityMention(kind=k, name=n, score=s) for k, n, s in entities],
    )
    return DocumentAnalyzed(
        correlation_id=document.id,
        document=document,
        analysis=analysis,
        fencing_token=fencing_token,
    )


async def table_counts(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        tables = ("documents", "analyses", "embeddings", "entities", "document_entities",
                  "entity_digests")  # fmt: skip
        return {t: int(await conn.fetchval(f"SELECT count(*) FROM {t}")) for t in tables}
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def embed_gateway(
    vllm_servers: VllmServers, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningGateway]:
    """The real gateway in front of the real vLLM embeddings server, once per test module."""
    async with embedding_gateway(vllm_servers, tmp_path_factory.mktemp("gateway")) as gateway:
        yield gateway


@pytest.fixture
async def topology(rabbit_url: str, namespace: str) -> AsyncIterator[Topology]:
    topology = archiver_topology(namespace)
    yield topology
    await delete_topology(rabbit_url, topology)


async def publish_all(rabbit_url: str, topology: Topology, events: Sequence[Event]) -> None:
    broker = make_broker(rabbit_url)
    await broker.connect()
    try:
        await declare_topology(rabbit_url, topology)
        await asyncio.gather(*(publish_event(broker, topology, event) for event in events))
    finally:
        await broker.stop()


async def publish_raw(
    rabbit_url: str, topology: Topology, routing_key: str, bodies: Sequence[bytes]
) -> None:
    """Publish bodies as they are, as a publisher that does not use the contracts would."""
    broker = make_broker(rabbit_url)
    await broker.connect()
    try:
        await declare_topology(rabbit_url, topology)
        await asyncio.gather(*(
            broker.publish(body, exchange=topology.exchange, routing_key=routing_key,
                           persist=True, mandatory=True, content_type=JSON)
            for body in bodies
        ))  # fmt: skip
    finally:
        await broker.stop()


def with_json_infinity(event: DocumentAnalyzed) -> bytes:
    """`event` with `analysis.result.ratio = Infinity`, as Python's `json.dumps` writes a float
    overflow: the contract parses it, PostgreSQL's JSONB refuses it."""
    body = event.model_dump(mode="json")
    body["analysis"]["result"]["ratio"] = float("inf")
    return json.dumps(body).encode()


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.2)


def handled(archiver: Archiver) -> float:
    """Analysed-document messages the archiver has put through committed or failed batches."""
    value = archiver.registry.get_sample_value("sift_archiver_batch_size_sum")
    return value or 0.0


def stored_batches(archiver: Archiver) -> float:
    value = archiver.registry.get_sample_value("sift_archiver_batches_total", {"outcome": "stored"})
    return value or 0.0
