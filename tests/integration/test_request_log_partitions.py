"""`gateway.request_logs` partitioned by month (revision 0005), against the real store: the
gateway's own writer COPYs rows into their months, a row outside every month lands in the
default partition and moves to its month once `ensure_partitions` creates it, and the
migration up and down keeps every row and id, and a backup restores them."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from sift_common.store import migrate
from sift_common.store.partitions import add_months, ensure_partitions
from sift_gateway.metrics import GatewayMetrics
from sift_gateway.request_log import LogRow, RequestLogWriter
from tests.support.ops_cli import run_cli

pytestmark = pytest.mark.integration

DEFAULT = "gateway.request_logs_default"


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def connect(url: str) -> asyncpg.Connection:
    """Plain asyncpg (no pgvector codec: the database may not be migrated yet)."""
    return await asyncpg.connect(_dsn(url))


@pytest.fixture
async def migrated(fresh_database: str) -> str:
    await migrate.upgrade(fresh_database)
    return fresh_database


@pytest.fixture
async def connection(migrated: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect(migrated)
    yield connection
    await connection.close()


def _month_table(moment: datetime) -> str:
    return f"gateway.request_logs_{moment.astimezone(UTC):%Y_%m}"


async def _server_month(connection: asyncpg.Connection) -> date:
    now: datetime = await connection.fetchval("SELECT now() AT TIME ZONE 'UTC'")
    return date(now.year, now.month, 1)


def _at(month: date, day: int, hour: int = 12) -> datetime:
    return datetime(month.year, month.month, day, hour, tzinfo=UTC)


async def _where(connection: asyncpg.Connection) -> dict[str, str]:
    """request_id → the partition holding the row."""
    rows = await connection.fetch(
        "SELECT request_id, tableoid::regclass::text AS partition FROM gateway.request_logs"
    )
    return {row["request_id"]: row["partition"] for row in rows}


async def test_the_table_is_partitioned_by_month_with_a_default(
    connection: asyncpg.Connection,
) -> None:
    strategy = await connection.fetchrow(
        "SELECT p.partstrat::text AS strategy, a.attname FROM pg_partitioned_table p "
        "JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0] "
        "WHERE p.partrelid = 'gateway.request_logs'::regclass"
    )
    assert strategy is not None, "gateway.request_logs is not partitioned"
    assert (strategy["strategy"], strategy["attname"]) == ("r", "created_at")
    leaves = {
        row["relid"]
        for row in await connection.fetch(
            "SELECT relid::regclass::text AS relid FROM pg_partition_tree('gateway.request_logs')"
            " WHERE isleaf"
        )
    }
    month = await _server_month(connection)
    expected = {_month_table(_at(add_months(month, n), 1)) for n in range(3)} | {DEFAULT}
    assert leaves == expected
    # The key: a unique index on (id, created_at), on the parent and so on every partition.
    key = await connection.fetchval(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'gateway' "
        "AND indexname = 'uq_request_logs_id_created_at'"
    )
    assert key is not None
    assert "UNIQUE INDEX" in key
    assert key.endswith("(id, created_at)")
    with pytest.raises(asyncpg.UniqueViolationError):
        await connection.execute(
            "INSERT INTO gateway.request_logs (id, request_id, profile, model, status_code,"
            " latency_ms, created_at) SELECT 7, 'r', 'p', 'm', 200, 1.0, '2026-01-01+00'"
            " FROM generate_series(1, 2)"
        )


def _row(request_id: str, created_at: datetime) -> LogRow:
    return LogRow(
        request_id=request_id,
        profile="chat",
        model="m",
        upstream="u0",
        status_code=200,
        prompt_tokens=3,
        completion_tokens=5,
        latency_ms=12.5,
        ttft_ms=4.0,
        error=None,
        created_at=created_at,
        caller="analyzer",
        endpoint="chat",
    )


async def _write_with_the_gateway_writer(url: str, rows: list[LogRow]) -> None:
    writer = RequestLogWriter(_dsn(url), GatewayMetrics())
    for row in rows:
        writer.record(row)
    await writer.close()  # flushes what is buffered, by binary COPY
    assert writer.status() == {"ok": True, "buffered": 0, "dropped": 0, "last_error": None}


async def test_the_gateway_writer_copies_rows_into_their_months(
    migrated: str, connection: asyncpg.Connection
) -> None:
    month = await _server_month(connection)
    far = add_months(month, 7)
    ledger = {
        "this-month": _at(month, 1, 0),
        "this-month-late": _at(add_months(month, 1), 1, 0) - timedelta(microseconds=1),
        "next-month": _at(add_months(month, 1), 15),
        "in-two-months": _at(add_months(month, 2), 28),
        "far-future": _at(far, 3),
        "years-ago": _at(add_months(month, -30), 9),
    }
    await _write_with_the_gateway_writer(migrated, [_row(n, at) for n, at in ledger.items()])

    where = await _where(connection)
    expected = {name: _month_table(at) for name, at in ledger.items()}
    expected["far-future"] = expected["years-ago"] = DEFAULT  # no partition holds their month
    assert where == expected
    ids = dict(await connection.fetch("SELECT request_id, id FROM gateway.request_logs"))

    created = await ensure_partitions(connection, months_ahead=7)
    assert created == [f"request_logs_{add_months(month, n):%Y_%m}" for n in range(3, 8)]
    where = await _where(connection)
    assert where["far-future"] == _month_table(ledger["far-future"]), "moved out of DEFAULT"
    assert where["years-ago"] == DEFAULT, "a month not asked for stays in DEFAULT"
    assert {k: v for k, v in where.items() if k != "far-future"} == {
        k: v for k, v in expected.items() if k != "far-future"
    }
    assert dict(await connection.fetch("SELECT request_id, id FROM gateway.request_logs")) == ids
    assert await ensure_partitions(connection, months_ahead=7) == [], "idempotent"


async def _insert_at_0004(url: str, moments: list[datetime]) -> list[int]:
    connection = await connect(url)
    try:
        rows = await connection.fetch(
            "INSERT INTO gateway.request_logs (request_id, profile, model, status_code, "
            "latency_ms, created_at, caller, endpoint) "
            "SELECT 'r' || n, 'chat', 'm', 200, 1.0, at, 'analyzer', 'chat' "
            "FROM unnest($1::timestamptz[]) WITH ORDINALITY AS t(at, n) RETURNING id",
            moments,
        )
        return [row["id"] for row in rows]
    finally:
        await connection.close()


async def _rows(connection: asyncpg.Connection) -> dict[int, tuple[str, datetime, str]]:
    rows = await connection.fetch(
        "SELECT id, request_id, created_at, caller FROM gateway.request_logs"
    )
    return {row["id"]: (row["request_id"], row["created_at"], row["caller"]) for row in rows}


async def _next_id(connection: asyncpg.Connection) -> int:
    """A new row's id (the row is removed again)."""
    new_id: int = await connection.fetchval(
        "INSERT INTO gateway.request_logs (request_id, profile, model, status_code, latency_ms)"
        " VALUES ('probe', 'chat', 'm', 200, 1.0) RETURNING id"
    )
    await connection.execute("DELETE FROM gateway.request_logs WHERE request_id = 'probe'")
    return new_id


