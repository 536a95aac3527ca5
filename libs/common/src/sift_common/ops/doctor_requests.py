"""`sift doctor`'s database probe: the gateway's request logs over the last hour per model
profile (one query, percentile_cont for p50/p95), and where the database keeps its data when
it runs on this machine (for the disk check).

An error is a request that ended in HTTP 5xx: the gateway or an engine failed it. A 4xx is the
caller's (a malformed request, a key over its rate) and is not counted against the profile.
"""

from pathlib import Path

from sqlalchemy import pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from sift_common.ops.doctor_checks_llm import ProfileStats
from sift_common.store.embedded import to_asyncpg_url

STATS = text(
    """
    SELECT profile,
           count(*) AS requests,
           count(*) FILTER (WHERE status_code >= 500) AS errors,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95_ms
    FROM gateway.request_logs
    WHERE created_at >= now() - make_interval(secs => :window_s)
    GROUP BY profile
    ORDER BY profile
    """
)
LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1"})


async def read_request_stats(
    database_url: str, window_s: int, timeout_s: float
) -> tuple[list[ProfileStats], Path | None]:
    """The per-profile stats, and the data directory when the server is local and says where
    it is (None otherwise). Raises what the database raised; the caller reports it."""
    engine = create_async_engine(
        to_asyncpg_url(database_url),
        poolclass=pool.NullPool,
        connect_args={"timeout": timeout_s, "command_timeout": timeout_s},
    )
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(STATS, {"window_s": window_s})).all()
            data_dir = await _data_directory(connection) if is_local(database_url) else None
    finally:
        await engine.dispose()
    stats = [
        ProfileStats(row.profile, int(row.requests), int(row.errors), row.p50_ms, row.p95_ms)
        for row in rows
    ]
    return stats, data_dir


def is_local(database_url: str) -> bool:
    """A server on this machine: a loopback host or a unix socket (a host that is a path)."""
    url = make_url(database_url)
    socket = url.query.get("host")
    host = socket if isinstance(socket, str) else (url.host or "")
    return host in LOCAL_HOSTS or host.startswith("/")


async def _data_directory(connection: AsyncConnection) -> Path | None:
    """Only a superuser or a member of pg_read_all_settings may read it; None otherwise."""
    try:
        async with connection.begin_nested():
            value = (await connection.execute(text("SHOW data_directory"))).scalar()
    except DBAPIError:
        return None
    path = Path(str(value)) if value else None
    return path if path is not None and path.exists() else None
