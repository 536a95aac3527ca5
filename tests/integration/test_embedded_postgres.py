"""The embedded PostgreSQL + pgvector: starts in a fresh directory, serves, stops cleanly."""

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from sift_common.store.embedded import start_embedded_postgres, stop_embedded_postgres

pytestmark = pytest.mark.integration


def postmaster_pid(data_dir: Path) -> int | None:
    pid_file = data_dir / "postmaster.pid"
    return int(pid_file.read_text().split()[0]) if pid_file.exists() else None


async def test_start_serve_with_pgvector_and_stop(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    url = start_embedded_postgres(data_dir)
    assert start_embedded_postgres(data_dir) == url  # a second start reuses the server
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
            distance = await conn.scalar(text("SELECT '[1,0]'::vector <=> '[0,1]'::vector"))
        assert distance == pytest.approx(1.0)
    finally:
        await engine.dispose()
    assert postmaster_pid(data_dir) is not None
    stop_embedded_postgres(data_dir)
    assert postmaster_pid(data_dir) is None
