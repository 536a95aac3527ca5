"""A bounded map whose entries expire: each kept for the same TTL, at most `limit`, the
oldest dropped first.

One TTL for every entry makes the order of insertion the order of expiry, so expiring looks
at the oldest entries only. For answers a process keeps briefly: the analyzer's results that
Redis could not take, the gateway's answers for retries of a lost call.
"""

import time
from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")


class ExpiringMap(Generic[V]):
    def __init__(self, ttl_s: float, limit: int) -> None:
        self.ttl_s, self.limit = ttl_s, limit
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()  # key → (expiry, …)

    def __len__(self) -> int:
        self._expire()
        return len(self._entries)

    def get(self, key: str) -> V | None:
        self._expire()
        held = self._entries.get(key)
        return None if held is None else held[1]

    def put(self, key: str, value: V) -> None:
        self._entries[key] = (time.monotonic() + self.ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.limit:
            self._entries.popitem(last=False)

    def _expire(self) -> None:
        now = time.monotonic()
        while self._entries and next(iter(self._entries.values()))[0] <= now:
            self._entries.popitem(last=False)
