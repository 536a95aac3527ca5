"""Where each alias points: the contract (`AliasStore`), the switch records, and
`MemoryAliasStore` for a gateway without a database (aliases live in this process only:
development). The store shared by every replica through PostgreSQL is `alias_store_pg`.
"""

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sift_gateway.registry import Registry


class SwitchBusyError(Exception):
    """Another switch of the same alias is under way (on this replica or another)."""


class AliasStoreUnavailableError(Exception):
    """The database that holds the aliases cannot be written now."""


@dataclass(frozen=True)
class SwitchRecord:
    alias: str
    from_profile: str | None
    to_profile: str
    outcome: str  # switched, refused, rolled_back; split (an A/B test), promoted (its end)
    reason: str | None
    numbers: dict[str, Any]
    requested_by: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class AliasStore(Protocol):
    def switching(self, alias: str) -> AbstractAsyncContextManager[None]: ...
    async def current(self, alias: str) -> str | None: ...
    async def current_weights(self, alias: str) -> dict[str, int] | None: ...
    async def write(self, alias: str, profile: str, by: str | None) -> None: ...
    async def write_split(self, alias: str, weights: dict[str, int], by: str | None) -> None: ...
    async def record(self, switch: SwitchRecord) -> None: ...
    async def history(self, alias: str | None, limit: int) -> list[dict[str, Any]]: ...
    def status(self) -> dict[str, Any]: ...


class MemoryAliasStore:
    """Aliases and the recent switch history in this process only (no database)."""

    def __init__(self, registry: Registry, keep: int = 200) -> None:
        self._registry = registry
        self._locks: dict[str, asyncio.Lock] = {}
        self._history: deque[dict[str, Any]] = deque(maxlen=keep)
        self._recorded = 0

    @asynccontextmanager
    async def switching(self, alias: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(alias, asyncio.Lock())
        if lock.locked():
            raise SwitchBusyError(alias)
        async with lock:
            yield

    async def current(self, alias: str) -> str | None:
        return self._registry.aliases.get(alias)

    async def current_weights(self, alias: str) -> dict[str, int] | None:
        return self._registry.splits.get(alias)

    async def write(self, alias: str, profile: str, by: str | None) -> None:
        self._registry.switch_alias(alias, profile)

    async def write_split(self, alias: str, weights: dict[str, int], by: str | None) -> None:
        self._registry.split_alias(alias, weights)

    async def record(self, switch: SwitchRecord) -> None:
        self._recorded += 1
        at = datetime.now(UTC).isoformat()
        self._history.appendleft({"id": self._recorded, **switch.as_dict(), "at": at})

    async def history(self, alias: str | None, limit: int) -> list[dict[str, Any]]:
        rows = [row for row in self._history if alias is None or row["alias"] == alias]
        return rows[:limit]

    def status(self) -> dict[str, Any]:
        return {
            "store": "memory",
            "shared": False,
            "note": "no database: aliases and switch history live in this process only "
            "(development); another replica or a restart does not see a switch",
        }
