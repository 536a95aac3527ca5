"""What the query endpoints share: time ranges, list responses as JSON or CSV, and how the
gateway's failure is reported (a `DependencyUnavailable`: 503 with `Retry-After`, type
`gateway_unavailable`; the error envelope is `sift_common.service.errors`).
"""

from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from sift_archiver.pagination import BadParameter, to_csv
from sift_common.errors import OverloadedError
from sift_common.gateway_client import GatewayUnavailableError
from sift_common.service.errors import DependencyUnavailable

Format = Literal["json", "csv"]


def gateway_unavailable(exc: GatewayUnavailableError) -> DependencyUnavailable:
    """The gateway's failure as the API reports it: not answering at all, or answering that it
    cannot embed now (its upstream down, or at capacity). Where it should be and what it said
    go to the log (the error's detail), not to the client."""
    cause = exc.__cause__
    if isinstance(cause, httpx.RequestError):
        try:
            url = cause.request.url
            where = f" at {url.scheme}://{url.netloc.decode()}"
        except RuntimeError:  # an error raised before its request was attached
            where = ""
        detail = f"the LLM gateway{where}: {type(cause).__name__}: {cause}"
        return DependencyUnavailable("gateway", "the LLM gateway is not answering", detail=detail)
    retry_after = exc.retry_after_s if isinstance(exc, OverloadedError) else None
    message = "the LLM gateway could not embed the query"
    return DependencyUnavailable("gateway", message, retry_after, detail=str(exc))


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
