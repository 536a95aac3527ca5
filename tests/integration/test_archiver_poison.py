"""A poison document inside a batch, against the real RabbitMQ, PostgreSQL + pgvector and the
real gateway (in front of a FAKE embeddings upstream: no vector meaning is needed here): the
batch is bisected, the poison alone is dead-lettered with its reason, the rest is stored."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from sift_archiver.pool import asyncpg_dsn
from sift_common.contracts import DocumentAnalyzed
from sift_common.messaging.topology import (
    ARCHIVER_DOCUMENTS,
    DEAD_LETTER_KIND_HEADER,
    DEAD_LETTER_REASON_HEADER,
    Topology,
)
from tests.support.archiver import (
    RunningArchiver,
    analyzed,
    archiver_settings,
    fake_embedding_gateway,
    handled,
    publish_raw,
    running_archiver,
    table_counts,
    topology,
    wait_for,
    with_json_infinity,
)
from tests.support.rabbit import drain, ready_count

pytestmark = pytest.mark.integration
__all__ = ["topology"]  # a fixture used by name


@pytest.fixture
async def archiver(
    rabbit_url: str, topology: Topology, fresh_database: str, tmp_path: Path
) -> AsyncIterator[RunningArchiver]:
    async with fake_embedding_gateway(tmp_path) as gateway:
        settings = archiver_settings(
            rabbit_url, topology.namespace, fresh_database, gateway.url,
            archiver_batch_size=16, archiver_batch_wait_s=1.5,
        )  # fmt: skip
        async with running_archiver(settings) as running:
            yield running


def valid_events() -> list[DocumentAnalyzed]:
    events = [
        analyzed(f"Note {n}", f"Market note {n}: shares of firm {n} moved {n} points.",
                 entities=(("company", f"Firm {n}", 50.0 + n),))
        for n in range(5)
    ]  # fmt: skip
    # NUL characters PostgreSQL refuses in text and JSONB: stripped, the document is stored.
    events.append(
        analyzed("Nul\x00 title", "A body with a NUL\x00 inside it.",
                 entities=(("company", "Nul\x00 Corp", 40.0),))
    )  # fmt: skip
    return events


async def test_a_poison_document_fails_alone_and_the_rest_of_its_batch_is_stored(
    rabbit_url: str, topology: Topology, fresh_database: str, archiver: RunningArchiver
) -> None:
    valid = valid_events()
    poison = analyzed("Poison", "This analysis carries a number that JSONB cannot store.")
    bodies = [event.model_dump_json().encode() for event in valid] + [with_json_infinity(poison)]
    await publish_raw(rabbit_url, topology, DocumentAnalyzed.ROUTING_KEY, bodies)
    dlq = topology.dead_letter_queue(ARCHIVER_DOCUMENTS)

    async def all_handled() -> bool:
        return handled(archiver.archiver) >= len(bodies)

    await wait_for(all_handled, timeout=60)
    await wait_for(lambda: _has_dead_letter(rabbit_url, dlq), timeout=30)
    await asyncio.sleep(1.0)  # any further dead letter would be published by now
    registry = archiver.archiver.registry
    assert registry.get_sample_value("sift_archiver_batch_size_count") == 1, "one batch"

    counts = await table_counts(fresh_database)
    assert counts["documents"] == len(valid)
    assert counts["analyses"] == len(valid)
    assert counts["embeddings"] == len(valid)
    (dead,) = await drain(rabbit_url, dlq)
    assert dead.headers[DEAD_LETTER_KIND_HEADER] == "invalid"
    reason = str(dead.headers[DEAD_LETTER_REASON_HEADER])
    assert poison.document.id in reason
    assert "Infinity" in reason
    conn = await asyncpg.connect(asyncpg_dsn(fresh_database))
    try:
        title = await conn.fetchval(
            "SELECT title FROM documents WHERE id = $1", valid[-1].document.id
        )
        names = await conn.fetch("SELECT name FROM entities ORDER BY name")
    finally:
        await conn.close()
    assert title == "Nul title"
    assert "Nul Corp" in {row["name"] for row in names}


async def _has_dead_letter(rabbit_url: str, queue: str) -> bool:
    return await ready_count(rabbit_url, queue) >= 1
