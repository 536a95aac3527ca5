"""The analysts' query API: scores over time, rankings, semantic search, documents, entities,
status (their bodies: `api_models`). Every route but the ops routes needs an `X-API-Key` with
the `query` scope (`sift_common.service.api_keys`).
Errors use the shared envelope (`sift_common.service.errors`); a dependency that is down is a
503 with `Retry-After` naming it (`gateway_unavailable`, `database_unavailable`, ...)."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Path, Query
from fastapi.responses import Response
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException

from sift_archiver import queries, search
from sift_archiver.api_models import (
    DocumentDetail,
    EntityDetail,
    RankingPage,
    ScorePage,
    SearchPage,
    Status,
)
from sift_archiver.api_support import Format, gateway_unavailable, list_response, time_range
from sift_archiver.embedder import Embedder
from sift_archiver.pagination import (
    MAX_SEARCH_OFFSET,
    BadParameter,
    cursor_after,
    cursor_offset,
    encode_cursor,
    next_offset_cursor,
)
from sift_archiver.queries import DocFilters
from sift_archiver.settings import QUERY_SCOPE
from sift_archiver.status import BrokerUnavailable, Depths
from sift_archiver.web import mount_page
from sift_common.classify import is_transient
from sift_common.gateway_client import GatewayUnavailableError
from sift_common.security.guard import KeyGuard
from sift_common.service.api_keys import require_api_key
from sift_common.service.errors import DependencyUnavailable, error_doc, install_error_handlers
from sift_common.service.ops import ops_router
from sift_common.service.readiness import Readiness

Kind = Literal["news", "review", "generic"]
# PostgreSQL refuses NUL in text: refused here with a 422 naming the parameter, not a 500 there.
NO_NUL = r"^[^\x00]*$"
EntityKey = Annotated[
    str,
    Path(min_length=3, max_length=400, pattern=r"^[^:\x00]+:[^\x00]+$", description="kind:name"),
]
FormatQ = Annotated[Format, Query(alias="format")]
Cursor = Annotated[str | None, Query(max_length=500)]
Limit = Annotated[int, Query(ge=1, le=1000)]
SourceQ = Annotated[str | None, Query(min_length=1, max_length=200, pattern=NO_NUL)]
LanguageQ = Annotated[str | None, Query(min_length=2, max_length=16, pattern=NO_NUL)]

ACQUIRE_TIMEOUT_S = 5.0  # waiting longer for a pooled connection: the database is in trouble

SCORE_COLUMNS = ["bucket_start", "count", "mean", "min", "max"]
RANKING_COLUMNS = ["entity_key", "kind", "name", "ticker", "mean_score", "documents"]
SEARCH_COLUMNS = ["document_id", "title", "source", "kind", "language", "published_at",
                  "distance", "score", "summary"]  # fmt: skip
CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with `format=csv`"}
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: error_doc("No such document or entity")}


@dataclass
class QueryService:
    pool: asyncpg.Pool
    embedder: Embedder
    search: search.SearchSettings
    queue_depths: Callable[[], Awaitable[Depths]]

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; PostgreSQL not answering (connect refused, connection lost,
        no connection free in time, a statement timed out) is a `DependencyUnavailable`."""
        try:
            async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
                yield conn
        except Exception as exc:
            if not is_transient(exc):
                raise
            detail = f"{type(exc).__name__}: {exc}"
            raise DependencyUnavailable(
                "database", "the database is not answering", detail=detail
            ) from exc

    async def embed_query(self, text: str) -> tuple[str, list[float]]:
        """The query's vector and the model that made it; the gateway not answering (or at
        capacity) is a `DependencyUnavailable`."""
        try:
            model, (vector,) = await self.embedder.embed([text], priority="interactive")
        except GatewayUnavailableError as exc:
            raise gateway_unavailable(exc) from exc
        return model, vector


def create_api(
    service: QueryService,
    guard: KeyGuard,
    readiness: Readiness,
    registry: CollectorRegistry,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    *,
    metrics_need_key: bool = False,
) -> FastAPI:
    app = FastAPI(
        title="Sift archiver query API",
        version="1",
        lifespan=lifespan,
        responses={
            401: error_doc("The API key is missing or unknown"),
            403: error_doc("The API key lacks the `query` scope"),
            422: error_doc("A parameter is wrong; `field` names it"),
            429: error_doc("Too many failed API-key attempts from this address", retry_after=True),
            503: error_doc("A dependency is down; `type` names it", retry_after=True),
        },
    )
    install_error_handlers(app)
    analyst = require_api_key(guard, QUERY_SCOPE)
    app.include_router(_router(service), dependencies=[Depends(analyst)])
    app.include_router(ops_router(readiness, registry, guard if metrics_need_key else None))
    mount_page(app)  # the analysts' web page (no key: it holds no data)
    return app


def _router(service: QueryService) -> APIRouter:
    router = APIRouter(prefix="/v1")
    _score_routes(router, service)
    _search_routes(router, service)
    _detail_routes(router, service)
    return router


