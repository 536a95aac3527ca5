"""Retention against the real store and the real client programs: `sift backup --keep N`
keeps exactly the newest N dumps and nothing of a failed one; `sift-db prune-request-logs`
drops exactly the monthly partitions wholly older than the cutoff and deletes exactly the other
request logs older than it, in batches."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from sift_common.ops.backup_files import backups_in
from sift_common.store import migrate
from tests.support.ops_cli import connect, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture
async def migrated(fresh_database: str) -> str:
    await migrate.upgrade(fresh_database)
    return fresh_database


@pytest.fixture
async def unprivileged(migrated: str) -> AsyncIterator[str]:
    """The same database as a login role that may connect but read no table: pg_dump starts,
    writes its partial file and then fails on a permission error, as a real dump can."""
    role = f"sift_test_noread_{uuid.uuid4().hex[:8]}"
    connection = await connect(migrated)
    await connection.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        yield (
            make_url(migrated)
            .set(username=role, password=None)
            .render_as_string(hide_password=False)
        )
    finally:
        await connection.execute(f'DROP ROLE "{role}"')
        await connection.close()


async def test_keep_n_leaves_exactly_the_newest_n_and_no_failed_dump(
    migrated: str, unprivileged: str, tmp_path: Path
) -> None:
    # Older dumps (real ones, named as if from earlier days) and a file that is not a dump.
    first = await run_cli("sift", migrated, "backup", SIFT_BACKUP_DIR=str(tmp_path))
    assert first.code == 0, first.err
    [seed] = backups_in(tmp_path)
    for day in ("01", "02", "03"):
        (tmp_path / f"sift-202601{day}T030000.000Z.dump").write_bytes(seed.read_bytes())
    (tmp_path / "notes.txt").write_text("not a backup")

    failed = await run_cli("sift", unprivileged, "backup", "--dir", str(tmp_path), "--keep", "1")
    assert failed.code == 1
    assert "pg_dump failed" in failed.err
    assert "permission denied" in failed.err
    assert len(backups_in(tmp_path)) == 4, "a failed dump neither adds nor removes a backup"
    assert not [path for path in tmp_path.iterdir() if path.name.endswith(".partial")]

    written = []
    for _ in range(2):
        ran = await run_cli("sift", migrated, "backup", "--dir", str(tmp_path), "--keep", "3")
        assert ran.code == 0, ran.err
        written.append(backups_in(tmp_path)[-1])
    kept = backups_in(tmp_path)
    assert kept == [seed, *written], "the newest 3: the first real dump and the two after it"
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [*(path.name for path in kept), "notes.txt"]
    )
    assert "removed" in ran.out
    assert "sift-20260103T030000.000Z.dump" in ran.out


async def _insert_logs(url: str, ages_days: list[float]) -> dict[int, float]:
    """One request log per age (days before the server's now); id → age."""
    connection = await connect(url)
    try:
        rows = await connection.fetch(
            "INSERT INTO gateway.request_logs "
            "(request_id, profile, model, status_code, latency_ms, created_at) "
            "SELECT 'r' || n, 'chat', 'm', 200, 1.0, now() - make_interval(secs => age * 86400) "
            "FROM unnest($1::float8[]) WITH ORDINALITY AS t(age, n) RETURNING id, created_at",
            ages_days,
        )
        ids = [row["id"] for row in rows]
        return dict(zip(ids, ages_days, strict=True))
    finally:
        await connection.close()


async def test_prune_deletes_exactly_the_old_request_logs(migrated: str) -> None:
    old_ages = [30.5 + n * 0.7 for n in range(23)]  # 30.5 .. 45.9 days
    new_ages = [n * 1.3 for n in range(17)]  # 0 .. 20.8 days
    logs = await _insert_logs(migrated, old_ages + new_ages)
    expected_left = {log_id for log_id, age in logs.items() if age < 30}
    assert len(expected_left) == len(new_ages)

    ran = await run_cli(
        "sift-db", migrated, "prune-request-logs", "--older-than", "30d", "--batch", "5"
    )
    assert ran.code == 0, ran.err
    assert f"deleted {len(old_ages)} request logs" in ran.out
    assert "20 deleted ..." in ran.out  # batches of 5: progress after each full one
    connection = await connect(migrated)
    try:
        left = {row["id"] for row in await connection.fetch("SELECT id FROM gateway.request_logs")}
    finally:
        await connection.close()
    assert left == expected_left

    again = await run_cli("sift-db", migrated, "prune-request-logs", "--older-than", "30d")
    assert again.code == 0, again.err
    assert "deleted 0 request logs" in again.out


async def test_prune_names_a_bad_age(migrated: str) -> None:
    ran = await run_cli("sift-db", migrated, "prune-request-logs", "--older-than", "30 days")
    assert ran.code == 2
    assert "--older-than" in ran.err
    assert "30d" in ran.err


async def _partitions_and_rows(url: str) -> tuple[list[str], dict[int, tuple[datetime, str]]]:
    """The monthly partitions (names) and every row: id → (created_at, partition)."""
    connection = await connect(url)
    try:
        names = await connection.fetch(
            "SELECT relid::regclass::text AS name FROM pg_partition_tree('gateway.request_logs')"
            " WHERE isleaf AND relid::regclass::text ~ '_[0-9]{4}_[0-9]{2}$'"
        )
        rows = await connection.fetch(
            "SELECT id, created_at, tableoid::regclass::text AS partition FROM gateway.request_logs"
        )
    finally:
        await connection.close()
    return (
        sorted(row["name"].removeprefix("gateway.") for row in names),
        {row["id"]: (row["created_at"], row["partition"]) for row in rows},
    )


def _month_end(name: str) -> datetime:
    year, month = int(name[-7:-3]), int(name[-2:])
    return datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


async def _age_to_mid_month(url: str) -> tuple[int, datetime]:
    """Whole hours back to about the 15th of the month before last, so the cutoff falls
    mid-month whatever today's date: there is always a month straddling it."""
    connection = await connect(url)
    try:
        now: datetime = await connection.fetchval("SELECT now()")
    finally:
        await connection.close()
    index = now.year * 12 + now.month - 1 - 2
    target = datetime(index // 12, index % 12 + 1, 15, tzinfo=UTC)
    hours = int((now - target).total_seconds() // 3600)
    return hours, now - timedelta(hours=hours)


async def test_prune_drops_the_old_months_and_deletes_the_rest_in_batches(
    fresh_database: str,
) -> None:
    # Rows logged before the partitioning (revision 0004) over five months; the migration
    # gives each of their months a partition. Then one row older than every partition: DEFAULT.
    await migrate.upgrade(fresh_database, "0004")
    await _insert_logs(fresh_database, [0.9 * n + 0.25 for n in range(170)])  # up to 152.35 d
    await migrate.upgrade(fresh_database)
    await _insert_logs(fresh_database, [400.0])
    months, rows = await _partitions_and_rows(fresh_database)
    ahead = months[-1]  # two months ahead: gone missing, the prune creates it again
    connection = await connect(fresh_database)
    try:
        await connection.execute(f"DROP TABLE gateway.{ahead}")
    finally:
        await connection.close()
    hours, cutoff = await _age_to_mid_month(fresh_database)
    # The test's own ledger: the months wholly before the cutoff go whole, the older rows left
    # (the month straddling the cutoff, DEFAULT) go by DELETE, the rest stay. The server fixes
    # its cutoff a moment later than this one: no row or month boundary lies in between.
    dropped = [name for name in months if _month_end(name) <= cutoff]
    in_dropped = {i for i, (_, part) in rows.items() if part.removeprefix("gateway.") in dropped}
    deleted = {i for i, (at, _) in rows.items() if at < cutoff} - in_dropped
    kept = {i for i, (at, _) in rows.items() if at >= cutoff}
    assert len(dropped) >= 2, "whole months to drop"
    assert in_dropped, "rows going with them"
    assert kept, "rows to keep"
    parts = {part for i, (_, part) in rows.items() if i in deleted}
    assert "gateway.request_logs_default" in parts, "old rows in DEFAULT"
    assert len(parts) == 2, "and in the month straddling the cutoff"
    assert len(deleted) > 5, "more than one batch"

    ran = await run_cli(
        "sift-db", fresh_database, "prune-request-logs", "--older-than", f"{hours}h", "--batch", "5"
    )
    assert ran.code == 0, ran.err
    assert f"dropped {len(dropped)} partitions and deleted {len(deleted)} request logs" in ran.out
    for name in dropped:
        assert f"dropped partition {name}\n" in ran.out
    assert "5 deleted ..." in ran.out
    assert f"created partition {ahead}\n" in ran.out
    months_after, rows_after = await _partitions_and_rows(fresh_database)
    assert months_after == [name for name in months if name not in dropped]
    assert set(rows_after) == kept
