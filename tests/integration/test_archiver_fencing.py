"""Fencing in the store, against the real RabbitMQ, PostgreSQL + pgvector and the real gateway
(in front of a FAKE embeddings upstream): the analysis with the highest lease fencing token
wins, a fenced-out write is acked, logged and counted, never an error."""

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from sift_archiver.pool import asyncpg_dsn
from sift_common.contracts import DocumentAnalyzed
from sift_common.messaging.topology import ARCHIVER_DOCUMENTS, Topology
from tests.support.archiver import (
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
from tests.support.rabbit import ready_count

pytestmark = pytest.mark.integration
__all__ = ["topology"]  # a fixture used by name

TITLE, BODY = "Acme beats estimates", "Acme Corp reported quarterly profit above forecasts."


@pytest.fixture
async def archiver(
    rabbit_url: str, topology: Topology, fresh_database: str, tmp_path: Path
) -> AsyncIterator[RunningArchiver]:
    async with fake_embedding_gateway(tmp_path) as gateway:
        settings = archiver_settings(rabbit_url, topology.namespace, fresh_database, gateway.url)
        async with running_archiver(settings) as running:
            yield running


def by_worker(token: int | None, score: float, entity: str = "Acme Corp") -> DocumentAnalyzed:
    """The same document and analysis key, as analysed by the holder of lease `token`."""
    return analyzed(
        TITLE, BODY, score=score, fencing_token=token, entities=(("company", entity, score),)
    )


async def stored(database_url: str) -> tuple[int | None, float, dict[str, float]]:
    """The analysis's token and score, and the document's entity links with their scores."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        (analysis,) = await conn.fetch("SELECT fencing_token, score, result FROM analyses")
        links = await conn.fetch(
            "SELECT e.name, l.score FROM document_entities l JOIN entities e ON e.id = l.entity_id"
        )
    finally:
        await conn.close()
    assert json.loads(analysis["result"])["score"] == analysis["score"]
    return analysis["fencing_token"], analysis["score"], {r["name"]: r["score"] for r in links}


async def test_the_highest_fencing_token_wins_and_a_fenced_out_write_is_acked(
    rabbit_url: str,
    topology: Topology,
    fresh_database: str,
    archiver: RunningArchiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="sift_archiver")
    registry = archiver.archiver.registry
    delivered = 0

    async def deliver(event: DocumentAnalyzed) -> None:
        nonlocal delivered
        delivered += 1
        await publish_all(rabbit_url, topology, [event])

        async def done() -> bool:
            return handled(archiver.archiver) >= delivered

        await wait_for(done, timeout=60)

    def fenced_out() -> float | None:
        return registry.get_sample_value("sift_archiver_fenced_out_total")

    await deliver(by_worker(5, 55.0))
    assert await stored(fresh_database) == (5, 55.0, {"Acme Corp": 55.0})
    # A worker whose lease ran out, late: neither its analysis nor its entity links are kept.
    await deliver(by_worker(3, 33.0, entity="Globex"))
    assert await stored(fresh_database) == (5, 55.0, {"Acme Corp": 55.0})
    assert fenced_out() == 1
    (warning,) = [r for r in caplog.records if "fenced out" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert (warning.__dict__["fencing_token"], warning.__dict__["stored_fencing_token"]) == (3, 5)
    await deliver(by_worker(None, 11.0))  # a publisher without a lease never overwrites
    assert (await stored(fresh_database))[:2] == (5, 55.0)
    assert fenced_out() == 2
    await deliver(by_worker(7, 77.0))  # the next lease holder
    assert await stored(fresh_database) == (7, 77.0, {"Acme Corp": 77.0})
    await deliver(by_worker(7, 77.0))  # a replay of the same token rewrites the same
    assert (await stored(fresh_database))[:2] == (7, 77.0)
    assert fenced_out() == 2
    assert await ready_count(rabbit_url, topology.dead_letter_queue(ARCHIVER_DOCUMENTS)) == 0
    assert registry.get_sample_value("sift_archiver_batches_total", {"outcome": "stored"}) == 5
