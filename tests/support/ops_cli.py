"""The operators' commands as an operator runs them: `sift` and `sift-db` as subprocesses of
the workspace's venv, pointed at a test's database through SIFT_DATABASE_URL."""

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from pgvector.asyncpg import register_vector
from sqlalchemy.engine import make_url

VENV_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


async def run_cli(program: str, database_url: str, *args: str, **env: str) -> Ran:
    """`program args...` with SIFT_DATABASE_URL set, plus `env`; its exit code and output."""
    process = await asyncio.create_subprocess_exec(
        str(VENV_BIN / program),
        *args,
        env={**os.environ, "SIFT_DATABASE_URL": database_url, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


async def connect(database_url: str) -> asyncpg.Connection:
    """A plain asyncpg connection with pgvector's codec (vectors as numpy arrays)."""
    dsn = make_url(database_url).set(drivername="postgresql")
    connection = await asyncpg.connect(dsn.render_as_string(hide_password=False))
    await register_vector(connection)
    return connection
