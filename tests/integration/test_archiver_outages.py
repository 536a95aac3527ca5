"""The query API and `sift` when a dependency is down: the LLM gateway (nothing listens where
it should) and the database (a pool pointed where nothing listens). Each answers 503 with
`Retry-After` and an error naming the dependency; the CLI says what to start."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from sift_archiver.api import QueryService, create_api
from sift_archiver.cli import app as cli
from sift_archiver.embedder import Embedder
from sift_archiver.search import SearchSettings
from sift_archiver.settings import QUERY_SCOPE
from sift_common.gateway_client import GatewayClient
from sift_common.messaging.topology import Topology
from sift_common.security.guard import KeyGuard
from sift_common.security.keys import KeyRing, parse_keys
from sift_common.service.readiness import Readiness
from tests.support.archiver import (
    API_KEY,
    HEADERS,
    RunningArchiver,
    archiver_settings,
    running_archiver,
    topology,
)
from tests.support.gateway import dead_url, free_port

pytestmark = pytest.mark.integration
__all__ = ["topology"]  # a fixture used by name


@pytest.fixture
async def no_gateway(
    rabbit_url: str, topology: Topology, fresh_database: str
) -> AsyncIterator[tuple[RunningArchiver, str]]:
    """The whole archiver, its gateway URL pointing where nothing listens."""
    gateway_url = dead_url()
    settings = archiver_settings(rabbit_url, topology.namespace, fresh_database, gateway_url)
    async with running_archiver(settings) as running:
        yield running, gateway_url


def assert_unavailable(response: httpx.Response, dependency: str) -> dict[str, Any]:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0
    error: dict[str, Any] = response.json()["error"]
    assert error["type"] == f"{dependency}_unavailable"
    return error


async def test_search_answers_503_naming_the_gateway_when_it_is_down(
    no_gateway: tuple[RunningArchiver, str], caplog: pytest.LogCaptureFixture
) -> None:
    running, gateway_url = no_gateway
    async with running.http() as http:
        response = await http.get("/v1/search", params={"q": "brake recall"})
        rankings = await http.get("/v1/rankings")  # needs no gateway: still answers
    error = assert_unavailable(response, "gateway")
    assert error["message"].startswith("the LLM gateway is not answering (request id ")
    assert gateway_url not in response.text, "where the gateway is stays in the log"
    request_id = response.headers["X-Request-ID"]
    logged = [r.getMessage() for r in caplog.records if getattr(r, "request_id", 0) == request_id]
    assert any(f"the LLM gateway at {gateway_url}: ConnectError" in line for line in logged)
    assert rankings.status_code == 200


async def test_sift_search_says_the_gateway_is_down_and_what_to_start(
    no_gateway: tuple[RunningArchiver, str],
) -> None:
    running, gateway_url = no_gateway
    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        ["--url", running.url, "--api-key", API_KEY, "search", "brake recall"],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    assert "the LLM gateway is not answering" in output
    assert gateway_url not in output
    assert "start it with `make gateway` (and `make vllm-up`)" in output
    assert "error 500" not in output  # (the request id in the message may hold "500")
    assert "Internal Server Error" not in output


@pytest.fixture
async def no_database() -> AsyncIterator[httpx.AsyncClient]:
    """The query API on a pool whose PostgreSQL does not listen (and a gateway that is never
    reached): what the API does when the database goes away under it."""
    pool = await asyncpg.create_pool(
        f"postgresql://postgres@127.0.0.1:{free_port()}/sift", min_size=0
    )
    gateway = GatewayClient(dead_url())
    service = QueryService(
        pool=pool,
        embedder=Embedder(gateway, "embed", None),
        search=SearchSettings(),
        queue_depths=_no_depths,
    )
    registry = CollectorRegistry()
    guard = KeyGuard(KeyRing(parse_keys({API_KEY: "tester"}, [QUERY_SCOPE])), registry)
    api = create_api(service, guard, Readiness({}), registry)
    transport = httpx.ASGITransport(app=api)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://archiver", headers=HEADERS
        ) as http:
            yield http
    finally:
        await gateway.aclose()
        await pool.close()


async def _no_depths() -> dict[str, dict[str, int | None]]:
    return {}


@pytest.mark.parametrize(
    "path",
    ["/v1/rankings", "/v1/status", "/v1/entities/company:acme", f"/v1/documents/{'0' * 64}"],
)
async def test_a_database_that_is_down_answers_503_naming_it(
    no_database: httpx.AsyncClient, path: str
) -> None:
    error = assert_unavailable(await no_database.get(path), "database")
    assert "the database is not answering" in error["message"]
