"""Run the store's Alembic migrations from Python (async), without an alembic.ini.

Alembic's command API is synchronous; it runs inside `AsyncConnection.run_sync` on a connection
handed to `migrations/env.py`, so it works from inside a running event loop. After an upgrade,
the request logs' months ahead are created (`partitions.ensure_partitions`), so a deployment
that upgrades has them even before the nightly prune runs.
"""

from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from sift_common.store import partitions
from sift_common.store.embedded import to_asyncpg_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the packaged migrations and at `url`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would read a '%' in a password as a placeholder.
    config.set_main_option("sqlalchemy.url", to_asyncpg_url(url).replace("%", "%%"))
    return config


async def upgrade(url: str, revision: str = "head") -> list[str]:
    """Migrate the database at `url` up to `revision`, in one transaction, then create the
    request logs' missing monthly partitions (when the table is partitioned at `revision`);
    the partitions created."""
    await _run(url, "upgrade", revision)
    return await ensure_request_log_partitions(url)


async def ensure_request_log_partitions(url: str) -> list[str]:
    """`partitions.ensure_partitions` on the database at `url`; the names created. Nothing
    before revision 0005, where `gateway.request_logs` is not partitioned yet."""
    engine = create_async_engine(
        to_asyncpg_url(url), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT"
    )
    try:
        async with engine.connect() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            assert raw is not None
            kind = await raw.fetchval(
                "SELECT relkind::text FROM pg_class WHERE oid = to_regclass('gateway.request_logs')"
            )
            if kind != "p":
                return []
            return await partitions.ensure_partitions(raw)
    finally:
        await engine.dispose()


async def downgrade(url: str, revision: str = "base") -> None:
    """Migrate the database at `url` down to `revision`, in one transaction."""
    await _run(url, "downgrade", revision)


async def current_revision(url: str) -> str | None:
    """The revision the database is at, or None when it has never been migrated."""

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    engine = create_async_engine(to_asyncpg_url(url), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(read)
    finally:
        await engine.dispose()


async def _run(url: str, direction: Literal["upgrade", "downgrade"], revision: str) -> None:
    config = alembic_config(url)

    def migrate(connection: Connection) -> None:
        config.attributes["connection"] = connection
        if direction == "upgrade":
            command.upgrade(config, revision)
        else:
            command.downgrade(config, revision)

    engine = create_async_engine(to_asyncpg_url(url), poolclass=pool.NullPool)
    try:
        # PostgreSQL has transactional DDL: a failing revision leaves nothing half-applied.
        async with engine.begin() as connection:
            await connection.run_sync(migrate)
    finally:
        await engine.dispose()