@pytest.fixture
async def grantee(fresh_database: str) -> AsyncIterator[str]:
    role = f"sift_test_logger_{uuid.uuid4().hex[:8]}"
    connection = await connect(fresh_database)
    await connection.execute(f'CREATE ROLE "{role}" NOLOGIN')
    try:
        yield role
    finally:
        await connection.execute(f'DROP OWNED BY "{role}"')
        await connection.execute(f'DROP ROLE "{role}"')
        await connection.close()


async def _relkind_and_privileges(connection: asyncpg.Connection, role: str) -> tuple[str, ...]:
    row = await connection.fetchrow(
        "SELECT relkind::text, has_table_privilege($1, oid, 'INSERT'), "
        "has_table_privilege($1, oid, 'SELECT'), has_table_privilege($1, oid, 'DELETE') "
        "FROM pg_class WHERE oid = 'gateway.request_logs'::regclass",
        role,
    )
    assert row is not None
    return tuple(str(value) for value in row)


async def test_upgrade_and_downgrade_keep_every_row_id_and_grant(
    fresh_database: str, grantee: str
) -> None:
    await migrate.upgrade(fresh_database, "0004")
    now = datetime.now(UTC)
    moments = [now - timedelta(days=3.1 * n) for n in range(40)] + [now + timedelta(days=200)]
    ids = await _insert_at_0004(fresh_database, moments)
    connection = await connect(fresh_database)
    try:
        await connection.execute(f'GRANT SELECT, INSERT ON gateway.request_logs TO "{grantee}"')
        before = await _rows(connection)
        next_before = await _next_id(connection)
        assert await _relkind_and_privileges(connection, grantee) == ("r", "True", "True", "False")

        await migrate.upgrade(fresh_database, "0005")
        assert await _rows(connection) == before
        assert sorted(before) == sorted(ids)
        where = await _where(connection)
        for request_id, at, _caller in before.values():
            in_range = at < now + timedelta(days=100)  # months ahead exist through +2 only
            assert where[request_id] == (_month_table(at) if in_range else DEFAULT)
        assert await _next_id(connection) == next_before + 1, "the identity continues"
        assert await _relkind_and_privileges(connection, grantee) == ("p", "True", "True", "False")

        await migrate.downgrade(fresh_database, "0004")
        assert await _rows(connection) == before
        assert await _next_id(connection) == next_before + 2
        assert await _relkind_and_privileges(connection, grantee) == ("r", "True", "True", "False")
        key = await connection.fetchval(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'gateway.request_logs'::regclass AND contype = 'p'"
        )
        assert key == "PRIMARY KEY (id)"
    finally:
        await connection.close()


