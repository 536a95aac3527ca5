"""`sift-db` as an operator runs it: a subprocess configured through SIFT_DATABASE_URL."""

import asyncio
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SIFT_DB = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "sift-db"


async def _sift_db(database_url: str, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "SIFT_DATABASE_URL": database_url}
    process = await asyncio.create_subprocess_exec(
        str(SIFT_DB),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_upgrade_current_downgrade_through_the_cli(fresh_database: str) -> None:
    database = fresh_database.rsplit("/", 1)[1].split("?", 1)[0]

    code, out, err = await _sift_db(fresh_database, "url")
    assert code == 0, err
    assert out.startswith("postgresql+asyncpg://")
    assert f"/{database}" in out

    code, out, err = await _sift_db(fresh_database, "current")
    assert (code, out.strip()) == (0, "none (never migrated)"), err

    code, out, err = await _sift_db(fresh_database, "upgrade")
    assert code == 0, err
    assert "upgrading" in out
    assert "now at 0007" in out
    assert "Running upgrade  -> 0001" in err  # Alembic's own progress line

    code, out, err = await _sift_db(fresh_database, "current")
    assert (code, out.strip()) == (0, "0007"), err

    code, out, err = await _sift_db(fresh_database, "downgrade", "base")
    assert code == 0, err
    assert "now at base (empty)" in out


async def test_bad_url_fails_with_the_variable_named() -> None:
    code, _out, err = await _sift_db("mysql://nobody@localhost/x", "current")
    assert code == 2
    assert "SIFT_DATABASE_URL" in err
