"""Operator endpoints: health, readiness, metrics, and /admin for profiles and aliases."""

import time

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sift_common.service.readiness import Check, Liveness, NotReady, Readiness
from sift_gateway.errors import ApiError, invalid_request
from sift_gateway.probes import Prober
from sift_gateway.registry import ProfileRuntime
from sift_gateway.request_log import RequestLogWriter
from sift_gateway.state import STATE_KEY, GatewayState

PROBER_KEY = web.AppKey("sift_gateway_prober", Prober)
READINESS_KEY = web.AppKey("sift_gateway_readiness", Readiness)


class ProfileNotReady(NotReady):
    """No replica of the profile passed a real completion recently; the message holds counts
    only (the open readiness answer), each replica's URL and last error are logged and served
    on the authenticated `/admin/upstreams`."""


def gateway_readiness(state: GatewayState, prober: Prober) -> Readiness:
    """Ready when every profile an alias points at has a replica that passed a real probe
    recently; the request log is advisory (reported, never blocks serving)."""

    def profile_checks() -> dict[str, Check]:  # aliases can move while the gateway runs
        return {
            f"profile:{runtime.name}": _profile_check(prober, runtime)
            for runtime in state.registry.active_profiles()
        }

    advisory = {} if state.request_log is None else {"request_log": _log_check(state.request_log)}
    return Readiness(profile_checks, advisory=advisory)


def _profile_check(prober: Prober, runtime: ProfileRuntime) -> Check:
    async def check() -> str:
        healthy = sum(replica.healthy for replica in runtime.replicas)
        counts = f"{healthy} of {len(runtime.replicas)} replicas healthy"
        if not prober.ready(runtime, time.monotonic()):
            detail = "; ".join(
                f"{r.url}: {r.last_error or 'no probe passed'}" for r in runtime.replicas
            )
            raise ProfileNotReady(f"{counts}, none passed a probe recently") from ConnectionError(
                detail
            )
        return counts

    return check


def _log_check(request_log: RequestLogWriter) -> Check:
    async def check() -> str:
        status = request_log.status()
        counts = f"{status['buffered']} buffered, {status['dropped']} dropped"
        if not status["ok"]:
            raise NotReady(f"writes failing ({counts})") from ConnectionError(status["last_error"])
        return counts

    return check


def _json(value: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(value), status=status, content_type="application/json")


async def live(request: web.Request) -> web.Response:
    return _json(Liveness().model_dump())


async def ready(request: web.Request) -> web.Response:
    """The same body as every Sift service's `/health/ready`: 200 when ready, else 503."""
    report = await request.app[READINESS_KEY].report()
    return _json(report.model_dump(), 200 if report.ready else 503)


async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    for runtime in state.registry.profiles.values():
        state.metrics.in_flight.labels(runtime.name).set(runtime.admission.in_flight)
        state.metrics.queued.labels(runtime.name).set(len(runtime.admission.waiters))
    body = generate_latest(state.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def admin_profiles(request: web.Request) -> web.Response:
    """Every profile with its replicas' status and hardware-fit estimate, and the aliases."""
    return _json(request.app[STATE_KEY].registry.describe())


async def admin_upstreams(request: web.Request) -> web.Response:
    now = time.monotonic()
    registry = request.app[STATE_KEY].registry
    return _json(
        {
            name: [replica.status(now) for replica in runtime.replicas]
            for name, runtime in registry.profiles.items()
        }
    )


async def admin_switch_alias(request: web.Request) -> web.Response:
    """PUT /admin/aliases/{alias} {"profile": name}: point an alias at another profile."""
    registry = request.app[STATE_KEY].registry
    alias = request.match_info["alias"]
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise invalid_request('body must be JSON: {"profile": "<name>"}') from None
    profile = body.get("profile") if isinstance(body, dict) else None
    if not isinstance(profile, str) or profile not in registry.profiles:
        known = ", ".join(sorted(registry.profiles))
        raise invalid_request(f"'profile' must name a known profile ({known})", "profile")
    current = registry.resolve(alias)
    target = registry.profiles[profile]
    if current is not None and current.profile.kind != target.profile.kind:
        raise ApiError(
            409,
            f"alias {alias!r} serves {current.profile.kind}; {profile!r} is {target.profile.kind}",
            error_type="invalid_request_error",
            param="profile",
        )
    registry.switch_alias(alias, profile)
    request.app.logger.info("alias %s now points at profile %s", alias, profile)
    return _json({"alias": alias, "profile": profile})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/admin/profiles", admin_profiles)
    app.router.add_get("/admin/upstreams", admin_upstreams)
    app.router.add_put("/admin/aliases/{alias}", admin_switch_alias)
