"""The error envelope: field names, status kinds, and FastAPI's own refusals in the envelope."""

from typing import Annotated

import httpx
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
        return {"limit": limit}

    return app


async def _get(path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path)


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
