"""Engines and sessions for the store. Callers create them at start-up and dispose of them."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine

from sift_common.settings import DatabaseSettings
from sift_common.store.embedded import start_embedded_postgres, to_asyncpg_url


def resolve_database_url(settings: DatabaseSettings) -> str:
    """The configured database as an asyncpg URL, or the embedded server when none is set.

    Starting the embedded server is a side effect, which is why this is not done at import.
    """
    if settings.database_url is not None:
        return to_asyncpg_url(settings.database_url)
    return start_embedded_postgres()


# No statement of a service runs for long; one that does is stuck (a lock, a dead server).
STATEMENT_TIMEOUT_S = 60.0
POOL_WAIT_S = 10.0  # how long a caller waits for a pooled connection before failing


def connection_timeouts() -> dict[str, Any]:
    """asyncpg connect arguments: the client gives up on a command, and the server cancels a
    statement, after `STATEMENT_TIMEOUT_S` (the client a little later, so the server's clean
    cancel wins)."""
    return {
        "command_timeout": STATEMENT_TIMEOUT_S + 5,
        "timeout": 10,  # connecting
        "server_settings": {"statement_timeout": str(int(STATEMENT_TIMEOUT_S * 1000))},
    }


def create_engine(url: str, *, pool_size: int = 5) -> AsyncEngine:
    """An asyncpg engine for `url` (any postgresql driver prefix is accepted)."""
    # pre_ping: a restarted PostgreSQL would otherwise hand out dead pooled connections once.
    return _create_async_engine(
        to_asyncpg_url(url),
        pool_size=pool_size,
        pool_pre_ping=True,
        pool_timeout=POOL_WAIT_S,
        connect_args=connection_timeouts(),
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit, as handlers read them afterwards."""
    return async_sessionmaker(engine, expire_on_commit=False)
