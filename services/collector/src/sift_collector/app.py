"""Composition root of the collector: settings in, the ingest API + AMQP intake (+ scheduler).

`Collector(settings)` wires every part without touching the network, so the contract export
can build the very same broker and FastAPI app. The lifespan connects the broker, declares the
topology, starts the intake subscriber and, when `SIFT_COLLECTOR_SOURCES` is set, the source
scheduler. On SIGTERM readiness turns 503 first; after a grace period the server stops
accepting, in-flight requests finish, the scheduler and the intake stop (in-flight messages
finish, FastStream's graceful timeout), then the process exits 0.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import uvicorn
from fastapi import FastAPI
from faststream.rabbit import RabbitBroker
from limits import parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from prometheus_client import CollectorRegistry

from sift_collector.api import ApiLimits, PublisherRateLimit, create_api
from sift_collector.dedup import Deduplicator
from sift_collector.ingest import Ingest
from sift_collector.intake import document_outputs, register_intake
from sift_collector.normalise import Limits
from sift_collector.publisher import DocumentPublisher
from sift_collector.settings import CollectorSettings
from sift_common.draining import DrainingServer
from sift_common.errors import ConfigError
from sift_common.logs import configure_logging
from sift_common.messaging.broker import declare_topology, make_broker
from sift_common.messaging.inflight import InFlight
from sift_common.messaging.topology import Topology
from sift_common.readiness import Readiness
from sift_common.redis_client import make_redis
from sift_common.settings import load_settings

if TYPE_CHECKING:
    from sift_collector.sources import SourceConfig

logger = logging.getLogger("sift_collector")

DRAIN_GRACE_S = 3.0  # readiness 503 this long before the listener closes
HTTP_DRAIN_TIMEOUT_S = 30.0  # in-flight requests get this long to finish
CHECK_TIMEOUT_S = 2.0


class Collector:
    def __init__(
        self, settings: CollectorSettings, sources: "list[SourceConfig] | None" = None
    ) -> None:
        self.settings, self._sources = settings, sources
        self.broker: RabbitBroker = make_broker(str(settings.rabbit_url))
        self.topology = Topology(settings.namespace)
        self.redis = make_redis(str(settings.redis_url))
        self.inflight = InFlight(settings.handler_budget_s)
        dedup = Deduplicator(
            self.redis, window_s=settings.collector_dedup_window_s, prefix=settings.namespace
        )
        self.publisher = DocumentPublisher(
            self.broker,
            self.topology,
            dedup,
            confirm_timeout_s=settings.collector_confirm_timeout_s,
        )
        self.registry = CollectorRegistry()
        self.limits = Limits(max_body_chars=settings.collector_max_body_chars)
        self.ingest = Ingest(self.publisher, self.limits, registry=self.registry)
        register_intake(self.broker, self.topology, self.ingest, inflight=self.inflight)
        document_outputs(self.broker, self.topology)
        self.readiness = Readiness({"broker": self._broker_connected, "redis": self._redis_pong})
        self.api: FastAPI = create_api(
            self.ingest,
            settings.collector_api_keys,
            _rate_limit(settings),
            self.readiness,
            self.registry,
            limits=ApiLimits(
                max_batch=settings.collector_max_batch,
                max_request_bytes=settings.collector_max_request_bytes,
            ),
            lifespan=self.lifespan,
        )

    async def _broker_connected(self) -> None:
        if not await self.broker.ping(timeout=CHECK_TIMEOUT_S):
            raise ConnectionError("RabbitMQ connection is down")

    async def _redis_pong(self) -> None:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await self.redis.ping()

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        await self.broker.connect()
        await declare_topology(str(self.settings.rabbit_url), self.topology)
        await self.broker.start()
        stop = asyncio.Event()
        scheduler = self._start_scheduler(stop)
        logger.info("collector started", extra={"namespace": self.settings.namespace})
        try:
            yield
        finally:
            self.readiness.draining = True
            stop.set()
            await self._stop(scheduler)

    async def _stop(self, scheduler: "asyncio.Task[None] | None") -> None:
        """Stop each part even when an earlier one fails (a broker already gone, say)."""
        steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("scheduler", lambda: scheduler if scheduler is not None else asyncio.sleep(0)),
            ("messages in flight", lambda: self.inflight.drain(self.settings.drain_timeout_s)),
            ("broker", self.broker.stop),
            ("redis", self.redis.aclose),
        ]
        for name, step in steps:
            try:
                await step()
            except Exception:
                logger.exception("stopping the %s failed", name)
        logger.info("collector stopped")

    def _start_scheduler(self, stop: asyncio.Event) -> "asyncio.Task[None] | None":
        if not self._sources:
            return None
        from sift_collector.scheduler import Scheduler  # only when sources are configured

        scheduler = Scheduler(
            self._sources,
            self.redis,
            self.publisher,
            key_prefix=self.settings.namespace,
            registry=self.registry,
            limits=self.limits,
        )
        task = asyncio.create_task(scheduler.run_forever(stop), name="source-scheduler")
        task.add_done_callback(_report_if_failed)
        return task


def _report_if_failed(task: "asyncio.Task[None]") -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        logger.error("the source scheduler stopped: %r", error, exc_info=error)


def _rate_limit(settings: CollectorSettings) -> PublisherRateLimit:
    try:
        item = parse(settings.collector_rate_limit)
    except ValueError as exc:
        raise ConfigError(f"SIFT_COLLECTOR_RATE_LIMIT: {exc}") from exc
    storage = RedisStorage(
        f"async+{settings.redis_url}",
        implementation="redispy",
        key_prefix=f"{settings.namespace}sift:ratelimit",
        wrap_exceptions=True,
        socket_connect_timeout=CHECK_TIMEOUT_S,
        socket_timeout=5.0,
    )
    return PublisherRateLimit(MovingWindowRateLimiter(storage), item)


def load_sources(settings: CollectorSettings) -> "list[SourceConfig] | None":
    if settings.collector_sources is None:
        return None
    from sift_collector.sources import load_sources as load  # only when sources are configured

    return load(settings.collector_sources)


def main() -> None:
    configure_logging("collector")
    try:
        settings = load_settings(CollectorSettings)
        collector = Collector(settings, load_sources(settings))
    except ConfigError as exc:
        raise SystemExit(f"sift-collector: {exc}") from None
    config = uvicorn.Config(
        collector.api,
        host=settings.collector_host,
        port=settings.collector_port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=int(HTTP_DRAIN_TIMEOUT_S),
    )
    server = DrainingServer(config, collector.readiness, DRAIN_GRACE_S)
    server.run()
    if not server.started:
        raise SystemExit("sift-collector: start-up failed (see the log above)")
