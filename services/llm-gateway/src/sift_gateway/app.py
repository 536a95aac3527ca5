"""Composition root of the LLM gateway: settings in, a running aiohttp server out."""

import asyncio
import gc
import logging
import signal
from collections.abc import AsyncIterator

import aiohttp
import uvloop
from aiohttp import web
from sqlalchemy.engine import make_url

from sift_common.errors import ConfigError
from sift_common.logs import configure_logging
from sift_common.settings import load_or_exit
from sift_common.store.engine import resolve_database_url
from sift_gateway import admin_split, ops
from sift_gateway.alias_store import AliasStore, MemoryAliasStore
from sift_gateway.alias_store_pg import PostgresAliasStore
from sift_gateway.auth import GUARD_KEY, METRICS_NEED_KEY, authenticate
from sift_gateway.chat import chat_completions
from sift_gateway.embeddings import embeddings, list_models
from sift_gateway.errors import MAX_BODY_KEY, openai_errors
from sift_gateway.metrics import GatewayMetrics
from sift_gateway.probes import Prober
from sift_gateway.profiles import ProfileError, load_config
from sift_gateway.registry import Registry
from sift_gateway.replay import Replays
from sift_gateway.request_log import RequestLogWriter
from sift_gateway.settings import GatewayServiceSettings
from sift_gateway.state import STATE_KEY, GatewayState
from sift_gateway.switch import Switcher
from sift_gateway.upstream import UpstreamCaller
from sift_gateway.wake import Waker

logger = logging.getLogger("sift_gateway")


def build_app(settings: GatewayServiceSettings) -> web.Application:
    try:
        registry = Registry(load_config(settings.gateway_profiles))
    except ProfileError as exc:
        raise ConfigError(f"SIFT_GATEWAY_PROFILES: {exc}") from exc
    metrics = GatewayMetrics()
    guard = settings.api_keys.guard(metrics.registry)
    if guard.open:
        logger.warning(
            "no SIFT_GATEWAY_API_KEYS: the gateway, /admin included, answers anyone who can "
            "reach it (development only; SIFT_ENV=production refuses this)"
        )
    app = web.Application(
        middlewares=[openai_errors, authenticate],
        client_max_size=settings.gateway_max_request_bytes,
    )
    app[GUARD_KEY], app[MAX_BODY_KEY] = guard, settings.gateway_max_request_bytes
    app[METRICS_NEED_KEY] = settings.metrics_need_key
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", list_models)
    ops.add_routes(app)
    admin_split.add_routes(app)

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
        session = aiohttp.ClientSession(connector=connector, raise_for_status=False)
        request_log = _request_log(settings, metrics)
        caller = UpstreamCaller(session, metrics)
        prober = Prober(
            registry,
            session,
            interval_s=settings.gateway_probe_interval_s,
            timeout_s=settings.gateway_probe_timeout_s,
            stall_after_s=settings.gateway_engine_stall_s,
        )
        waker = Waker(session, metrics, prober.probe)
        state = GatewayState(
            registry, metrics, session, caller, request_log, waker, settings.request_limits,
            replays=Replays(settings.gateway_replay_ttl_s, settings.gateway_replay_max_answers),
        )  # fmt: skip
        readiness = ops.gateway_readiness(state, prober)
        app[STATE_KEY], app[ops.PROBER_KEY], app[ops.READINESS_KEY] = state, prober, readiness
        aliases = await _alias_store(settings, registry)
        app[ops.SWITCHER_KEY] = Switcher(
            registry, aliases, session, timeout_s=settings.gateway_probe_timeout_s
        )
        if request_log is not None:
            request_log.start()
        await prober.probe_all()  # warm-up: readiness reflects a real completion from the start
        prober.start()
        yield
        readiness.draining = True
        await prober.close()
        await waker.close()
        if isinstance(aliases, PostgresAliasStore):
            await aliases.close()
        if request_log is not None:
            await request_log.close()
        await session.close()

    app.cleanup_ctx.append(lifespan)
    return app


def _request_log(
    settings: GatewayServiceSettings, metrics: GatewayMetrics
) -> RequestLogWriter | None:
    if not settings.gateway_request_log:
        return None
    return RequestLogWriter(_dsn(settings), metrics)


async def _alias_store(settings: GatewayServiceSettings, registry: Registry) -> AliasStore:
    """Aliases in the database whenever the gateway has one (SIFT_DATABASE_URL, or the request
    log's database); otherwise in this process only, which /admin/profiles says."""
    if settings.database_url is None and not settings.gateway_request_log:
        logger.warning("no database: aliases and switches live in this process only")
        return MemoryAliasStore(registry)
    store = PostgresAliasStore(_dsn(settings), registry)
    await store.start()
    return store


def _dsn(settings: GatewayServiceSettings) -> str:
    url = make_url(resolve_database_url(settings)).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


async def serve(settings: GatewayServiceSettings) -> None:
    """Run until SIGTERM/SIGINT; then readiness goes 503, in-flight requests drain, exit."""
    app = build_app(settings)
    runner = web.AppRunner(
        app, access_log=None, shutdown_timeout=settings.gateway_shutdown_timeout_s
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.gateway_host, settings.gateway_port, backlog=2048)
    await site.start()
    # Everything loaded so far lives as long as the process: keep it out of the cyclic GC so
    # full collections stay short (they showed as tail-latency spikes).
    gc.collect()
    gc.freeze()
    logger.info("gateway listening on http://%s:%d", settings.gateway_host, settings.gateway_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    logger.info("shutting down: readiness 503, draining in-flight requests")
    app[ops.READINESS_KEY].draining = True
    await asyncio.sleep(settings.gateway_drain_grace_s)
    await runner.cleanup()


def main() -> None:
    settings = load_or_exit("gateway", GatewayServiceSettings)
    configure_logging("llm-gateway", settings.log_level)
    try:
        uvloop.run(serve(settings))
    except ConfigError as exc:
        raise SystemExit(f"sift-gateway: {exc}") from None
