"""Composition root of the analyzer: settings in; document and digest consumers, health out.

`Analyzer(settings)` wires everything without touching the network. The lifespan connects the
broker, declares the topology (its own queues and the archiver's, so no analysis is published
before its consumer's queue exists) and starts consuming. On SIGTERM readiness turns 503 first;
after a grace period the server stops, the consumers stop taking messages, handlers in flight
get `SIFT_DRAIN_TIMEOUT_S` to finish (what is left is handed back to the broker), the broker
stops, and only then are the clients they use closed (`sift_common.service`); the process
exits 0.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from sift_analyzer.digest_store import DigestStore
from sift_analyzer.metrics import AnalyzerMetrics
from sift_analyzer.settings import AnalyzerSettings
from sift_analyzer.topology import analyzer_topology, observed
from sift_analyzer.workers import build_workers
from sift_common.contracts import Event
from sift_common.gateway_client import GatewayClient
from sift_common.messaging.broker import make_broker, publish_event
from sift_common.messaging.consumer import subscribe
from sift_common.messaging.inflight import InFlight
from sift_common.redis_client import make_redis
from sift_common.service.checks import broker_check, redis_check
from sift_common.service.lifespan import serving, start_consuming
from sift_common.service.ops import ops_router
from sift_common.service.readiness import Readiness
from sift_common.service.shell import Listener, run_service
from sift_common.store.engine import create_engine, resolve_database_url

logger = logging.getLogger("sift_analyzer")

CHECK_TIMEOUT_S = 3.0


class Analyzer:
    def __init__(self, settings: AnalyzerSettings) -> None:
        self.settings = s = settings
        self.metrics = AnalyzerMetrics()
        self.topology, docs_spec, refresh_spec = analyzer_topology(s)
        self.broker = make_broker(str(s.rabbit_url))
        self.redis = make_redis(str(s.redis_url))
        self.inflight = InFlight(s.handler_budget_s)
        self.engine = create_engine(resolve_database_url(s), pool_size=10)
        self.gateway = GatewayClient(
            str(s.gateway_url), timeout_s=s.analyzer_gateway_timeout_s, api_key=s.gateway_api_key
        )
        self.store = DigestStore(self.engine)
        self.documents, self.digests = build_workers(
            s, redis=self.redis, engine=self.engine, gateway=self.gateway, store=self.store,
            publish=self.publish, metrics=self.metrics,
        )  # fmt: skip
        documents = observed(self.documents.handle, docs_spec, self.metrics)
        subscribe(
            self.broker,
            self.topology,
            docs_spec,
            documents,
            prefetch=s.analyzer_prefetch,
            inflight=self.inflight,
            registry=self.metrics.registry,
        )
        digests = observed(self.digests.handle, refresh_spec, self.metrics)
        subscribe(
            self.broker,
            self.topology,
            refresh_spec,
            digests,
            prefetch=s.analyzer_digest_prefetch,
            inflight=self.inflight,
            registry=self.metrics.registry,
        )
        self.readiness = Readiness(
            {
                "broker": broker_check(self.broker, CHECK_TIMEOUT_S),
                "redis": redis_check(self.redis),
                "database": self.store.ping,
                "gateway": self.gateway.models,
            },
            timeout_s=CHECK_TIMEOUT_S,
        )
        self.listener = Listener(
            s.analyzer_host, s.analyzer_port, drain_grace_s=2.0, request_timeout_s=5.0
        )
        self.api = FastAPI(title="Sift analyzer", lifespan=self.lifespan)
        self.api.include_router(ops_router(self.readiness, self.metrics.registry))

    async def publish(self, event: Event) -> None:
        await publish_event(self.broker, self.topology, event)

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        async with serving("analyzer", self.readiness) as shutdown:
            shutdown.on_stop("database", self.engine.dispose)
            shutdown.on_stop("redis", self.redis.aclose)
            shutdown.on_stop("gateway client", self.gateway.aclose)
            await start_consuming(shutdown, self, "analyzer")
            logger.info("analyzer started", extra={"namespace": self.settings.namespace})
            yield


def main() -> None:
    run_service("analyzer", AnalyzerSettings, Analyzer)


if __name__ == "__main__":
    main()
