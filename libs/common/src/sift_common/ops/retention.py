"""Request-log retention on the monthly partitions of `gateway.request_logs` (revision 0005).

Every monthly partition whose whole range is older than the cutoff goes in one DROP TABLE: a
catalog change, no per-row WAL, no dead rows, the space back to the operating system at once.
What is left older than the cutoff (the month that straddles it, and the default partition) is
deleted in batches of `DEFAULT_BATCH` rows, each its own transaction found through the
`created_at` index, so no transaction holds its locks for long while the gateway keeps
inserting. The cutoff is fixed once, by the server's clock, so rows logged while the prune
runs are never its business. Each run first creates the months ahead
(`store.partitions.ensure_partitions`): the nightly prune is what keeps them ahead.
docs/maintenance.md has the schedule.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from sift_common.store import partitions

DEFAULT_BATCH = 10_000

_AGE = re.compile(r"^(\d+)([hdw])$")
_UNIT = {"h": "hours", "d": "days", "w": "weeks"}

# The oldest rows first, by the primary key of the rows the index finds below the cutoff.
_DELETE_BATCH = """
DELETE FROM gateway.request_logs
WHERE (id, created_at) IN (
    SELECT id, created_at FROM gateway.request_logs
    WHERE created_at < $1 ORDER BY created_at LIMIT $2
)
"""


@dataclass(frozen=True, slots=True)
class Pruned:
    """What a prune did: its cutoff, the partitions created ahead and dropped, rows deleted."""

    cutoff: datetime
    created: list[str]
    dropped: list[str]
    deleted: int


def parse_age(text: str) -> timedelta:
    """`36h`, `30d`, `8w` → a timedelta; ValueError otherwise (the caller names the option)."""
    match = _AGE.match(text.strip().lower())
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"expected a positive age like 36h, 30d or 8w, got {text!r}")
    return timedelta(**{_UNIT[match.group(2)]: int(match.group(1))})


async def prune_request_logs(
    connection: asyncpg.Connection,
    older_than: timedelta,
    *,
    batch: int = DEFAULT_BATCH,
    progress: Callable[[int], None] | None = None,
) -> Pruned:
    """Create the months ahead, drop the partitions wholly older than `older_than`, then
    delete the older rows left, in batches."""
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    cutoff: datetime = await connection.fetchval("SELECT now() - $1::interval", older_than)
    created = await partitions.ensure_partitions(connection)
    dropped = await partitions.drop_partitions_before(connection, cutoff)
    deleted = await _delete_in_batches(connection, cutoff, batch, progress)
    return Pruned(cutoff, created, dropped, deleted)


async def _delete_in_batches(
    connection: asyncpg.Connection,
    cutoff: datetime,
    batch: int,
    progress: Callable[[int], None] | None,
) -> int:
    total = 0
    while True:
        async with connection.transaction():
            status: str = await connection.execute(_DELETE_BATCH, cutoff, batch)
        deleted = int(status.split()[-1])  # "DELETE <n>"
        total += deleted
        if progress is not None and deleted:
            progress(total)
        if deleted < batch:
            return total
