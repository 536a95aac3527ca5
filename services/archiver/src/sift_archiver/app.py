"""Composition root of the archiver: settings in; consumers, store and query API out.

The lifespan resolves the database (the embedded server when `SIFT_DATABASE_URL` is unset),
migrates it, opens the pool, then connects the broker and starts consuming. On SIGTERM
readiness turns 503 first; after a grace period the listener closes, the refresh schedule
stops, consuming stops taking messages, the open batch is written at once (its messages acked
after commit), the handlers in flight drain, the broker stops, and the gateway client, the
status connection and the pool close, in that order (`sift_common.service`); the process
exits 0.
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from sift_archiver import pool as database
from sift_archiver.api import QueryService, create_api
from sift_archiver.embedder import Embedder
from sift_archiver.ingest import DigestArchive, DocumentArchive, refresh_publisher
from sift_archiver.metrics import ArchiverMetrics, QueueGauges
from sift_archiver.refresh_schedule import run_refresh_schedule
from sift_archiver.search import SearchSettings
from sift_archiver.settings import ArchiverSettings
from sift_archiver.status import QueueDepths
from sift_archiver.topology import archiver_topology
from sift_common.contracts import DocumentAnalyzed, EntityDigested
from sift_common.gateway_client import GatewayClient
from sift_common.messaging.broker import make_broker
from sift_common.messaging.consumer import subscribe
from sift_common.messaging.inflight import InFlight
from sift_common.messaging.topology import (
    ARCHIVER_DIGESTS,
    ARCHIVER_DOCUMENTS,
    Topology,
)
from sift_common.service.checks import broker_check
from sift_common.service.lifespan import Shutdown, serving, start_consuming
from sift_common.service.readiness import Readiness
from sift_common.service.shell import Listener, run_service

logger = logging.getLogger("sift_archiver")


class Archiver:
    def __init__(self, settings: ArchiverSettings, topology: Topology | None = None) -> None:
        self.settings = s = settings
        self.topology = topology or archiver_topology(s)
        self.broker = make_broker(str(s.rabbit_url))
        self.inflight = InFlight(s.handler_budget_s)
        self.registry = CollectorRegistry()
        self.metrics = ArchiverMetrics.create(self.registry)
        self.gateway = GatewayClient(str(s.gateway_url), timeout_s=120.0, api_key=s.gateway_api_key)
        self.embedder = Embedder(
            self.gateway, s.archiver_embed_model, s.archiver_embedding_model_name
        )
        self._pool: asyncpg.Pool | None = None
        self.queue_depths = QueueDepths(str(s.rabbit_url), self.topology)
        self.queue_gauges = QueueGauges()
        self.registry.register(self.queue_gauges)
        self.documents: DocumentArchive | None = None
        self.readiness = Readiness(
            {"database": lambda: database.ping(self.pool), "broker": broker_check(self.broker)}
        )
        self.service = QueryService(
            pool=None,  # set in the lifespan, before any request
            embedder=self.embedder,
            search=SearchSettings(s.archiver_ef_search, s.archiver_max_scan_tuples),
            queue_depths=self.queue_depths,
        )
        self._subscribe()
        self.listener = Listener(s.archiver_host, s.archiver_port, s.archiver_drain_grace_s)
        self.api: FastAPI = create_api(
            self.service,
            s.api_keys.guard(self.registry),
            self.readiness,
            self.registry,
            self.lifespan,
            metrics_need_key=s.metrics_need_key,
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
            prefetch=prefetch, inflight=self.inflight, registry=self.registry,
        )  # fmt: skip
        subscribe(
            self.broker, self.topology, digests, on_digested,
            prefetch=8, inflight=self.inflight, registry=self.registry,
        )  # fmt: skip

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the database pool is not open")
        return self._pool

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        async with serving("archiver", self.readiness) as shutdown:
            shutdown.on_stop("gateway client", self.gateway.aclose)
            shutdown.on_stop("status connection", self.queue_depths.close)
            shutdown.background(
                "queue gauges", lambda stop: self.queue_gauges.run(self.queue_depths.states, stop)
            )
            documents = await self._open_store(shutdown)
            await start_consuming(shutdown, self, "archiver")
            shutdown.on_stop("open batch", documents.batcher.close)
            shutdown.on_stop("intake", self.inflight.stop_accepting)
            if self.settings.archiver_refresh_every_s > 0:
                shutdown.background("entity refresh schedule", self._refresh_schedule)
            logger.info("archiver started", extra={"namespace": self.settings.namespace})
            yield

    async def _open_store(self, shutdown: Shutdown) -> DocumentArchive:
        self._pool = self.service.pool = await database.open_store(self.settings)
        shutdown.on_stop("database pool", self._pool.close)
        s = self.settings
        self.documents = DocumentArchive(
            self._pool, self.embedder, self.metrics, refresh_publisher(self.broker, self.topology),
            batch_size=s.archiver_batch_size, batch_wait_s=s.archiver_batch_wait_s,
            chunk_words=s.archiver_chunk_words, chunk_overlap=s.archiver_chunk_overlap_words,
        )  # fmt: skip
        return self.documents

    async def _refresh_schedule(self, stop: asyncio.Event) -> None:
        window = timedelta(days=self.settings.archiver_refresh_window_days)
        await run_refresh_schedule(
            self.pool, refresh_publisher(self.broker, self.topology),
            every_s=self.settings.archiver_refresh_every_s, window=window, stop=stop,
        )  # fmt: skip


def main() -> None:
    run_service("archiver", ArchiverSettings, Archiver)


if __name__ == "__main__":
    main()
