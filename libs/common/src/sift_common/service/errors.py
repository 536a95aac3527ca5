"""The one error envelope of Sift's own HTTP APIs (the collector's and the archiver's; the LLM
gateway answers in OpenAI's shape instead).

    {"error": {"message": "...", "type": "invalid_request", "field": "documents[2].body",
               "errors": [{"field": "documents[2].body", "reason": "..."}]}}

`type` is a stable machine-readable kind; `field` names the request field at fault (null when
the error is not about one field) and `errors` lists every field at fault. A handler raises
`ApiError` (or `DependencyUnavailable`: 503 with `Retry-After`, type `<dependency>_unavailable`);
FastAPI's own refusals (validation, 404, 405) are answered in the same envelope.

No internals in a body: `message` is written for the client. What only an operator should
read (a dependency's address, an exception's text) goes in the error's `detail`, which is
logged, never answered; a 5xx answer, and any error with a detail, ends its message with
`(request id <id>)` and carries `X-Request-ID`, the id its log line has as `request_id` (the
caller's `X-Request-ID`, or the correlation id the service set, or a new one). An exception no
handler expected is a 500 `internal_error` with that id, its traceback in the log.
"""

import logging
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from sift_common.logs import correlation_id

RETRY_AFTER_S = 5
REQUEST_PARTS = ("query", "path", "header", "cookie", "body")
Location = Sequence[int | str]
REQUEST_ID_HEADER = "X-Request-ID"
logger = logging.getLogger("sift_common.service.errors")


class FieldError(BaseModel):
    field: str = Field(description="Where in the request: `documents[2].body`, `bucket`.")
    reason: str


class ErrorBody(BaseModel):
    message: str
    type: str = Field(description="Stable machine-readable kind, e.g. `invalid_request`.")
    field: str | None = Field(default=None, description="The field at fault, if one is.")
    errors: list[FieldError] = Field(default_factory=list, description="Every field at fault.")


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    """Answered as `status` with the envelope; `errors` are (field, reason) pairs; `detail`
    is logged with the request id, never answered."""

    def __init__(
        self,
        status: int,
        kind: str,
        message: str,
        *,
        errors: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message
        self.errors, self.headers = list(errors), dict(headers or {})
        self.detail = detail

    def response(self) -> JSONResponse:
        fields = [FieldError(field=field, reason=reason) for field, reason in self.errors]
        first = fields[0].field if fields else None
        body = ErrorBody(message=self.message, type=self.kind, field=first, errors=fields)
        content = ErrorResponse(error=body).model_dump()
        return JSONResponse(content, self.status, headers=self.headers)


class DependencyUnavailable(ApiError):
    """A dependency the request needs is down or at capacity: 503, naming it."""

    def __init__(
        self,
        dependency: str,
        message: str,
        retry_after_s: float | None = None,
        *,
        detail: str | None = None,
    ) -> None:
        self.dependency = dependency
        self.retry_after_s = retry_after_s or RETRY_AFTER_S
        retry_after = str(max(1, math.ceil(self.retry_after_s)))
        kind, headers = f"{dependency}_unavailable", {"Retry-After": retry_after}
        super().__init__(503, kind, message, headers=headers, detail=detail)


def error_doc(description: str, retry_after: bool = False) -> dict[str, Any]:
    """An OpenAPI `responses` entry for an error status."""
    doc: dict[str, Any] = {"model": ErrorResponse, "description": description}
    if retry_after:
        header = {"required": True, "schema": {"type": "integer", "minimum": 1}}
        doc["headers"] = {"Retry-After": {"description": "Seconds to wait", **header}}
    return doc


def field_name(parts: Location) -> str:
    """`("documents", 2, "body")` → `documents[2].body`."""
    name = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts)
    return name.lstrip(".") or "(request body)"


def request_field(location: Location) -> str:
    """A validation error's location without the part of the request it came from."""
    parts = list(location)
    return field_name(parts[1:] if parts and parts[0] in REQUEST_PARTS else parts)


def status_kind(status: int) -> str:
    """`404` → `not_found`: the error type of a status that says all there is to say."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return "error"
    return "_".join(phrase.lower().replace("-", " ").split())


def request_id(request: Request) -> str:
    """The id an operator finds the request's log lines by."""
    return correlation_id.get() or request.headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex


def referenced(request: Request, error: ApiError) -> Response:
    """The error's response; a 5xx or an error with a detail names the request id, and the
    detail is logged under it."""
    if error.detail is None and error.status < 500:
        return error.response()
    rid = request_id(request)[:200]
    if error.detail is not None:
        logger.warning(
            "%s %s answered %d %s: %s",
            request.method,
            request.url.path,
            error.status,
            error.kind,
            error.detail,
            extra={"request_id": rid},
        )
    message = f"{error.message} (request id {rid})"
    headers = {**error.headers, REQUEST_ID_HEADER: rid}
    copy = ApiError(error.status, error.kind, message, errors=error.errors, headers=headers)
    return copy.response()  # a copy: an error raised again must not collect ids


def install_error_handlers(
    app: FastAPI, field_of: Callable[[Location], str] = request_field
) -> None:
    """Answer `ApiError`, FastAPI's validation errors and HTTP errors in the envelope.

    `field_of` turns a validation error's location into the field name a client sent."""

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return referenced(request, exc)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        found = exc.errors()
        if any(problem["type"] == "json_invalid" for problem in found):
            detail = found[0].get("ctx", {}).get("error", "JSON decode error")
            return ApiError(400, "invalid_json", f"the body is not JSON: {detail}").response()
        fields = [(field_of(problem["loc"]), str(problem["msg"])) for problem in found]
        more = f" (and {len(fields) - 1} more)" if len(fields) > 1 else ""
        message = f"{fields[0][0]}: {fields[0][1]}{more}"
        return ApiError(422, "invalid_request", message, errors=fields).response()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        kind = status_kind(exc.status_code)
        return ApiError(exc.status_code, kind, str(exc.detail), headers=exc.headers).response()

    async def unexpected(request: Request, exc: Exception) -> Response:
        rid = request_id(request)[:200]
        logger.error(
            "unhandled error on %s %s",
            request.method,
            request.url.path,
            exc_info=exc,
            extra={"request_id": rid},
        )
        return referenced(request, ApiError(500, "internal_error", "internal error"))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(Exception, unexpected)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)
