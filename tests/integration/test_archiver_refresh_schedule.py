"""Scheduled entity refreshes: one `entity.refresh` (reason "schedule") per entity with recent
documents, on the real broker and store; entities whose documents are all old get none."""

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from sift_archiver.ingest import refresh_publisher
from sift_archiver.pool import asyncpg_dsn
from sift_archiver.refresh_schedule import publish_scheduled_refreshes, run_refresh_schedule
from sift_common.contracts import EntityRef, EntityRefresh
from sift_common.messaging.broker import declare_topology, make_broker
from sift_common.messaging.topology import ANALYZER_ENTITY_REFRESH, Topology
from sift_common.store import migrate
from tests.support.analyzer_store import seed_document, seed_entity, unit_vector
from tests.support.archiver import topology
from tests.support.rabbit import drain

pytestmark = pytest.mark.integration
__all__ = ["topology"]  # a fixture used by name

RECENT = EntityRef(kind="company", name="Acme Robotics", ticker="ACMR")
OLD = EntityRef(kind="company", name="Old Mills")


@pytest.fixture
async def seeded_pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    await migrate.upgrade(fresh_database)
    engine = create_async_engine(fresh_database)
    rng = random.Random(7)
    recent_id = await seed_entity(engine, RECENT)
    old_id = await seed_entity(engine, OLD)
    await seed_document(engine, recent_id, "acme up", "Acme raised guidance.", unit_vector(rng))
    old_doc = await seed_document(engine, old_id, "mills", "Old Mills closed.", unit_vector(rng))
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE documents SET stored_at = now() - interval '90 days' WHERE id = :id"),
            {"id": old_doc},
        )
    await engine.dispose()
    pool = await asyncpg.create_pool(asyncpg_dsn(fresh_database), min_size=1, max_size=2)
    yield pool
    await pool.close()


async def test_a_round_refreshes_each_recent_entity_once(
    rabbit_url: str, topology: Topology, seeded_pool: asyncpg.Pool
) -> None:
    broker = make_broker(rabbit_url)
    await broker.connect()
    try:
        await declare_topology(rabbit_url, topology)
        publish = refresh_publisher(broker, topology)
        published = await publish_scheduled_refreshes(seeded_pool, publish, timedelta(days=30))
    finally:
        await broker.stop()
    assert published == 1
    queued = await drain(rabbit_url, topology.work_queue(ANALYZER_ENTITY_REFRESH))
    refreshes = [EntityRefresh.model_validate_json(message.body) for message in queued]
    assert [(r.entity.key, r.reason) for r in refreshes] == [(RECENT.key, "schedule")]
    assert queued[0].delivery_mode == 2  # persistent, like every event


async def test_the_schedule_repeats_until_stopped(seeded_pool: asyncpg.Pool) -> None:
    received: list[EntityRefresh] = []

    async def collect(event: EntityRefresh) -> None:
        received.append(event)

    stop = asyncio.Event()
    task = asyncio.create_task(
        run_refresh_schedule(
            seeded_pool, collect, every_s=0.2, window=timedelta(days=30), stop=stop
        )
    )
    while len(received) < 2:
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    rounds = len(received)
    await asyncio.sleep(0.5)
    assert len(received) == rounds  # nothing after stop
    assert {event.entity.key for event in received} == {RECENT.key}
