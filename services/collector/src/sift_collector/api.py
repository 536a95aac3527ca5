"""The ingest API: `POST /v1/documents` for upstream publishers, plus health and metrics.

Checks run cheapest first, before the body is parsed: API key (401), the publisher's rate
limit (429 + Retry-After), JSON content type (415), body size (413, from Content-Length and
from the bytes actually read). Then the body: not JSON (400); not a document or a batch, or a
document refused by normalisation (422, each error naming its field: `documents[2].body`, or
`body` for a single document). A batch is all or nothing: one refused document refuses the
batch and nothing is published. 202 comes only once the broker confirmed every new document;
a broker or Redis that is down answers 503 + Retry-After and keeps nothing claimed, so the
same request can simply be retried. Every error is `{"error": {"message", "type", "field",
"errors"}}`: `type` a stable code, `field` the field at fault (null when none), `errors` every
field at fault with its reason.
"""

import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body, FastAPI, Request, Response, Security
from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry, Counter
from starlette.types import Message

from sift_collector.api_models import Accepted, AcceptedDocument, DocumentBatch, Submission
from sift_collector.ingest import (
    BatchRejectedError,
    DependencyUnavailableError,
    Ingest,
    Rejection,
)
from sift_collector.publisher import BrokerUnavailableError
from sift_collector.rate_limit import PublisherRateLimit
from sift_collector.settings import INGEST_SCOPE
from sift_common.logs import correlation_id
from sift_common.security.guard import KeyGuard
from sift_common.service.api_keys import API_KEY_SCHEME, authenticate
from sift_common.service.errors import ApiError, error_doc, field_name, install_error_handlers
from sift_common.service.ops import ops_router
from sift_common.service.readiness import Readiness

logger = logging.getLogger(__name__)

UNAVAILABLE_RETRY_AFTER_S = 5
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
Guard = Callable[[Request], Awaitable[bytes]]


@dataclass(frozen=True)
class ApiLimits:
    max_batch: int = 500
    max_request_bytes: int = 10 * 1024**2


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: error_doc("The body is not JSON"),
    401: error_doc("The API key is missing or unknown"),
    403: error_doc("The API key lacks the `ingest` scope"),
    413: error_doc("The request body is over the byte limit (SIFT_COLLECTOR_MAX_REQUEST_BYTES)"),
    415: error_doc("The body is not sent as application/json"),
    422: error_doc("Not a document or batch, or a document was refused; `errors` names fields"),
    429: error_doc(
        "The publisher is over its rate limit, or its address made too many failed attempts",
        retry_after=True,
    ),
    503: error_doc("The broker or Redis is unavailable; nothing was kept", retry_after=True),
}


def create_api(
    ingest: Ingest,
    guard: KeyGuard,
    rate_limit: PublisherRateLimit,
    readiness: Readiness,
    registry: CollectorRegistry,
    *,
    limits: ApiLimits = ApiLimits(),
    lifespan: Lifespan | None = None,
    metrics_need_key: bool = False,
) -> FastAPI:
    """The collector's HTTP app; every resource is passed in (the composition root owns them)."""
    app = FastAPI(title="Sift collector", version="1.0.0", description=__doc__, lifespan=lifespan)
    install_error_handlers(app, _body_field)
    _add_request_metrics(app, registry)
    guarded = APIRouter(route_class=_guarded_route(_make_guard(guard, rate_limit, limits)))
    _add_ingest_route(guarded, ingest, limits)
    app.include_router(guarded)
    app.include_router(ops_router(readiness, registry, guard if metrics_need_key else None))
    return app


