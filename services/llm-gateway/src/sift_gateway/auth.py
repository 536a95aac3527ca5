"""The gateway's door: OpenAI-style `Authorization: Bearer <key>` on every route but health,
checked by the shared `KeyGuard` (constant-time, rotating key file, failed attempts counted
and throttled per client address).

Scopes: `inference` for `/v1/*` (chat, embeddings, models), `admin` for `/admin/*`, `metrics`
for `/metrics` where it is closed (production, unless `SIFT_OPEN_METRICS=true`). A key's
`priority` is the most urgent `x-sift-priority` class it may ask for: asking for more is
refused (403 `priority_not_allowed`), never silently clamped, so a caller learns its key's
limit at once; a request without the header gets `normal`, or the key's class if that is
less urgent. With no key configured (development only: production refuses to start so) the
gateway is open and says so in its log at start-up. The key's name rides on the request
(`CALLER_KEY`) into the request log's `caller` column.

A key's `rate_per_s` limits its requests; its `tokens_per_minute` budget is charged with each
answer's prompt + completion tokens (as the upstream reported them) once the answer is done,
and a key in debt waits until the budget refills.

Refusals are in OpenAI's envelope: 401 `invalid_api_key` (with `WWW-Authenticate: Bearer`),
403 `insufficient_scope` / `priority_not_allowed`, 429 `too_many_failed_attempts`,
`rate_limit_exceeded` or `token_limit_exceeded` with `Retry-After`.
"""

import logging
from typing import Any

from aiohttp import web

from sift_common.security.guard import KeyGuard, Refused
from sift_common.security.keys import METRICS_SCOPE, ApiKey, bearer
from sift_gateway.admission import PriorityClass
from sift_gateway.errors import ApiError
from sift_gateway.outcome import CALLER_KEY, OUTCOME_KEY
from sift_gateway.validation import PRIORITY_HEADER, priority_class

logger = logging.getLogger(__name__)

GUARD_KEY = web.AppKey("sift_gateway_guard", KeyGuard)
PRIORITY_KEY = web.RequestKey("sift_gateway_priority", PriorityClass)
INFERENCE, ADMIN = "inference", "admin"
OPEN_PATHS = frozenset({"/health/live", "/health/ready"})
METRICS_PATH = "/metrics"
METRICS_NEED_KEY = web.AppKey("sift_gateway_metrics_need_key", bool)
_REFUSALS = {
    "missing": (401, "invalid_request_error", "invalid_api_key"),
    "unknown": (401, "invalid_request_error", "invalid_api_key"),
    "forbidden": (403, "permission_error", "insufficient_scope"),
    "throttled": (429, "rate_limit_error", "too_many_failed_attempts"),
    "rate_limited": (429, "rate_limit_error", "rate_limit_exceeded"),
    "token_limited": (429, "rate_limit_error", "token_limit_exceeded"),
}


def scope_of(path: str, metrics_need_key: bool) -> str | None:
    """The scope a path needs; None: open."""
    if path in OPEN_PATHS:
        return None
    if path == METRICS_PATH:
        return METRICS_SCOPE if metrics_need_key else None
    return ADMIN if path == "/admin" or path.startswith("/admin/") else INFERENCE


@web.middleware
async def authenticate(request: web.Request, handler: Any) -> web.StreamResponse:
    guard = request.app[GUARD_KEY]
    scope = scope_of(request.path, request.app[METRICS_NEED_KEY])
    if scope is None or guard.open:
        response: web.StreamResponse = await handler(request)
        return response
    client = request.remote or "unknown"
    try:
        key = guard.check(bearer(request.headers.get("Authorization")), client, scope)
    except Refused as refused:
        logger.warning(
            "refused %s %s from %s: %s", request.method, request.path, client, refused.reason
        )
        raise refusal(refused) from None
    request[CALLER_KEY] = key.name  # the request log's `caller`
    if scope == INFERENCE:
        request[PRIORITY_KEY] = allowed_priority(key, request.headers)
    try:
        response = await handler(request)
    finally:
        outcome = request.get(OUTCOME_KEY)
        if outcome is not None:
            guard.charge(key, (outcome.prompt_tokens or 0) + (outcome.completion_tokens or 0))
    return response


def refusal(refused: Refused) -> ApiError:
    status, error_type, code = _REFUSALS[refused.reason]
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if refused.retry_after_s is not None:
        headers["Retry-After"] = str(refused.retry_after_s)
    return ApiError(status, refused.message, error_type=error_type, code=code, headers=headers)


def priority_cap(key: ApiKey) -> PriorityClass:
    """The most urgent class the key may ask for (unset: any)."""
    if key.priority is None:
        return PriorityClass.INTERACTIVE
    try:
        return PriorityClass[key.priority.strip().upper()]
    except KeyError:  # a key file edited by hand: the least urgent class, never more
        logger.error("key of %s: unknown priority %r, backfill used", key.name, key.priority)
        return PriorityClass.BACKFILL


def allowed_priority(key: ApiKey, headers: Any) -> PriorityClass:
    cap = priority_cap(key)
    asked = priority_class(headers)
    if PRIORITY_HEADER not in headers:
        return max(asked, cap)
    if asked < cap:
        raise ApiError(
            403,
            f"the key of {key.name} may ask for {cap.name.lower()} at most, "
            f"not {asked.name.lower()}",
            error_type="permission_error",
            param=PRIORITY_HEADER,
            code="priority_not_allowed",
        )
    return asked


def request_priority(request: web.Request) -> PriorityClass:
    """The request's priority class: as the door allowed it, or (an open gateway) as asked."""
    allowed = request.get(PRIORITY_KEY)
    return priority_class(request.headers) if allowed is None else allowed
