"""Answers kept briefly by request id, so that a caller's retry of a call it lost is not paid
for twice.

A caller that dies or gives up while its call is open (an analyzer killed mid-call, a client
timeout) sends the same request again, with the same `x-request-id`, once it is back. The
gateway finishes the first call regardless (aiohttp does not cancel a handler whose client
went away), keeps its answer for `ttl_s`, and answers the retry from it; a retry that comes
while the first call is still open waits for that call instead of opening another.

Kept: 200 answers of non-streamed chat requests that named their own request id, keyed by
caller, request id and a hash of the body (the same id with another body is another request),
at most `max_answers` (the oldest dropped first). Per replica: a retry that another gateway
replica takes pays again, as it would without this.
"""

import asyncio
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from sift_common.expiring import ExpiringMap

How = Literal["kept", "joined"]


@dataclass(frozen=True)
class Kept:
    body: bytes  # the upstream's JSON answer as it was relayed
    profile: str  # the profile that served it


def replay_key(caller: str | None, request_id: str, body: bytes) -> str:
    digest = hashlib.blake2b(body, digest_size=16).hexdigest()
    return f"{caller or '-'}\x00{request_id}\x00{digest}"


class Replays:
    def __init__(self, ttl_s: float, max_answers: int) -> None:
        self.ttl_s, self.max_answers = ttl_s, max_answers
        self._kept: ExpiringMap[Kept] = ExpiringMap(ttl_s, max_answers)
        self._open: dict[str, asyncio.Future[Kept | None]] = {}

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0 and self.max_answers > 0

    async def answer_for(self, key: str) -> tuple[Kept, How] | None:
        """The kept answer for `key`, after waiting for its call if one is open; None when
        there is none (the caller then makes the call, inside `owning`)."""
        joined = False
        while True:
            if (held := self._kept.get(key)) is not None:
                return held, "joined" if joined else "kept"
            pending = self._open.get(key)
            if pending is None:
                return None
            joined = True
            # Shielded: a waiter that goes away must not cancel the owner's future.
            if (kept := await asyncio.shield(pending)) is not None:
                return kept, "joined"
            # That call failed: look again (another waiter may own the key by now).

    @contextmanager
    def owning(self, key: str) -> Iterator["Keeper"]:
        """Mark `key`'s call open for the duration; what the block keeps is handed to the
        requests that waited, and kept for the next ones."""
        future: asyncio.Future[Kept | None] = asyncio.get_running_loop().create_future()
        self._open[key] = future
        keeper = Keeper()
        try:
            yield keeper
        finally:
            del self._open[key]
            if keeper.kept is not None:
                self._kept.put(key, keeper.kept)
            future.set_result(keeper.kept)


class Keeper:
    """What an owned call hands over: `keep` its answer once it has one worth replaying."""

    kept: Kept | None = None

    def keep(self, kept: Kept) -> None:
        self.kept = kept
