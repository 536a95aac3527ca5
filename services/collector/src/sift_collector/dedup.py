"""Cross-source dedup: a document whose content was seen inside the window is not published.

The check and the mark are one atomic `SET NX EX` on the content hash, so two replicas (or two
copies in one batch) cannot both win. A claim whose publish then fails is given back, so a
document refused by a broken broker is not silently treated as seen.
"""

from redis.asyncio import Redis

from sift_common.contracts import Document

# Delete the mark only if this claim made it (a later claim by another document stays).
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class Deduplicator:
    def __init__(self, redis: Redis, *, window_s: int, prefix: str = "") -> None:
        if window_s <= 0:
            raise ValueError("the dedup window must be positive")
        self._redis = redis
        self._window_s = window_s
        self._prefix = prefix
        self._release = redis.register_script(_RELEASE)

    def key(self, document: Document) -> str:
        return f"{self._prefix}sift:dedup:{document.content_hash}"

    async def claim(self, documents: list[Document]) -> list[bool]:
        """For each document, True if it is new (and now marked), False if seen in the window.
        One round trip for the whole batch; a repeat inside the batch is a duplicate too."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for document in documents:
                pipe.set(self.key(document), document.id, nx=True, ex=self._window_s)
            results = await pipe.execute()
        return [bool(result) for result in results]

    async def release(self, documents: list[Document]) -> None:
        """Give back claims whose documents could not be published."""
        for document in documents:
            await self._release(keys=[self.key(document)], args=[document.id])
