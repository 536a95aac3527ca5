"""The API-key door of the collector's and the archiver's FastAPI apps, on `KeyGuard`.

A key is presented in `X-API-Key`, or as `Authorization: Bearer <key>` (what Prometheus and
OpenAI-style clients send). `require_api_key(guard, scope)` is a dependency (the OpenAPI
document shows the `X-API-Key` scheme); `authenticate(request, guard, scope)` is the same check
for code that runs before FastAPI's dependencies (the collector checks the key before it reads
a body). Refusals use the shared envelope: 401 `missing_api_key` / `unknown_api_key` (with
`WWW-Authenticate`), 403 `forbidden` (a key without the route's scope), 429
`too_many_failed_attempts` or `rate_limited` with `Retry-After`.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from sift_common.security.guard import KeyGuard, Refused
from sift_common.security.keys import ApiKey, bearer
from sift_common.service.errors import ApiError

logger = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
API_KEY_SCHEME = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="API key")
_KINDS = {
    "missing": (401, "missing_api_key"),
    "unknown": (401, "unknown_api_key"),
    "forbidden": (403, "forbidden"),
    "throttled": (429, "too_many_failed_attempts"),
    "rate_limited": (429, "rate_limited"),
    "token_limited": (429, "token_limit_exceeded"),
}


def refusal(refused: Refused) -> ApiError:
    """The envelope answer to a refusal."""
    status, kind = _KINDS[refused.reason]
    headers = {"WWW-Authenticate": "ApiKey"} if status == 401 else {}
    if refused.retry_after_s is not None:
        headers["Retry-After"] = str(refused.retry_after_s)
    return ApiError(status, kind, f"{API_KEY_HEADER}: {refused.message}", headers=headers)


def authenticate(request: Request, guard: KeyGuard, scope: str) -> ApiKey:
    """The caller's key, or the `ApiError` to answer with."""
    client = request.client.host if request.client else "unknown"
    try:
        presented = request.headers.get(API_KEY_HEADER) or bearer(
            request.headers.get("Authorization")
        )
        return guard.check(presented, client, scope)
    except Refused as refused:
        logger.warning(
            "refused %s %s from %s: %s", request.method, request.url.path, client, refused.reason
        )
        raise refusal(refused) from None


def require_api_key(guard: KeyGuard, scope: str) -> Callable[..., Awaitable[ApiKey]]:
    """A dependency answering the caller's key (routes read `key.name`)."""

    async def caller(
        request: Request, _: Annotated[str | None, Security(API_KEY_SCHEME)] = None
    ) -> ApiKey:
        return authenticate(request, guard, scope)

    return caller
