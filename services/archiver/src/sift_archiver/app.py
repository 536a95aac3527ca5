"""Composition root of the archiver: settings in; consumers, store and query API out.

The lifespan resolves the database (the embedded server when `SIFT_DATABASE_URL` is unset),
migrates it, opens the pool, the gateway client and the broker, then starts consuming. On
SIGTERM readiness turns 503 first; after a grace period the listener closes, the open batch
is written at once (its messages acked after commit), consuming stops, and the process exits 0.
"""

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import asyncpg
import uvicorn
from fastapi import FastAPI
from pgvector.asyncpg import register_vector
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import make_url

from sift_archiver.api import QueryService, create_api
from sift_archiver.embedder import Embedder
from sift_archiver.ingest import DigestArchive, DocumentArchive, refresh_publisher
from sift_archiver.metrics import ArchiverMetrics
from sift_archiver.refresh_schedule import run_refresh_schedule
from sift_archiver.search import SearchSettings
from sift_archiver.settings import ArchiverSettings
from sift_archiver.status import QueueDepths
from sift_common.contracts import DocumentAnalyzed, EntityDigested
from sift_common.draining import DrainingServer
from sift_common.errors import ConfigError
from sift_common.gateway_client import GatewayClient
from sift_common.logs import configure_logging
from sift_common.messaging.broker import declare_topology, make_broker
from sift_common.messaging.consumer import subscribe
from sift_common.messaging.inflight import InFlight
from sift_common.messaging.topology import ARCHIVER_DIGESTS, ARCHIVER_DOCUMENTS, Topology
from sift_common.readiness import Readiness
from sift_common.settings import load_settings
from sift_common.store import migrate
from sift_common.store.engine import connection_timeouts, resolve_database_url

logger = logging.getLogger("sift_archiver")

CHECK_TIMEOUT_S = 2.0


