"""Operator endpoints: health, readiness, metrics, and /admin for profiles and aliases
(alias switches: `switch.py`; where aliases live: `alias_store.py`, `alias_store_pg.py`)."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sift_common.service.readiness import Check, Liveness, NotReady, Readiness
from sift_gateway import demand
from sift_gateway.alias_store import AliasStoreUnavailableError, SwitchBusyError, SwitchRecord
from sift_gateway.errors import ApiError, invalid_request
from sift_gateway.outcome import CALLER_KEY
from sift_gateway.probes import Prober
from sift_gateway.registry import ProfileRuntime
from sift_gateway.request_log import RequestLogWriter
from sift_gateway.state import STATE_KEY, GatewayState
from sift_gateway.switch import Switcher
from sift_gateway.wake import AWAKE

SWITCH_BODY = '{"profile": "<name>"}'
PROBER_KEY = web.AppKey("sift_gateway_prober", Prober)
SWITCHER_KEY = web.AppKey("sift_gateway_switcher", Switcher)
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
            f"profile:{runtime.name}": _profile_check(state, prober, runtime)
            for runtime in state.registry.active_profiles()
        }

    advisory = {} if state.request_log is None else {"request_log": _log_check(state.request_log)}
    return Readiness(profile_checks, advisory=advisory)


def _profile_check(state: GatewayState, prober: Prober, runtime: ProfileRuntime) -> Check:
    async def check() -> str:
        healthy = sum(replica.healthy for replica in runtime.replicas)
        counts = f"{healthy} of {len(runtime.replicas)} replicas healthy"
        if not prober.ready(runtime, time.monotonic()):
            # Asleep or waking on purpose (`wake`): stay ready, or no request could reach
            # this gateway to wake the engine (docs/gateway.md, "Waking a stopped engine").
            if (sleeping := state.waker.status(runtime)) not in (None, AWAKE):
                return f"{sleeping}; {counts}"
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
    demand.observe(state, time.monotonic())
    body = generate_latest(state.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def admin_profiles(request: web.Request) -> web.Response:
    """Every profile with its replicas' status, hardware-fit estimate, demand, idle time and
    wake state, the aliases, and where the aliases live (`alias_store`: the database, or this
    process only)."""
    state = request.app[STATE_KEY]
    described, now = state.registry.describe(), time.monotonic()
    for name, runtime in state.registry.profiles.items():
        described["profiles"][name].update(demand.describe(state, runtime, now))
    described["alias_store"] = request.app[SWITCHER_KEY].store.status()
    return _json(described)


async def admin_upstreams(request: web.Request) -> web.Response:
    now = time.monotonic()
    registry = request.app[STATE_KEY].registry
    return _json(
        {
            name: [replica.status(now) for replica in runtime.replicas]
            for name, runtime in registry.profiles.items()
        }
    )


def _switch_target(request: web.Request, alias: str, body: dict[str, Any]) -> str:
    """A known profile of the alias's kind, from the JSON body."""
    registry = request.app[STATE_KEY].registry
    profile = body.get("profile")
    if not isinstance(profile, str) or profile not in registry.profiles:
        known = ", ".join(sorted(registry.profiles))
        raise invalid_request(f"'profile' must name a known profile ({known})", "profile")
    if registry.kind_conflict(alias, profile):
        current = registry.resolve(alias)
        kind = None if current is None else current.profile.kind
        raise ApiError(
            409,
            f"alias {alias!r} serves {kind}; {profile!r} is "
            f"{registry.profiles[profile].profile.kind}",
            error_type="invalid_request_error",
            param="profile",
        )
    return profile


async def json_object(request: web.Request, shape: str) -> dict[str, Any]:
    """The request's JSON object body; 400 showing `shape` otherwise."""
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise invalid_request(f"body must be a JSON object: {shape}")
    return body


def existing_alias(request: web.Request, why: str) -> str:
    """The path's alias, which must exist already (404 saying `why` otherwise)."""
    alias = request.match_info["alias"]
    if alias not in request.app[STATE_KEY].registry.aliases:
        raise ApiError(
            404,
            f"no alias {alias!r}: {why} (PUT /admin/aliases/{{alias}} creates one)",
            error_type="invalid_request_error",
        )
    return alias


def record_answer(record: SwitchRecord, done: str) -> web.Response:
    """A switch record: 200 when its outcome is `done`, else 409 (refused, rolled back)."""
    return _json(record.as_dict(), 200 if record.outcome == done else 409)


async def _switch(request: web.Request, alias: str, profile: str, force: bool) -> SwitchRecord:
    switcher = request.app[SWITCHER_KEY]
    with alias_store_errors(alias):
        record = await switcher.switch(alias, profile, request.get(CALLER_KEY), force=force)
    return record


@contextmanager
def alias_store_errors(alias: str) -> Iterator[None]:
    """A switch under way (here or on another replica) → 409; the store unreachable → 503."""
    try:
        yield
    except SwitchBusyError:
        raise ApiError(
            409,
            f"a switch of alias {alias!r} is under way; try again when it ends",
            error_type="invalid_request_error",
            code="switch_in_progress",
        ) from None
    except AliasStoreUnavailableError as exc:
        raise ApiError(
            503, f"the alias store cannot be written: {exc}", error_type="service_unavailable"
        ) from exc


async def admin_switch_alias(request: web.Request) -> web.Response:
    """PUT /admin/aliases/{alias} {"profile": name}: the forced switch, no fit check and no
    verification (an operator's override); written, shared and recorded like a safe one."""
    body = await json_object(request, SWITCH_BODY)
    alias = request.match_info["alias"]
    profile = _switch_target(request, alias, body)
    await _switch(request, alias, profile, force=True)
    return _json({"alias": alias, "profile": profile})


async def admin_safe_switch(request: web.Request) -> web.Response:
    """POST /admin/aliases/{alias}/switch {"profile": name}: fit check, warm-up, switch,
    verification, rollback (`switch.py`). 200 switched; 409 refused or rolled_back, with the
    numbers either way."""
    body = await json_object(request, SWITCH_BODY)
    profile = _switch_target(request, request.match_info["alias"], body)
    alias = existing_alias(request, "a safe switch needs a profile to roll back to")
    record = await _switch(request, alias, profile, force=False)
    return record_answer(record, "switched")


async def admin_alias_switches(request: web.Request) -> web.Response:
    """GET /admin/alias-switches?alias=chat&limit=20: the switch history, newest first."""
    alias = request.query.get("alias") or None
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        raise invalid_request("'limit' must be a whole number", "limit") from None
    if not 1 <= limit <= 1000:
        raise invalid_request("'limit' must be between 1 and 1000", "limit")
    try:
        rows = await request.app[SWITCHER_KEY].store.history(alias, limit)
    except AliasStoreUnavailableError as exc:
        raise ApiError(
            503, f"the alias store cannot be read: {exc}", error_type="service_unavailable"
        ) from exc
    return _json({"switches": rows})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/admin/profiles", admin_profiles)
    app.router.add_get("/admin/upstreams", admin_upstreams)
    app.router.add_put("/admin/aliases/{alias}", admin_switch_alias)
    app.router.add_post("/admin/aliases/{alias}/switch", admin_safe_switch)
    app.router.add_get("/admin/alias-switches", admin_alias_switches)
