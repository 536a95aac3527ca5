"""In-memory token buckets keyed by a string: a client address, an API key's name.

Each process limits on its own (replicas do not share counts): enough to slow a key guesser
or a runaway caller down, without a dependency a refusal would have to wait for.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """`capacity` tokens per key, refilled at `per_s`; at most `max_keys` buckets are kept
    (full buckets are forgotten first, then the least recently touched)."""

    def __init__(
        self,
        capacity: float,
        per_s: float,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1 or per_s <= 0:
            raise ValueError("a bucket holds at least one token and refills at a positive rate")
        self.capacity, self.per_s, self.max_keys, self._clock = capacity, per_s, max_keys, clock
        self._buckets: dict[str, _Bucket] = {}

    def wait_s(self, key: str) -> float | None:
        """Seconds until `key` has a token, or None when it has one now (nothing is taken)."""
        bucket = self._refilled(key)
        return None if bucket.tokens >= 1 else (1 - bucket.tokens) / self.per_s

    def take(self, key: str) -> float | None:
        """Take a token: None when taken, else the seconds until one is there."""
        bucket = self._refilled(key)
        if bucket.tokens < 1:
            return (1 - bucket.tokens) / self.per_s
        bucket.tokens -= 1
        self._buckets[key] = bucket
        self._forget_some()
        return None

    def spend(self, key: str, amount: float) -> None:
        """Take `amount` tokens, into debt if need be (a cost known only afterwards)."""
        bucket = self._refilled(key)
        bucket.tokens -= amount
        self._buckets[key] = bucket
        self._forget_some()

    def _refilled(self, key: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.pop(key, None)  # popped and put back: the dict stays in LRU order
        if bucket is None:
            return _Bucket(self.capacity, now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.at) * self.per_s)
        bucket.at = now
        if bucket.tokens < self.capacity:
            self._buckets[key] = bucket
        return bucket

    def _forget_some(self) -> None:
        if len(self._buckets) <= self.max_keys:
            return
        for key in [key for key, bucket in self._buckets.items() if self._full(bucket)]:
            del self._buckets[key]
        while len(self._buckets) > self.max_keys:
            del self._buckets[next(iter(self._buckets))]

    def _full(self, bucket: _Bucket) -> bool:
        return bucket.tokens + (self._clock() - bucket.at) * self.per_s >= self.capacity


def retry_after(wait_s: float) -> int:
    """A `Retry-After` value: whole seconds, at least 1."""
    return max(1, math.ceil(wait_s))
