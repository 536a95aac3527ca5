"""What every query endpoint shares: API keys, readiness, the error shape, list responses.

A dependency that does not answer (the LLM gateway, PostgreSQL, RabbitMQ) is a
`DependencyUnavailable`: 503 with `Retry-After`, the error's type naming the dependency
(`gateway_unavailable`, `database_unavailable`, `broker_unavailable`), never a bare 500.
"""

import math
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from sift_archiver.pagination import BadParameter, to_csv
from sift_common.errors import OverloadedError
from sift_common.gateway_client import GatewayUnavailableError

Format = Literal["json", "csv"]
Dependency = Literal["gateway", "database", "broker"]
RETRY_AFTER_S = 5


class DependencyUnavailable(Exception):
    """A dependency the request needs is down or at capacity: answered 503."""

    def __init__(
        self, dependency: Dependency, message: str, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.dependency = dependency
        self.retry_after_s = retry_after_s or RETRY_AFTER_S


class ErrorBody(BaseModel):
    message: str
    type: str
    field: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


def error(status: int, kind: str, message: str, field: str | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(message=message, type=kind, field=field))
    return JSONResponse(body.model_dump(), status_code=status)


def gateway_unavailable(exc: GatewayUnavailableError) -> DependencyUnavailable:
    """The gateway's failure as the API reports it: where it should be, when it does not
    answer at all; what it said, when it answered (its upstream down, or at capacity)."""
    cause = exc.__cause__
    if isinstance(cause, httpx.RequestError):
        try:
            url = cause.request.url
            where = f" at {url.scheme}://{url.netloc.decode()}"
        except RuntimeError:  # an error raised before its request was attached
            where = ""
        message = f"the LLM gateway{where} is not answering ({type(cause).__name__}: {cause})"
        return DependencyUnavailable("gateway", message)
    retry_after = exc.retry_after_s if isinstance(exc, OverloadedError) else None
    message = f"the LLM gateway could not embed the query ({exc})"
    return DependencyUnavailable("gateway", message, retry_after)


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(part) for part in loc if part not in ("query", "path", "header", "body")]
    return ".".join(parts) or "request"


def install_error_handlers(app: FastAPI) -> None:
    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0]
        field = _field_of(first.get("loc", ()))
        return error(422, "invalid_request", f"{field}: {first.get('msg')}", field)

    async def bad_parameter(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BadParameter)
        return error(422, "invalid_request", f"{exc.field}: {exc}", exc.field)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        kind = {401: "unauthorized", 404: "not_found"}.get(exc.status_code, "error")
        response = error(exc.status_code, kind, str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    async def unavailable(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DependencyUnavailable)
        response = error(503, f"{exc.dependency}_unavailable", str(exc))
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
        return response

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(DependencyUnavailable, unavailable)
    app.add_exception_handler(BadParameter, bad_parameter)
    app.add_exception_handler(HTTPException, http_error)


def as_utc(value: datetime | None) -> datetime | None:
    """Query times without an offset are read as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def time_range(since: datetime | None, until: datetime | None) -> tuple[datetime | None, ...]:
    since, until = as_utc(since), as_utc(until)
    if since is not None and until is not None and since >= until:
        raise BadParameter("until", "must be later than since")
    return since, until


def list_response(
    items: list[dict[str, Any]], next_cursor: str | None, fmt: Format, columns: list[str]
) -> Response:
    """`{"items", "next_cursor"}` as JSON, or the items as CSV (cursor in `X-Next-Cursor`)."""
    if fmt == "csv":
        headers = {"X-Next-Cursor": next_cursor} if next_cursor else {}
        return Response(to_csv(items, columns), media_type="text/csv", headers=headers)
    return JSONResponse(jsonable_encoder({"items": items, "next_cursor": next_cursor}))
