"""Run only the source scheduler as a process: `python -m sift_collector.scheduling`.

Reads `CollectorSettings` (`SIFT_COLLECTOR_SOURCES` must name the sources YAML), declares the
topology under `SIFT_NAMESPACE`, and polls until SIGTERM/SIGINT; polls in progress then finish
(so no claim or file is left half-done) before the process exits. Redis keys, including the
source locks and dedup marks, are prefixed with the namespace, so replicas sharing a namespace
share the schedule.
"""

import asyncio
import logging
import signal

from sift_collector.dedup import Deduplicator
from sift_collector.normalise import Limits
from sift_collector.publisher import DocumentPublisher
from sift_collector.scheduler import Scheduler
from sift_collector.settings import CollectorSettings
from sift_collector.sources import load_sources
from sift_common.errors import ConfigError
from sift_common.logs import configure_logging
from sift_common.messaging.broker import declare_topology, make_broker
from sift_common.messaging.topology import Topology
from sift_common.redis_client import make_redis
from sift_common.settings import load_settings


async def serve(settings: CollectorSettings, stop: asyncio.Event) -> None:
    """Poll the configured sources until `stop` is set."""
    if settings.collector_sources is None:
        raise ConfigError("SIFT_COLLECTOR_SOURCES: the sources YAML is required here")
    sources = load_sources(settings.collector_sources)
    topology = Topology(settings.namespace)
    broker = make_broker(str(settings.rabbit_url))
    redis = make_redis(str(settings.redis_url))
    try:
        await broker.connect()
        await declare_topology(str(settings.rabbit_url), topology)
        dedup = Deduplicator(
            redis, window_s=settings.collector_dedup_window_s, prefix=settings.namespace
        )
        publisher = DocumentPublisher(
            broker, topology, dedup, confirm_timeout_s=settings.collector_confirm_timeout_s
        )
        scheduler = Scheduler(
            sources,
            redis,
            publisher,
            key_prefix=settings.namespace,
            limits=Limits(max_body_chars=settings.collector_max_body_chars),
        )
        await scheduler.run_forever(stop)
    finally:
        await broker.stop()
        await redis.aclose()


async def _run(settings: CollectorSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await serve(settings, stop)


def main() -> None:
    configure_logging("collector")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    try:
        asyncio.run(_run(load_settings(CollectorSettings)))
    except ConfigError as exc:
        raise SystemExit(f"sift-collector scheduling: {exc}") from None


if __name__ == "__main__":
    main()
