"""Operator endpoints: health, readiness, metrics, and /admin for profiles and aliases."""

import time

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sift_gateway.errors import ApiError, invalid_request
from sift_gateway.probes import Prober
from sift_gateway.state import STATE_KEY

PROBER_KEY = web.AppKey("sift_gateway_prober", Prober)


def _json(value: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(value), status=status, content_type="application/json")


async def live(request: web.Request) -> web.Response:
    return _json({"status": "alive"})


async def ready(request: web.Request) -> web.Response:
    """200 only when every active profile passed a real completion recently and we are not
    draining. The request log is reported but never blocks serving."""
    state, prober = request.app[STATE_KEY], request.app[PROBER_KEY]
    now = time.monotonic()
    profiles = {
        runtime.name: prober.ready(runtime, now) for runtime in state.registry.active_profiles()
    }
    is_ready = not state.draining and all(profiles.values())
    details = {
        "status": "ready" if is_ready else "not ready",
        "draining": state.draining,
        "profiles": profiles,
        "request_log": state.request_log.status() if state.request_log else "disabled",
    }
    return _json(details, 200 if is_ready else 503)


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
