"""The ingest API's rate limit: a moving window of requests per publisher, kept in Redis."""

import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter, RateLimiter
from limits.errors import StorageError

from sift_collector.ingest import DependencyUnavailableError
from sift_collector.settings import CollectorSettings
from sift_common.errors import ConfigError

CONNECT_TIMEOUT_S = 2.0
SOCKET_TIMEOUT_S = 5.0


class PublisherRateLimit:
    """A moving-window budget of requests per publisher (a publisher's keys share it)."""

    def __init__(self, limiter: RateLimiter, item: RateLimitItem) -> None:
        self._limiter, self._item = limiter, item

    async def retry_after(self, publisher: str) -> int | None:
        """None when the request may go on, else whole seconds until the window has room."""
        try:
            if await self._limiter.hit(self._item, publisher):
                return None
            stats = await self._limiter.get_window_stats(self._item, publisher)
        except StorageError as exc:
            raise DependencyUnavailableError(f"rate limit storage: {exc}") from exc
        return max(1, math.ceil(stats.reset_time - time.time()))


def publisher_rate_limit(settings: CollectorSettings) -> PublisherRateLimit:
    """`SIFT_COLLECTOR_RATE_LIMIT` per publisher, in the Redis of `SIFT_REDIS_URL` (no I/O)."""
    try:
        item = parse(settings.collector_rate_limit)
    except ValueError as exc:
        raise ConfigError(f"SIFT_COLLECTOR_RATE_LIMIT: {exc}") from exc
    storage = RedisStorage(
        f"async+{settings.redis_url}",
        implementation="redispy",
        key_prefix=f"{settings.namespace}sift:ratelimit",
        wrap_exceptions=True,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=SOCKET_TIMEOUT_S,
    )
    return PublisherRateLimit(MovingWindowRateLimiter(storage), item)