def _jsonb_out(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


async def init_connection(conn: asyncpg.Connection) -> None:
    """Binary pgvector codec and JSONB as Python objects on every pooled connection."""
    await register_vector(conn)
    await conn.set_type_codec("jsonb", encoder=_jsonb_out, decoder=json.loads, schema="pg_catalog")


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Archiver:
    def __init__(self, settings: ArchiverSettings, topology: Topology | None = None) -> None:
        self.settings = settings
        self.topology = topology or Topology(settings.namespace)
        self.broker = make_broker(str(settings.rabbit_url))
        self.inflight = InFlight(settings.handler_budget_s)
        self.registry = CollectorRegistry()
        self.metrics = ArchiverMetrics.create(self.registry)
        self.gateway = GatewayClient(str(settings.gateway_url), timeout_s=120.0)
        self.embedder = Embedder(
            self.gateway, settings.archiver_embed_model, settings.archiver_embedding_model_name
        )
        self._pool: asyncpg.Pool | None = None
        self.queue_depths = QueueDepths(str(settings.rabbit_url), self.topology)
        self.documents: DocumentArchive | None = None
        self.readiness = Readiness({"database": self._database_ok, "broker": self._broker_ok})
        self.service = QueryService(
            pool=None,  # set in the lifespan, before any request
            embedder=self.embedder,
            search=SearchSettings(settings.archiver_ef_search, settings.archiver_max_scan_tuples),
            queue_depths=self.queue_depths,
        )
        self._subscribe()
        self.api: FastAPI = create_api(
            self.service, settings.archiver_api_keys, self.readiness, self.registry, self.lifespan
        )

    def _subscribe(self) -> None:
        async def on_analyzed(event: DocumentAnalyzed) -> None:
            assert self.documents is not None, "consuming starts after the lifespan wired it"
            await self.documents.handle(event)

        async def on_digested(event: EntityDigested) -> None:
            await DigestArchive(self.pool, self.metrics).handle(event)

        # Each handler holds its message until its batch commits: prefetch > batch size.
        docs = self.topology.resolve(ARCHIVER_DOCUMENTS)
        digests = self.topology.resolve(ARCHIVER_DIGESTS)
        prefetch = self.settings.prefetch
        subscribe(
            self.broker, self.topology, docs, on_analyzed,
            prefetch=prefetch, inflight=self.inflight,
        )  # fmt: skip
        subscribe(
            self.broker, self.topology, digests, on_digested,
            prefetch=8, inflight=self.inflight,
        )  # fmt: skip

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the database pool is not open")
        return self._pool

    async def _database_ok(self) -> None:
        async with asyncio.timeout(CHECK_TIMEOUT_S), self.pool.acquire() as conn:
            await conn.fetchval("SELECT 1")

    async def _broker_ok(self) -> None:
        if not await self.broker.ping(timeout=CHECK_TIMEOUT_S):
            raise ConnectionError("RabbitMQ connection is down")

    async def _open_store(self) -> None:
        url = resolve_database_url(self.settings)
        if self.settings.archiver_migrate:
            await migrate.upgrade(url)
        self._pool = await asyncpg.create_pool(
            asyncpg_dsn(url), min_size=1, max_size=8, init=init_connection, **connection_timeouts()
        )
        self.service.pool = self._pool
        s = self.settings
        self.documents = DocumentArchive(
            self._pool, self.embedder, self.metrics, refresh_publisher(self.broker, self.topology),
            batch_size=s.archiver_batch_size, batch_wait_s=s.archiver_batch_wait_s,
            chunk_words=s.archiver_chunk_words, chunk_overlap=s.archiver_chunk_overlap_words,
        )  # fmt: skip

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        await self._open_store()
        await self.broker.connect()
        await declare_topology(str(self.settings.rabbit_url), self.topology)
        await self.broker.start()
        stop = asyncio.Event()
        schedule = self._start_refresh_schedule(stop)
        logger.info("archiver started", extra={"namespace": self.settings.namespace})
        try:
            yield
        finally:
            self.readiness.draining = True
            stop.set()
            if schedule is not None:
                await schedule
            await self._stop()

    def _start_refresh_schedule(self, stop: asyncio.Event) -> "asyncio.Task[None] | None":
        every_s = self.settings.archiver_refresh_every_s
        if every_s <= 0:
            return None
        window = timedelta(days=self.settings.archiver_refresh_window_days)
        publish = refresh_publisher(self.broker, self.topology)
        return asyncio.create_task(
            run_refresh_schedule(self.pool, publish, every_s=every_s, window=window, stop=stop),
            name="entity-refresh-schedule",
        )

    async def _stop_accepting(self) -> None:
        self.inflight.stop_accepting()

    async def _drain(self) -> None:
        handed_back = await self.inflight.drain(self.settings.drain_timeout_s)
        logger.info("consumers drained", extra={"handed_back": handed_back})

    async def _stop(self) -> None:
        """Stop taking messages, write the open batch now, let the handlers in flight finish
        (or hand them back), stop consuming, close; each step even if one fails."""
        steps = [
            ("intake", self._stop_accepting),
            ("open batch", self.documents.batcher.close if self.documents else None),
            ("messages in flight", self._drain),
            ("broker", self.broker.stop),
            ("gateway client", self.gateway.aclose),
            ("status connection", self.queue_depths.close),
            ("database pool", self._pool.close if self._pool else None),
        ]
        for name, step in steps:
            if step is None:
                continue
            try:
                await step()
            except Exception:
                logger.exception("stopping the %s failed", name)
        logger.info("archiver stopped")


def main() -> None:
    configure_logging("archiver")
    try:
        settings = load_settings(ArchiverSettings)
        archiver = Archiver(settings)
    except ConfigError as exc:
        raise SystemExit(f"sift-archiver: {exc}") from None
    config = uvicorn.Config(
        archiver.api,
        host=settings.archiver_host,
        port=settings.archiver_port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=30,
    )
    server = DrainingServer(config, archiver.readiness, settings.archiver_drain_grace_s)
    server.run()
    if not server.started:
        raise SystemExit("sift-archiver: start-up failed (see the log above)")
