"""The pure rules behind `sift backup` / `sift restore` / `sift-db prune-request-logs`: backup
names, which dumps retention deletes, the libpq environment a URL becomes, request-log ages and
what a restored revision means."""

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from sift_common.errors import ConfigError
from sift_common.ops.backup_files import (
    backup_name,
    backups_in,
    human_size,
    is_backup_name,
    partial_name,
    to_delete,
)
from sift_common.ops.backup_pg import libpq_environment
from sift_common.ops.backup_revision import advice_for
from sift_common.ops.retention import parse_age


def _dumps(*days: int) -> list[Path]:
    return [Path(f"b/sift-202601{day:02d}T030000.000Z.dump") for day in days]


def test_names_sort_by_time_and_partials_are_not_backups() -> None:
    early = backup_name(datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC))
    late = backup_name(datetime(2026, 11, 2, 3, 4, 5, tzinfo=UTC))
    assert early == "sift-20260102T030405.006Z.dump"
    assert early < late
    assert is_backup_name(early)
    assert not is_backup_name(partial_name(early))
    assert not is_backup_name("sift-latest.dump")
    with pytest.raises(ValueError, match="UTC"):
        backup_name(datetime(2026, 1, 2, tzinfo=timezone(timedelta(hours=9))))


def test_retention_deletes_all_but_the_newest_n() -> None:
    dumps = _dumps(1, 2, 3, 4, 5)
    assert to_delete(dumps, 3, dumps[-1]) == dumps[:2]
    assert to_delete(dumps, 1, dumps[-1]) == dumps[:4]
    assert to_delete(dumps, 7, dumps[-1]) == []


def test_retention_never_deletes_the_dump_just_written() -> None:
    """A clock set back makes the new dump sort oldest: it stays, and counts toward N."""
    dumps = _dumps(1, 2, 3, 4, 5)
    assert to_delete(dumps, 2, dumps[0]) == dumps[1:4]
    with pytest.raises(ValueError, match="--keep"):
        to_delete(dumps, 0, dumps[0])


def test_only_sift_dumps_are_listed(tmp_path: Path) -> None:
    names = ["sift-20260101T000000.000Z.dump", "sift-20250101T000000.000Z.dump"]
    for name in [*names, "notes.txt", partial_name(names[0]), "sift-x.dump"]:
        (tmp_path / name).write_text("")
    assert [path.name for path in backups_in(tmp_path)] == sorted(names)
    assert backups_in(tmp_path / "missing") == []


def test_sizes_read_as_people_write_them() -> None:
    assert human_size(512) == "512 B"
    assert human_size(3 * 1024 + 512) == "3.5 KiB"
    assert human_size(5 * 1024**4) == "5120.0 GiB"


def test_a_url_becomes_libpq_variables_with_the_password_out_of_the_arguments() -> None:
    env = libpq_environment(
        "postgresql+asyncpg://sift:s%40cret@db.internal:6432/store?ssl=require",
        {"PGHOST": "elsewhere", "PATH": "/bin"},
    )
    assert env == {
        "PATH": "/bin",
        "PGHOST": "db.internal",
        "PGPORT": "6432",
        "PGUSER": "sift",
        "PGPASSWORD": "s@cret",
        "PGDATABASE": "store",
        "PGSSLMODE": "require",
    }


def test_a_unix_socket_url_keeps_its_directory() -> None:
    env = libpq_environment("postgresql://postgres:@/sift?host=/run/pg", {})
    assert env == {"PGHOST": "/run/pg", "PGUSER": "postgres", "PGDATABASE": "sift"}


def test_an_unknown_url_parameter_is_named() -> None:
    with pytest.raises(ConfigError, match=r"SIFT_DATABASE_URL.*'prepared_statement_cache_size'"):
        libpq_environment("postgresql://u@h/d?prepared_statement_cache_size=0", {})


def test_ages_for_the_prune() -> None:
    assert parse_age("30d") == timedelta(days=30)
    assert parse_age(" 36H ") == timedelta(hours=36)
    assert parse_age("8w") == timedelta(weeks=8)
    for bad in ("30", "0d", "1.5d", "30 days", "-1d", ""):
        with pytest.raises(ValueError, match="30d"):
            parse_age(bad)


def test_the_restored_revision_says_what_to_run() -> None:
    known = {"0001", "0002", "0003"}
    assert "nothing to migrate" in advice_for("0003", "0003", known)
    assert "sift-db upgrade" in advice_for("0002", "0003", known)
    assert "newer Sift" in advice_for("0009", "0003", known)
    assert "no Alembic revision" in advice_for(None, "0003", known)