async def test_upgrade_creates_the_months_ahead_that_are_missing(
    migrated: str, connection: asyncpg.Connection
) -> None:
    """As months pass, the partition two months ahead goes missing until something creates it:
    `sift-db upgrade` does (the nightly prune too, tested with the prune)."""
    month = await _server_month(connection)
    ahead = f"request_logs_{add_months(month, 2):%Y_%m}"
    await connection.execute(f"DROP TABLE gateway.{ahead}")
    ran = await run_cli("sift-db", migrated, "upgrade")  # already at head: only the upkeep runs
    assert ran.code == 0, ran.err
    assert f"created partition {ahead}\n" in ran.out
    assert await connection.fetchval("SELECT to_regclass($1)::text", f"gateway.{ahead}") == (
        f"gateway.{ahead}"
    )


async def test_sift_restore_brings_back_the_partitions_and_their_rows(
    migrated: str, connection: asyncpg.Connection, tmp_path: Path
) -> None:
    """`sift restore` is pg_restore --clean over the live database: it must be able to drop
    and recreate the partitioned table (a PRIMARY KEY on it could not be dropped that way)."""
    month = await _server_month(connection)
    ledger = {f"m{n}": _at(add_months(month, n), 10) for n in range(3)} | {
        "old": _at(add_months(month, -5), 10)
    }
    await _write_with_the_gateway_writer(migrated, [_row(n, at) for n, at in ledger.items()])
    before = await _where(connection)
    backed = await run_cli("sift", migrated, "backup", "--dir", str(tmp_path))
    assert backed.code == 0, backed.err
    [dump] = list(tmp_path.iterdir())

    await connection.execute(f"DROP TABLE {_month_table(ledger['m1'])}")
    await connection.execute("DELETE FROM gateway.request_logs WHERE request_id = 'old'")
    restored = await run_cli("sift", migrated, "restore", str(dump), "--yes")
    assert restored.code == 0, restored.err
    assert await _where(connection) == before
