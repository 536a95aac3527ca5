"""Aliases shared by every gateway replica through PostgreSQL.

`gateway.aliases` is the truth (`weights`: an A/B split, NULL when none). At start-up the
profiles file's aliases seed the rows that do not exist yet (a row a switch wrote wins over the
file, so a restart keeps a switch), then the rows are applied to the registry. A switch (or a
split) writes its row and `NOTIFY sift_gateway_aliases` in one transaction; every replica
LISTENs on a connection of its own and re-reads the table when told, and every `reread_s`
anyway, so a lost notification or a dropped connection costs at most that long. While the
database is unreachable the replica keeps serving the aliases it last read (the file's, when
it never read any) and reconnects every `retry_s`.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson

from sift_gateway.alias_store import AliasStoreUnavailableError, SwitchBusyError, SwitchRecord
from sift_gateway.registry import Registry
from sift_gateway.split import primary_arm

logger = logging.getLogger(__name__)

CHANNEL = "sift_gateway_aliases"
LISTENER_NAME = "sift-gateway-aliases"  # application_name of the listening connection
DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


class PostgresAliasStore:
    """Aliases in `gateway.aliases`, switches in `gateway.alias_switches`."""

    def __init__(
        self,
        dsn: str,
        registry: Registry,
        *,
        reread_s: float = 5.0,
        retry_s: float = 1.0,
    ) -> None:
        self._dsn, self._registry = dsn, registry
        self._seed = dict(registry.aliases)
        self._reread_s, self._retry_s = reread_s, retry_s
        self._pool: asyncpg.Pool | None = None
        self._changed = asyncio.Event()
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._skipped: list[str] = []
        self.listening = False
        self.last_error: str | None = None
        self.loaded_at: float | None = None

    async def start(self, wait_s: float = 5.0) -> None:
        """Connect, seed and load; serve the file's aliases if that takes longer than wait_s."""
        self._pool = await asyncpg.create_pool(self._dsn, min_size=0, max_size=4, timeout=5)
        self._task = asyncio.create_task(self._run(), name="alias-listener")
        try:
            async with asyncio.timeout(wait_s):
                await self._synced.wait()
        except TimeoutError:
            logger.warning(
                "aliases: database not read yet (%s); serving the profiles file's aliases",
                self.last_error,
            )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._pool is not None:
            await self._pool.close()

    @asynccontextmanager
    async def switching(self, alias: str) -> AsyncIterator[None]:
        """Hold a session advisory lock on the alias: one switch at a time, all replicas."""
        if self._pool is None:
            raise AliasStoreUnavailableError("the alias store is not started")
        key = f"sift_gateway_alias:{alias}"
        try:
            connection = await self._pool.acquire(timeout=5)
        except DB_ERRORS as exc:
            raise AliasStoreUnavailableError(f"{type(exc).__name__}: {exc}") from exc
        try:
            locked = await connection.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", key)
        except DB_ERRORS as exc:
            await self._pool.release(connection)
            raise AliasStoreUnavailableError(f"{type(exc).__name__}: {exc}") from exc
        try:
            if not locked:
                raise SwitchBusyError(alias)
            yield  # the switch runs here; its own errors are not the database's
        finally:
            try:  # a lost connection has released the lock already
                if locked:
                    await connection.execute("SELECT pg_advisory_unlock(hashtext($1))", key)
            except DB_ERRORS as exc:
                logger.warning("aliases: unlock of %s failed (%s)", alias, exc)
            await self._pool.release(connection)

    async def current(self, alias: str) -> str | None:
        """Where the alias points now, as the database says (another replica may have just
        switched it); the registry's view when the database has no row."""
        async with self._connection() as connection:
            stored = await connection.fetchval(
                "SELECT profile FROM gateway.aliases WHERE alias = $1", alias
            )
        return stored if isinstance(stored, str) else self._registry.aliases.get(alias)

    async def current_weights(self, alias: str) -> dict[str, int] | None:
        async with self._connection() as connection:
            stored = await connection.fetchval(
                "SELECT weights FROM gateway.aliases WHERE alias = $1", alias
            )
        return None if stored is None else dict(orjson.loads(stored))

    async def write(self, alias: str, profile: str, by: str | None) -> None:
        """The whole alias to `profile`: any split ends (`weights` NULL)."""
        await self._write_row(alias, profile, None, by)
        self._registry.apply_aliases({alias: profile})  # a rollback may name a profile unknown here
        self._registry.apply_splits({alias: None})

    async def write_split(self, alias: str, weights: dict[str, int], by: str | None) -> None:
        await self._write_row(alias, primary_arm(weights), weights, by)
        self._registry.split_alias(alias, weights)

    async def _write_row(
        self, alias: str, profile: str, weights: dict[str, int] | None, by: str | None
    ) -> None:
        """The row and the NOTIFY that tells every replica, in one transaction."""
        shown = None if weights is None else orjson.dumps(weights).decode()
        async with self._connection() as connection, connection.transaction():
            await connection.execute(
                "INSERT INTO gateway.aliases (alias, profile, weights, updated_by)"
                " VALUES ($1, $2, $3::jsonb, $4) ON CONFLICT (alias) DO UPDATE SET"
                " profile = excluded.profile, weights = excluded.weights,"
                " updated_by = excluded.updated_by, updated_at = now()",
                alias,
                profile,
                shown,
                by,
            )
            await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, alias)

    async def record(self, switch: SwitchRecord) -> None:
        async with self._connection() as connection:
            await connection.execute(
                "INSERT INTO gateway.alias_switches (alias, from_profile, to_profile, outcome,"
                " reason, numbers, requested_by) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)",
                switch.alias,
                switch.from_profile,
                switch.to_profile,
                switch.outcome,
                switch.reason,
                orjson.dumps(switch.numbers).decode(),
                switch.requested_by,
            )

    async def history(self, alias: str | None, limit: int) -> list[dict[str, Any]]:
        async with self._connection() as connection:
            rows = await connection.fetch(
                "SELECT id, alias, from_profile, to_profile, outcome, reason, numbers,"
                " requested_by, at FROM gateway.alias_switches"
                " WHERE $1::text IS NULL OR alias = $1 ORDER BY id DESC LIMIT $2",
                alias,
                limit,
            )
        return [
            {
                **dict(row),
                "numbers": None if row["numbers"] is None else orjson.loads(row["numbers"]),
                "at": row["at"].isoformat(),
            }
            for row in rows
        ]

    def status(self) -> dict[str, Any]:
        age = None if self.loaded_at is None else round(time.monotonic() - self.loaded_at, 1)
        return {
            "store": "database",
            "shared": True,
            "listening": self.listening,
            "last_read_age_s": age,
            "last_error": self.last_error,
            "skipped": self._skipped,
        }

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        if self._pool is None:
            raise AliasStoreUnavailableError("the alias store is not started")
        try:
            async with self._pool.acquire(timeout=5) as connection:
                yield connection
        except DB_ERRORS as exc:
            raise AliasStoreUnavailableError(f"{type(exc).__name__}: {exc}") from exc

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except DB_ERRORS as exc:
                if self.last_error is None:
                    logger.warning("aliases: database connection lost, retrying: %s", exc)
                self.last_error = f"{type(exc).__name__}: {exc}"
            self.listening = False
            await asyncio.sleep(self._retry_s)

    async def _listen(self) -> None:
        connection = await asyncpg.connect(
            self._dsn, timeout=5, server_settings={"application_name": LISTENER_NAME}
        )
        try:
            await connection.add_listener(CHANNEL, self._notified)
            connection.add_termination_listener(lambda _: self._changed.set())
            self.listening = True
            await self._seed_missing(connection)
            while True:
                self._changed.clear()
                await self._load(connection)
                try:
                    async with asyncio.timeout(self._reread_s):
                        await self._changed.wait()
                except TimeoutError:
                    pass
        finally:
            connection.terminate()

    def _notified(self, connection: object, pid: int, channel: str, payload: str) -> None:
        self._changed.set()

    async def _seed_missing(self, connection: asyncpg.Connection) -> None:
        await connection.executemany(
            "INSERT INTO gateway.aliases (alias, profile, updated_by) VALUES ($1, $2,"
            " 'profiles file') ON CONFLICT (alias) DO NOTHING",
            list(self._seed.items()),
        )

    async def _load(self, connection: asyncpg.Connection) -> None:
        rows = await connection.fetch("SELECT alias, profile, weights FROM gateway.aliases")
        before = dict(self._registry.aliases), dict(self._registry.splits)
        skipped = self._registry.apply_aliases({row["alias"]: row["profile"] for row in rows})
        skipped += self._registry.apply_splits(
            {r["alias"]: None if r["weights"] is None else orjson.loads(r["weights"]) for r in rows}
        )
        if skipped != self._skipped and skipped:
            logger.warning("aliases: this replica has no such profile, kept as was: %s", skipped)
        if (self._registry.aliases, self._registry.splits) != before:
            logger.info("aliases now %s, splits %s", self._registry.aliases, self._registry.splits)
        if self.last_error is not None:
            logger.info("aliases: database read again")
        self._skipped, self.last_error = skipped, None
        self.loaded_at = time.monotonic()
        self._synced.set()
