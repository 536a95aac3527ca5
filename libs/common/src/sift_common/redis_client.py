"""The one way a service opens Redis: a bounded pool that waits, and sockets that time out.

redis-py's default pool raises `MaxConnectionsError` when more coroutines than its size need
a connection at once, and its sockets wait forever on a server that stopped answering. Here a
caller waits up to `POOL_WAIT_S` for a free connection, every command is bounded by
`SOCKET_TIMEOUT_S`, and a dropped connection is retried a few times with backoff before the
error reaches the caller (where `sift_common.classify` calls it transient).

A retried command may run twice when the connection died after the server ran it and before
the reply came back: every write Sift sends is idempotent for that reason (a lock acquire or a
dedup claim that finds its own token reports success).
"""

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

CONNECT_TIMEOUT_S = 3.0
SOCKET_TIMEOUT_S = 10.0
POOL_WAIT_S = 10.0
RETRIES = 6  # with the backoff below: rides out a Redis restart of a few seconds


def make_redis(url: str, *, max_connections: int = 64) -> Redis:
    retry = Retry(ExponentialWithJitterBackoff(base=0.1, cap=2.0), RETRIES)
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=POOL_WAIT_S,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=SOCKET_TIMEOUT_S,
        health_check_interval=30,
        retry=retry,
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return Redis(connection_pool=pool)