def _score_routes(router: APIRouter, service: QueryService) -> None:
    @router.get(
        "/entities/{entity_key}/scores",
        tags=["scores"],
        response_model=ScorePage,
        responses={**CSV, **NOT_FOUND},
    )
    async def entity_scores(
        entity_key: EntityKey,
        bucket: Literal["hour", "day", "week"] = "day",
        since: datetime | None = None,
        until: datetime | None = None,
        source: SourceQ = None,
        kind: Kind | None = None,
        language: LanguageQ = None,
        cursor: Cursor = None,
        limit: Limit = 500,
        fmt: FormatQ = "json",
    ) -> Response:
        """Score of one entity over time: count, mean, min, max per bucket (UTC)."""
        start, end = time_range(since, until)
        after_time = cursor_after(cursor)
        filters = DocFilters(source, kind, language, start, end)
        async with service.connection() as conn:
            entity = await _entity_or_404(conn, entity_key)
            rows = await queries.scores(conn, entity, bucket, filters, after_time, limit + 1)
        next_cursor = (
            encode_cursor({"after": rows[limit - 1]["bucket_start"]}) if len(rows) > limit else None
        )
        return list_response(rows[:limit], next_cursor, fmt, SCORE_COLUMNS)

    @router.get("/rankings", tags=["scores"], response_model=RankingPage, responses=CSV)
    async def rankings(
        direction: Literal["top", "bottom"] = "top",
        window_days: Annotated[int, Query(ge=1, le=3650)] = 30,
        kind: Annotated[str | None, Query(min_length=1, max_length=50, pattern=NO_NUL)] = None,
        min_documents: Annotated[
            int, Query(ge=1, le=10_000, description="ignore entities with fewer documents")
        ] = 1,
        cursor: Cursor = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 10,
        fmt: FormatQ = "json",
    ) -> Response:
        """Entities with the highest (top) or lowest (bottom) mean score over a window.
        Scores are directional (0-100, 50 neutral), so top is best and bottom worst."""
        offset = cursor_offset(cursor)
        async with service.connection() as conn:
            rows = await queries.rankings(
                conn, direction, window_days, kind, offset, limit + 1, min_documents
            )
        next_cursor = next_offset_cursor(offset, limit, len(rows) > limit)
        return list_response(rows[:limit], next_cursor, fmt, RANKING_COLUMNS)


def _search_routes(router: APIRouter, service: QueryService) -> None:
    @router.get("/search", tags=["search"], response_model=SearchPage, responses=CSV)
    async def semantic_search(
        q: Annotated[
            str, Query(min_length=1, max_length=2000, pattern=NO_NUL, description="text to search")
        ],
        k: Annotated[int, Query(ge=1, le=100)] = 10,
        kind: Kind | None = None,
        source: SourceQ = None,
        language: LanguageQ = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: Cursor = None,
        fmt: FormatQ = "json",
    ) -> Response:
        """The k documents nearest to `q` in meaning (cosine), filtered; score = 1 − distance."""
        if not q.strip():
            raise BadParameter("q", "must not be blank")
        start, end = time_range(since, until)
        offset = cursor_offset(cursor, MAX_SEARCH_OFFSET)
        model, vector = await service.embed_query(q)
        filters = DocFilters(source, kind, language, start, end)
        async with service.connection() as conn:
            found = await search.nearest_documents(
                conn, vector, model, filters, offset + k + 1, service.search
            )
            page = found[offset : offset + k]
            described = await search.describe(conn, [doc for doc, _ in page])
        items = [
            {**described[doc], "distance": distance, "score": 1.0 - distance}
            for doc, distance in page
        ]
        more = len(found) > offset + k
        next_cursor = next_offset_cursor(offset, k, more, MAX_SEARCH_OFFSET)
        return list_response(items, next_cursor, fmt, SEARCH_COLUMNS)


def _detail_routes(router: APIRouter, service: QueryService) -> None:
    @router.get("/documents/{document_id}", tags=["documents"], responses=NOT_FOUND)
    async def get_document(
        document_id: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")],
    ) -> DocumentDetail:
        """A document with its analysis history (oldest first) and its entities."""
        async with service.connection() as conn:
            found = await queries.document(conn, document_id)
        if found is None:
            raise HTTPException(404, f"no document {document_id}")
        return DocumentDetail.model_validate(found)

    @router.get("/entities/{entity_key}", tags=["entities"], responses=NOT_FOUND)
    async def get_entity(
        entity_key: EntityKey, history: Annotated[int, Query(ge=1, le=500)] = 20
    ) -> EntityDetail:
        """An entity with its latest digest and its digest history (newest first)."""
        async with service.connection() as conn:
            found = await queries.entity(conn, entity_key, history)
        if found is None:
            raise HTTPException(404, f"no entity {entity_key}")
        return EntityDetail.model_validate(found)

    @router.get("/status", tags=["ops"])
    async def status() -> Status:
        """Queue depths and DLQ sizes of every consumer, and row counts of the store."""
        async with service.connection() as conn:
            counts = await queries.store_counts(conn)
        try:
            queues = await service.queue_depths()
        except BrokerUnavailable as error:
            raise DependencyUnavailable(
                "broker", "the broker is not answering", detail=str(error)
            ) from error
        return Status.model_validate({"queues": queues, "store": counts})


async def _entity_or_404(conn: asyncpg.Connection, key: str) -> int:
    found = await queries.entity_id(conn, key)
    if found is None:
        raise HTTPException(404, f"no entity {key}")
    return found
