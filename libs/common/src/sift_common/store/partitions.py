"""Monthly partitions of `gateway.request_logs` (revision 0005): create the months ahead,
list them, drop the old ones.

One partition per UTC month, `request_logs_YYYY_MM`, holding `[first day, first of the next)`,
plus `request_logs_default` for a row outside every range, so the gateway's COPY is never
refused. PostgreSQL refuses to create a month's partition while the default one holds rows
of that month, so `ensure_partitions` moves those rows out and attaches the new month in one
transaction. The prune (`sift_common.ops.retention`) and `sift-db upgrade` call it, and the
nightly timer runs the prune, so months exist before their rows arrive.
"""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

import asyncpg
from alembic.runtime.environment import NameFilterParentNames, NameFilterType

SCHEMA = "gateway"
PARENT = "request_logs"
DEFAULT_PARTITION = f"{PARENT}_default"
MONTHS_AHEAD = 2

_MONTHLY = re.compile(rf"^{PARENT}_(\d{{4}})_(\d{{2}})$")
# Any fixed key: two upkeeps at once (upgrade and a prune) take turns instead of racing.
_LOCK_KEY = 0x51F70005

_COLUMNS = (
    "id, request_id, profile, model, upstream, status_code, prompt_tokens, completion_tokens, "
    "latency_ms, ttft_ms, error, created_at, caller, endpoint"
)


@dataclass(frozen=True, slots=True)
class Partition:
    """One monthly partition: its table name and the UTC month it holds."""

    name: str
    month: date

    @property
    def start(self) -> datetime:
        return datetime(self.month.year, self.month.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        following = add_months(self.month, 1)
        return datetime(following.year, following.month, 1, tzinfo=UTC)


def include_name(
    name: str | None, type_: NameFilterType, parent_names: NameFilterParentNames
) -> bool:
    """Alembic's `include_name` hook: autogenerate compares the parent with the model and
    leaves out its partitions, which no model maps."""
    if type_ != "table" or parent_names.get("schema_name") != SCHEMA or name is None:
        return True
    return name != DEFAULT_PARTITION and _MONTHLY.match(name) is None


def add_months(month: date, n: int) -> date:
    """The first day of the month `n` months after `month`'s (n may be negative)."""
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def partition_for(month: date) -> Partition:
    return Partition(f"{PARENT}_{month:%Y_%m}", date(month.year, month.month, 1))


async def monthly_partitions(connection: asyncpg.Connection) -> list[Partition]:
    """The monthly partitions attached now, oldest first (the default one is not listed)."""
    names = await connection.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = $1::regclass",
        f"{SCHEMA}.{PARENT}",
    )
    found = []
    for row in names:
        match = _MONTHLY.match(row["relname"])
        if match is not None:
            found.append(partition_for(date(int(match[1]), int(match[2]), 1)))
    return sorted(found, key=lambda partition: partition.month)


async def ensure_partitions(
    connection: asyncpg.Connection, months_ahead: int = MONTHS_AHEAD
) -> list[str]:
    """Create the missing partitions from the current month (server clock, UTC) through
    `months_ahead` ahead; rows of those months waiting in the default partition move into
    them. Idempotent; the names created."""
    if months_ahead < 0:
        raise ValueError(f"months_ahead must be 0 or more, got {months_ahead}")
    now: datetime = await connection.fetchval("SELECT now() AT TIME ZONE 'UTC'")
    this_month = date(now.year, now.month, 1)
    wanted = [partition_for(add_months(this_month, n)) for n in range(months_ahead + 1)]
    created = []
    for partition in wanted:
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            existing = {p.name for p in await monthly_partitions(connection)}
            if partition.name not in existing:
                await _create(connection, partition)
                created.append(partition.name)
    return created


async def _create(connection: asyncpg.Connection, partition: Partition) -> None:
    """Build the month as a plain table, move its rows out of the default partition, attach
    it: ATTACH checks that the default partition no longer holds any row of its range."""
    table = f"{SCHEMA}.{partition.name}"
    await connection.execute(
        f"CREATE TABLE {table} (LIKE {SCHEMA}.{PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    )
    await connection.execute(
        f"WITH moved AS (DELETE FROM {SCHEMA}.{DEFAULT_PARTITION} "  # noqa: S608  (constant names)
        f"WHERE created_at >= $1 AND created_at < $2 RETURNING {_COLUMNS}) "
        f"INSERT INTO {table} ({_COLUMNS}) SELECT {_COLUMNS} FROM moved",
        partition.start,
        partition.end,
    )
    await connection.execute(
        f"ALTER TABLE {SCHEMA}.{PARENT} ATTACH PARTITION {table} "
        f"FOR VALUES FROM ('{partition.start.isoformat()}') TO ('{partition.end.isoformat()}')"
    )


async def drop_partitions_before(connection: asyncpg.Connection, cutoff: datetime) -> list[str]:
    """Drop every monthly partition whose whole range lies before `cutoff`, each in its own
    short transaction; the names dropped, oldest first."""
    dropped = []
    for partition in await monthly_partitions(connection):
        if partition.end > cutoff:
            break
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            await connection.execute(f"DROP TABLE IF EXISTS {SCHEMA}.{partition.name}")
        dropped.append(partition.name)
    return dropped
