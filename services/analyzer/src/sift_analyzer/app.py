"""Composition root of the analyzer: settings in; document and digest consumers, health out.

`Analyzer(settings)` wires everything without touching the network. The lifespan connects
Redis, the database and the broker, declares the topology (its own queues and the archiver's,
so no analysis is published before its consumer's queue exists) and starts consuming. On
SIGTERM readiness turns 503 first; after a grace period the server stops, the consumers stop
taking messages, handlers in flight get `SIFT_DRAIN_TIMEOUT_S` to finish (what is left is
handed back to the broker), and only then are the clients they use closed; the process exits 0.
"""

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import uvicorn
from fastapi import FastAPI

from sift_analyzer.analysis import DocumentAnalyzer, LockOptions
from sift_analyzer.api import Readiness, create_api
from sift_analyzer.cache import ResultCache
from sift_analyzer.digest import EntityDigester
from sift_analyzer.digest_store import DigestStore
from sift_analyzer.entities import load_known_entities
from sift_analyzer.llm import StructuredLlm
from sift_analyzer.metrics import AnalyzerMetrics
from sift_analyzer.profiles import Profiles, load_profiles
from sift_analyzer.settings import AnalyzerSettings
from sift_analyzer.topology import analyzer_topology, observed
from sift_common.contracts import Analysis, EntityDigested, Event
from sift_common.draining import DrainingServer
from sift_common.errors import ConfigError
from sift_common.gateway_client import GatewayClient
from sift_common.logs import configure_logging
from sift_common.messaging.broker import declare_topology, make_broker, publish_event
from sift_common.messaging.consumer import subscribe
from sift_common.messaging.inflight import InFlight
from sift_common.redis_client import make_redis
from sift_common.settings import load_settings
from sift_common.skip import AnalysisStateRepository
from sift_common.store.engine import create_engine, resolve_database_url, session_factory

logger = logging.getLogger("sift_analyzer")

DRAIN_GRACE_S = 2.0  # readiness 503 this long before consuming stops


class Analyzer:
    def __init__(self, settings: AnalyzerSettings) -> None:
        self.settings = s = settings
        self.metrics = AnalyzerMetrics()
        self.topology, docs_spec, refresh_spec = analyzer_topology(s)
        self.broker = make_broker(str(s.rabbit_url))
        self.redis = make_redis(str(s.redis_url))
        self.inflight = InFlight(s.handler_budget_s)
        self.engine = create_engine(resolve_database_url(s), pool_size=10)
        self.gateway = GatewayClient(str(s.gateway_url), timeout_s=s.analyzer_gateway_timeout_s)
        self.store = DigestStore(self.engine)
        self.documents, self.digests = self._workers(load_profiles(s.analyzer_profiles))
        documents = observed(self.documents.handle, docs_spec, self.metrics)
        subscribe(
            self.broker,
            self.topology,
            docs_spec,
            documents,
            prefetch=s.analyzer_prefetch,
            inflight=self.inflight,
        )
        digests = observed(self.digests.handle, refresh_spec, self.metrics)
        subscribe(
            self.broker,
            self.topology,
            refresh_spec,
            digests,
            prefetch=s.analyzer_digest_prefetch,
            inflight=self.inflight,
        )
        self.readiness = Readiness(
            {
                "broker": self._broker_connected,
                "redis": self._redis_pong,
                "database": self.store.ping,
                "gateway": self._gateway_answers,
            }
        )
        self.api: FastAPI = create_api(self.readiness, self.metrics.registry, self.lifespan)

    def _workers(self, profiles: Profiles) -> tuple[DocumentAnalyzer, EntityDigester]:
        s = self.settings
        state = AnalysisStateRepository(session_factory(self.engine))
        llm = StructuredLlm(self.gateway, self.metrics)
        locks = LockOptions(s.namespace, s.analyzer_lock_lease_ms, s.analyzer_lock_wait_s)
        shared: dict[str, Any] = {
            "llm": llm,
            "redis": self.redis,
            "state": state,
            "publish": self.publish,
            "metrics": self.metrics,
            "locks": locks,
        }
        ttl = s.analyzer_result_ttl_s
        documents = DocumentAnalyzer(
            profiles=profiles,
            cache=ResultCache(self.redis, Analysis, prefix=s.namespace, ttl_s=ttl),
            stale_after=timedelta(seconds=s.analyzer_stale_after_s),
            known=load_known_entities(s.analyzer_known_entities),
            **shared,
        )
        digests = EntityDigester(
            profile=profiles.digest,
            cache=ResultCache(self.redis, EntityDigested, prefix=s.namespace, ttl_s=ttl),
            store=self.store,
            policy=s.refresh_policy,
            top_k=s.analyzer_digest_top_k,
            max_score_distance=s.analyzer_digest_max_score_distance,
            **shared,
        )
        return documents, digests

    async def publish(self, event: Event) -> None:
        await publish_event(self.broker, self.topology, event)

    async def _broker_connected(self) -> None:
        if not await self.broker.ping(timeout=3.0):
            raise ConnectionError("RabbitMQ connection is down")

    async def _redis_pong(self) -> None:
        await self.redis.ping()

    async def _gateway_answers(self) -> None:
        await self.gateway.models()

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        await self.broker.connect()
        await declare_topology(str(self.settings.rabbit_url), self.topology)
        await self.broker.start()
        logger.info("analyzer started", extra={"namespace": self.settings.namespace})
        try:
            yield
        finally:
            self.readiness.draining = True
            await self._stop()

    async def _drain(self) -> None:
        handed_back = await self.inflight.drain(self.settings.drain_timeout_s)
        logger.info("consumers drained", extra={"handed_back": handed_back})

    async def _stop(self) -> None:
        """Stop each part even when an earlier one fails (a broker already gone, say)."""
        steps: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("messages in flight", self._drain),
            ("broker", self.broker.stop),
            ("gateway client", self.gateway.aclose),
            ("redis", self.redis.aclose),
            ("database", self.engine.dispose),
        ]
        for name, step in steps:
            try:
                await step()
            except Exception:
                logger.exception("stopping the %s failed", name)
        logger.info("analyzer stopped")


def main() -> None:
    configure_logging("analyzer")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per LLM call is noise
    try:
        settings = load_settings(AnalyzerSettings)
        analyzer = Analyzer(settings)
    except ConfigError as exc:
        raise SystemExit(f"sift-analyzer: {exc}") from None
    config = uvicorn.Config(
        analyzer.api,
        host=settings.analyzer_host,
        port=settings.analyzer_port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = DrainingServer(config, analyzer.readiness, DRAIN_GRACE_S)
    server.run()
    if not server.started:
        raise SystemExit("sift-analyzer: start-up failed (see the log above)")


if __name__ == "__main__":
    main()
