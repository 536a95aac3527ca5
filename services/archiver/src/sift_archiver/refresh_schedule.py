"""Scheduled entity refreshes: digests stay fresh even for entities nothing new arrives about.

Every `every_s` the archiver publishes `entity.refresh` (reason "schedule") for each entity
that got documents within the recent window. Replicas may each publish the same refreshes:
the analyzer's lock and skip check turn the copies into at most one digest per entity, and
none while its last digest is younger than the digest interval.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import asyncpg

from sift_common.contracts import EntityRef, EntityRefresh

logger = logging.getLogger("sift_archiver")

# Entities with at least one document stored inside the window, oldest key first (stable).
_RECENT_ENTITIES = """
SELECT e.kind, e.name, e.ticker
FROM entities e
WHERE EXISTS (
    SELECT 1 FROM document_entities de JOIN documents d ON d.id = de.document_id
    WHERE de.entity_id = e.id AND d.stored_at > now() - $1::interval
)
ORDER BY e.kind, e.normalized_name
"""


async def recent_entities(pool: asyncpg.Pool, window: timedelta) -> list[EntityRef]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(_RECENT_ENTITIES, window)
    return [EntityRef(kind=row["kind"], name=row["name"], ticker=row["ticker"]) for row in rows]


async def publish_scheduled_refreshes(
    pool: asyncpg.Pool,
    publish: Callable[[EntityRefresh], Awaitable[None]],
    window: timedelta,
) -> int:
    """One round: a refresh per recent entity; returns how many were published."""
    entities = await recent_entities(pool, window)
    for entity in entities:
        await publish(EntityRefresh(correlation_id=entity.key, entity=entity, reason="schedule"))
    return len(entities)


async def run_refresh_schedule(
    pool: asyncpg.Pool,
    publish: Callable[[EntityRefresh], Awaitable[None]],
    *,
    every_s: float,
    window: timedelta,
    stop: asyncio.Event,
) -> None:
    """Rounds every `every_s` until `stop` is set; a failed round is logged and tried again."""
    while True:
        try:
            async with asyncio.timeout(every_s):
                await stop.wait()
                return
        except TimeoutError:
            pass
        try:
            published = await publish_scheduled_refreshes(pool, publish, window)
            logger.info("scheduled entity refreshes published", extra={"entities": published})
        except Exception:  # the schedule must outlive a database or broker hiccup
            logger.exception("scheduled entity refresh round failed; next round in %s s", every_s)
