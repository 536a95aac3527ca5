"""Request-log retention: delete `gateway.request_logs` rows older than an age, in batches.

One DELETE of a month of logs would hold its row locks and bloat WAL for as long as it runs,
and the gateway inserts into the same table all the while. Batches of `DEFAULT_BATCH` rows,
each its own transaction and each found through the `created_at` index, keep every
transaction short. The cutoff is fixed once, by the server's clock, so rows logged while the
prune runs are never its business. docs/maintenance.md has the schedule, the VACUUM that
follows a large prune and the partitioned design that would make this a DROP.
"""

import re
from collections.abc import Callable
from datetime import datetime, timedelta

import asyncpg

DEFAULT_BATCH = 10_000

_AGE = re.compile(r"^(\d+)([hdw])$")
_UNIT = {"h": "hours", "d": "days", "w": "weeks"}

# The oldest rows first, by the primary key of the rows the index finds below the cutoff.
_DELETE_BATCH = """
DELETE FROM gateway.request_logs
WHERE id IN (
    SELECT id FROM gateway.request_logs WHERE created_at < $1 ORDER BY created_at LIMIT $2
)
"""


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
) -> tuple[datetime, int]:
    """Delete the request logs older than `older_than`; the cutoff and how many went."""
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    cutoff: datetime = await connection.fetchval("SELECT now() - $1::interval", older_than)
    total = 0
    while True:
        async with connection.transaction():
            status: str = await connection.execute(_DELETE_BATCH, cutoff, batch)
        deleted = int(status.split()[-1])  # "DELETE <n>"
        total += deleted
        if progress is not None and deleted:
            progress(total)
        if deleted < batch:
            return cutoff, total
