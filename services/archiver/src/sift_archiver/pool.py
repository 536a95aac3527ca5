"""The archiver's store connection: the database resolved (the embedded server when
`SIFT_DATABASE_URL` is unset) and migrated, and an asyncpg pool with pgvector's binary codec
and JSONB as Python objects on every connection."""

import json
from typing import Any

import asyncpg
from pgvector.asyncpg import register_vector
from sqlalchemy.engine import make_url

from sift_archiver.settings import ArchiverSettings
from sift_common.store import migrate
from sift_common.store.engine import connection_timeouts, resolve_database_url

MAX_CONNECTIONS = 8


def _jsonb_out(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


async def init_connection(conn: asyncpg.Connection) -> None:
    """Binary pgvector codec and JSONB as Python objects on every pooled connection."""
    await register_vector(conn)
    await conn.set_type_codec("jsonb", encoder=_jsonb_out, decoder=json.loads, schema="pg_catalog")


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def open_pool(url: str) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        asyncpg_dsn(url),
        min_size=1,
        max_size=MAX_CONNECTIONS,
        init=init_connection,
        **connection_timeouts(),
    )


async def open_store(settings: ArchiverSettings) -> asyncpg.Pool:
    """A pool on the store, migrated first when `SIFT_ARCHIVER_MIGRATE` (the default)."""
    url = resolve_database_url(settings)
    if settings.archiver_migrate:
        await migrate.upgrade(url)
    return await open_pool(url)


async def ping(pool: asyncpg.Pool) -> None:
    """The database answers a query (the readiness check; `Readiness` bounds its time)."""
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")
