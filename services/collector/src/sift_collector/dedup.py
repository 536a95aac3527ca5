"""Cross-source dedup: a document whose content was published inside the window is not
published again.

A claim on a content hash (`<prefix>sift:dedup:<hash>`) is in one of two states, kept in its
value:

- **pending** (`p:<token>`, expiring after a short `pending_s`): taken before the publish with
  one atomic `SET NX PX … GET`, so two replicas (or two batches) cannot both win, and the
  loser learns the state of the claim it lost to;
- **committed** (`c:<token>`, expiring after the window): written by `commit` only once the
  broker confirmed the publish — if the claim is still this one, or has lapsed (the document
  did go out, so the window starts now).

Every other outcome gives a pending claim back (`release`: deleted only if it is still this
one). A claimant that crashes, or whose release fails, leaves a pending claim that expires on
its own after `pending_s`: an unconfirmed document is never held back for the window. A value
without a state prefix (written before claims had states) counts as committed.

What a second submitter of the same content does with a pending claim is the publisher's
business (`sift_collector.publisher`). Needs Redis ≥ 7.0 (`SET` with both `NX` and `GET`).
"""

from collections.abc import Sequence
from enum import Enum

from redis.asyncio import Redis

from sift_common.contracts import Document

PENDING, COMMITTED = "p:", "c:"

# KEYS: the claims to commit, then those to give back; ARGV: how many to commit, this claim's
# pending and committed values, the window. A commit takes a claim that is still this one or has
# lapsed; a give-back deletes only this one (a later claim by another stays).
_SETTLE = """
local commits = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local value = redis.call('get', key)
  if i <= commits then
    if value == ARGV[2] or not value then redis.call('set', key, ARGV[3], 'EX', ARGV[4]) end
  elseif value == ARGV[2] then
    redis.call('del', key)
  end
end
return 0
"""


class Claim(Enum):
    """What a claim attempt found."""

    WON = "won"  # new: this caller holds the pending claim and publishes
    DUPLICATE = "duplicate"  # published inside the window
    PENDING = "pending"  # another submission is publishing it right now


def claim_of(previous: bytes | str | None, token: str) -> Claim:
    """The outcome of `SET NX GET`, from the value that was there (None: there was none).
    Finding this very claim's value means the command ran twice (the client retried after a
    reply lost with its connection): the first run won."""
    if previous is None:
        return Claim.WON
    text = previous.decode() if isinstance(previous, bytes) else previous
    if text == PENDING + token:
        return Claim.WON
    return Claim.PENDING if text.startswith(PENDING) else Claim.DUPLICATE


class Deduplicator:
    def __init__(self, redis: Redis, *, window_s: int, prefix: str = "") -> None:
        if window_s <= 0:
            raise ValueError("the dedup window must be positive")
        self._redis = redis
        self._window_s = window_s
        self._prefix = prefix
        self._settle_script = redis.register_script(_SETTLE)

    def key(self, document: Document) -> str:
        return f"{self._prefix}sift:dedup:{document.content_hash}"

    async def claim(
        self, documents: Sequence[Document], token: str, pending_s: float
    ) -> list[Claim]:
        """Claim each document as pending for `pending_s` under `token` (one round trip).
        The documents should be distinct by content: a repeat would find the first's claim."""
        pending_ms = max(1, round(pending_s * 1000))
        async with self._redis.pipeline(transaction=False) as pipe:
            for document in documents:
                pipe.set(self.key(document), PENDING + token, nx=True, px=pending_ms, get=True)
            results = await pipe.execute()
        return [claim_of(result, token) for result in results]

    async def settle(
        self, token: str, *, commit: Sequence[Document], release: Sequence[Document]
    ) -> None:
        """Commit the claims of confirmed documents for the window and give back the others,
        in one script call; a claim that is no longer this token's is left alone."""
        if not commit and not release:
            return
        keys = [self.key(document) for document in [*commit, *release]]
        args: list[str | int] = [len(commit), PENDING + token, COMMITTED + token, self._window_s]
        await self._settle_script(keys=keys, args=args)