def _add_ingest_route(router: APIRouter, ingest: Ingest, limits: ApiLimits) -> None:
    @router.post(
        "/v1/documents",
        status_code=202,
        responses=_ERROR_RESPONSES,
        dependencies=[Security(API_KEY_SCHEME)],
        summary="Submit one document or a batch",
        response_description="Accepted: every new document is confirmed by the broker",
    )
    async def submit_documents(
        request: Request, submission: Annotated[Submission, Body()]
    ) -> Accepted:
        """The body is one document, or `{"documents": [...], "priority": ...}`. Documents
        keep their `source`; the publisher's name is written to `metadata.publisher`."""
        publisher: str = request.state.publisher
        if isinstance(submission, DocumentBatch):
            documents, priority, batch = submission.documents, submission.priority, True
        else:
            documents, priority, batch = [submission], "normal", False
        if len(documents) > limits.max_batch:
            message = f"{len(documents)} documents; at most {limits.max_batch} per request"
            raise ApiError(422, "batch_too_large", message, errors=[("documents", message)])
        try:
            result = await ingest.submit(documents, publisher, priority)
        except BatchRejectedError as exc:
            errors = [(_rejected_field(batch, r), r.reason) for r in exc.rejections]
            raise ApiError(
                422, "document_rejected", "nothing was published", errors=errors
            ) from exc
        except (BrokerUnavailableError, DependencyUnavailableError) as exc:
            raise _unavailable(exc) from exc
        logger.info(
            "accepted %d documents from %s",
            len(documents),
            publisher,
            extra={"published": result.published, "duplicates": result.duplicates},
        )
        return Accepted(
            accepted=[AcceptedDocument(id=o.id, status=o.status) for o in result.outcomes]
        )


def _rejected_field(batch: bool, rejection: Rejection) -> str:
    return f"documents[{rejection.index}].{rejection.field}" if batch else rejection.field


def _unavailable(exc: Exception) -> ApiError:
    """The envelope logs the detail under the request id the answer names."""
    message = "the pipeline cannot take documents right now; nothing was kept, retry later"
    return ApiError(
        503,
        "unavailable",
        message,
        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)},
        detail=f"dependency unavailable: {type(exc).__name__}: {exc}",
    )


def _make_guard(keys: KeyGuard, rate_limit: PublisherRateLimit, limits: ApiLimits) -> Guard:
    async def guard(request: Request) -> bytes:
        publisher = authenticate(request, keys, INGEST_SCOPE).name
        request.state.publisher = publisher
        try:
            retry_after = await rate_limit.retry_after(publisher)
        except DependencyUnavailableError as exc:
            raise _unavailable(exc) from exc
        if retry_after is not None:
            headers = {"Retry-After": str(retry_after)}
            message = f"publisher {publisher!r} is over its rate limit"
            raise ApiError(429, "rate_limited", message, headers=headers)
        if not _is_json(request.headers.get("content-type")):
            raise ApiError(415, "unsupported_media_type", "send Content-Type: application/json")
        return await _read_body(request, limits.max_request_bytes)

    return guard


def _is_json(content_type: str | None) -> bool:
    media_type = (content_type or "").split(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def _read_body(request: Request, max_bytes: int) -> bytes:
    too_large = ApiError(413, "body_too_large", f"the request body is over {max_bytes} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _guarded_route(guard: Guard) -> type[APIRoute]:
    """A route whose guard runs before FastAPI reads and parses the body."""

    class GuardedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Response:
                body = await guard(request)
                return await handler(_replaying(request, body))

            return guarded

    return GuardedRoute


def _replaying(request: Request, body: bytes) -> Request:
    """The same request, with its already-read body handed to FastAPI's parser again."""
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await request.receive()

    return Request(request.scope, receive)


def _body_field(location: Sequence[int | str]) -> str:
    return field_name(list(location)[2:])  # ("body", tag, ...): the tag is ours, not the sender's


def _add_request_metrics(app: FastAPI, registry: CollectorRegistry) -> None:
    requests = Counter(
        "sift_collector_http_requests",
        "HTTP requests answered, by route and status",
        ["route", "status"],
        registry=registry,
    )

    @app.middleware("http")
    async def count(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        correlation_id.set(request_id)
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
        finally:
            route = getattr(request.scope.get("route"), "path", "unmatched")
            requests.labels(route, str(status)).inc()
        response.headers["X-Request-ID"] = request_id[:200]
        return response
