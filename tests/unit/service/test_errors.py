"""The error envelope: field names, status kinds, and FastAPI's own refusals in the envelope."""

import logging
from typing import Annotated

import httpx
import pytest
from fastapi import FastAPI, Query

from sift_common.service.errors import (
    ApiError,
    DependencyUnavailable,
    field_name,
    install_error_handlers,
    request_field,
    status_kind,
)


def test_field_names_read_like_the_request() -> None:
    assert field_name(["documents", 2, "body"]) == "documents[2].body"
    assert field_name([]) == "(request body)"
    assert request_field(("query", "bucket")) == "bucket"
    assert request_field(("body", "subjects", 0, "name")) == "subjects[0].name"


def test_status_kinds() -> None:
    assert status_kind(404) == "not_found"
    assert status_kind(405) == "method_not_allowed"
    assert status_kind(401) == "unauthorized"
    assert status_kind(599) == "error"


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/items")
    async def items(limit: Annotated[int, Query(ge=1)] = 1) -> dict[str, int]:
        if limit == 7:
            raise ApiError(422, "invalid_request", "limit: not 7", errors=[("limit", "not 7")])
        if limit == 9:
            raise DependencyUnavailable("database", "the database is not answering", 2.5)
        if limit == 10:
            detail = "OSError: connect to postgresql://10.1.2.3:5432 refused"
            raise DependencyUnavailable("database", "the database is not answering", detail=detail)
        if limit == 11:
            raise RuntimeError("secret internals at http://10.1.2.3/admin")
        return {"limit": limit}

    return app


async def _get(path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, headers=headers)


async def test_validation_errors_name_the_field() -> None:
    response = await _get("/items?limit=0")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    assert error["field"] == "limit"
    assert error["message"].startswith("limit: ")
    assert [entry["field"] for entry in error["errors"]] == ["limit"]


async def test_api_errors_and_unavailable_dependencies() -> None:
    refused = await _get("/items?limit=7")
    assert refused.json() == {
        "error": {
            "message": "limit: not 7",
            "type": "invalid_request",
            "field": "limit",
            "errors": [{"field": "limit", "reason": "not 7"}],
        }
    }
    down = await _get("/items?limit=9")
    assert down.status_code == 503
    assert down.headers["Retry-After"] == "3"
    assert down.json()["error"]["type"] == "database_unavailable"
    assert down.json()["error"]["field"] is None


async def test_unknown_routes_answer_in_the_envelope() -> None:
    missing = await _get("/nowhere")
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "message": "Not Found",
        "type": "not_found",
        "field": None,
        "errors": [],
    }


def _logged(caplog: pytest.LogCaptureFixture, request_id: str) -> str:
    return "\n".join(
        f"{r.getMessage()} {r.exc_text or ''}"
        for r in caplog.records
        if getattr(r, "request_id", None) == request_id
    )


async def test_a_detail_is_logged_under_the_request_id_never_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "sift_common.service.errors")
    down = await _get("/items?limit=10", {"X-Request-ID": "req-7"})
    assert down.status_code == 503
    assert "10.1.2.3" not in down.text
    assert "OSError" not in down.text
    error = down.json()["error"]
    assert error["message"] == "the database is not answering (request id req-7)"
    assert error["type"] == "database_unavailable"
    assert down.headers["X-Request-ID"] == "req-7"
    assert "connect to postgresql://10.1.2.3:5432 refused" in _logged(caplog, "req-7")


async def test_an_unexpected_exception_is_a_500_with_the_request_id_and_no_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, "sift_common.service.errors")
    broken = await _get("/items?limit=11", {"X-Request-ID": "req-8"})
    assert broken.status_code == 500
    assert broken.json()["error"] == {
        "message": "internal error (request id req-8)",
        "type": "internal_error",
        "field": None,
        "errors": [],
    }
    assert "10.1.2.3" not in broken.text
    assert "Traceback" not in broken.text
    logged = _logged(caplog, "req-8")
    assert "secret internals at http://10.1.2.3/admin" in logged
    assert "Traceback" in logged
