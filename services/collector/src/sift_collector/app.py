"""Composition root of the collector: settings in, the ingest API + AMQP intake (+ scheduler).

`Collector(settings)` wires every part without touching the network, so the contract export
can build the very same broker and FastAPI app. The lifespan connects the broker, declares the
topology, starts the intake subscriber and, when `SIFT_COLLECTOR_SOURCES` names a sources YAML,
the source scheduler (replicas sharing a namespace share its schedule). On SIGTERM readiness
turns 503 first; after a grace period the server stops accepting, in-flight requests finish,
the scheduler stops (polls in progress finish), the intake drains, the broker stops and Redis
is closed, in that order (`sift_common.service`); the process exits 0.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from sift_collector.api import ApiLimits, create_api
from sift_collector.dedup import Deduplicator
from sift_collector.ingest import Ingest
from sift_collector.intake import document_outputs, register_intake
from sift_collector.normalise import Limits
from sift_collector.publisher import DocumentPublisher
from sift_collector.rate_limit import publisher_rate_limit
from sift_collector.settings import CollectorSettings
from sift_common.messaging.broker import make_broker
from sift_common.messaging.inflight import InFlight
from sift_common.messaging.topology import Topology
from sift_common.redis_client import make_redis
from sift_common.service.checks import broker_check, redis_check
from sift_common.service.lifespan import serving, start_consuming
from sift_common.service.readiness import Readiness
from sift_common.service.shell import Listener, run_service

if TYPE_CHECKING:
    from sift_collector.scheduler import Scheduler
    from sift_collector.sources import SourceConfig

logger = logging.getLogger("sift_collector")


class Collector:
    def __init__(self, settings: CollectorSettings) -> None:
        self.settings = s = settings
        self.broker = make_broker(str(s.rabbit_url))
        self.topology = Topology(s.namespace)
        self.redis = make_redis(str(s.redis_url))
        self.inflight = InFlight(s.handler_budget_s)
        dedup = Deduplicator(self.redis, window_s=s.collector_dedup_window_s, prefix=s.namespace)
        self.publisher = DocumentPublisher(
            self.broker, self.topology, dedup, confirm_timeout_s=s.collector_confirm_timeout_s
        )
        self.registry = CollectorRegistry()
        self.limits = Limits(max_body_chars=s.collector_max_body_chars)
        self.ingest = Ingest(self.publisher, self.limits, registry=self.registry)
        register_intake(
            self.broker, self.topology, self.ingest, inflight=self.inflight, registry=self.registry
        )
        document_outputs(self.broker, self.topology)
        self.sources = self._sources()
        self.readiness = Readiness(
            {"broker": broker_check(self.broker), "redis": redis_check(self.redis)}
        )
        self.listener = Listener(s.collector_host, s.collector_port)
        limits = ApiLimits(s.collector_max_batch, s.collector_max_request_bytes)
        self.api: FastAPI = create_api(
            self.ingest, s.api_keys.guard(self.registry), publisher_rate_limit(s), self.readiness,
            self.registry, limits=limits, lifespan=self.lifespan,
            metrics_need_key=s.metrics_need_key,
        )  # fmt: skip

    def _sources(self) -> "list[SourceConfig]":
        """The scheduled sources, read (and checked) now so a bad file stops the start-up."""
        if self.settings.collector_sources is None:
            return []
        from sift_collector.sources import load_sources  # only when sources are configured

        return load_sources(self.settings.collector_sources)

    def _scheduler(self) -> "Scheduler":
        from sift_collector.scheduler import Scheduler

        return Scheduler(
            self.sources, self.redis, self.publisher, key_prefix=self.settings.namespace,
            registry=self.registry, limits=self.limits,
        )  # fmt: skip

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        async with serving("collector", self.readiness) as shutdown:
            shutdown.on_stop("redis", self.redis.aclose)
            await start_consuming(shutdown, self, "collector")
            if self.sources:
                shutdown.background("source scheduler", self._scheduler().run_forever)
            logger.info("collector started", extra={"namespace": self.settings.namespace})
            yield


def main() -> None:
    run_service("collector", CollectorSettings, Collector)


if __name__ == "__main__":
    main()
