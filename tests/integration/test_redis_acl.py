"""Redis ACL users on a private Redis (never the developer's: users change here): each service's
user does its own work through the real components, and cannot touch the other's keys or run
administrative commands."""

from collections.abc import AsyncIterator, Iterator

import pytest
from limits import parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError

from sift_analyzer.cache import ResultCache
from sift_collector.dedup import Claim, Deduplicator
from sift_collector.rate_limit import PublisherRateLimit
from sift_collector.sources.state import SourceState, SourceStore
from sift_common.locks import LeaseLock
from sift_common.redis_acl import provision_redis_users, redis_users
from tests.support.private_services import PrivateRedis
from tests.support.rabbit import sample_event

pytestmark = pytest.mark.integration

NS = "t1."
PASSWORDS = {"collector": "c-secret", "analyzer": "a-secret"}


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    redis = PrivateRedis(tmp_path_factory.mktemp("redis"))
    try:
        redis.start()
        yield redis
    finally:
        redis.stop()


def user_url(private_redis: PrivateRedis, service: str) -> str:
    return f"redis://sift-{service}:{PASSWORDS[service]}@127.0.0.1:{private_redis.port}/0"


@pytest.fixture
async def clients(private_redis: PrivateRedis) -> AsyncIterator[dict[str, Redis]]:
    admin = Redis.from_url(private_redis.url)
    for _ in range(2):  # idempotent
        done = await provision_redis_users(admin, redis_users(NS), PASSWORDS)
    assert done[-1].startswith("NOT persisted")  # this Redis has neither aclfile nor config
    clients = {s: Redis.from_url(user_url(private_redis, s)) for s in PASSWORDS}
    try:
        yield clients
    finally:
        for client in [admin, *clients.values()]:
            await client.aclose()


async def test_the_collector_does_its_work(
    private_redis: PrivateRedis, clients: dict[str, Redis]
) -> None:
    redis = clients["collector"]
    document = sample_event().document
    dedup = Deduplicator(redis, window_s=60, prefix=NS)
    assert await dedup.claim([document], "token-1", pending_s=5) == [Claim.WON]
    await dedup.settle("token-1", commit=[document], release=[])
    sources = SourceStore(redis, NS)
    lock = LeaseLock(redis, sources.lock_key("feed"), lease_ms=5_000)
    lease = await lock.acquire()
    assert lease is not None
    assert await sources.save("feed", SourceState(), fence=lease.fencing_token)
    assert await sources.cursor("feed") is not None
    assert await lease.release()
    storage = RedisStorage(
        f"async+{user_url(private_redis, 'collector')}",
        implementation="redispy",
        key_prefix=f"{NS}sift:ratelimit",
    )
    limit = PublisherRateLimit(MovingWindowRateLimiter(storage), parse("1/minute"))
    assert await limit.retry_after("publisher") is None
    assert await limit.retry_after("publisher") is not None


async def test_the_analyzer_does_its_work(clients: dict[str, Redis]) -> None:
    redis = clients["analyzer"]
    lease = await LeaseLock(redis, f"{NS}sift:lock:work-1", lease_ms=5_000).acquire()
    assert lease is not None
    cache = ResultCache(redis, SourceState, prefix=NS, ttl_s=60)  # any model will do
    await cache.put("work-1", SourceState(consecutive_failures=2))
    assert await cache.get("work-1") == SourceState(consecutive_failures=2)
    assert await redis.set(f"{NS}sift:pending:e", "1", ex=60)
    assert await lease.release()


@pytest.mark.parametrize(
    ("service", "key"),
    [
        ("collector", f"{NS}sift:lock:work-1"),
        ("collector", f"{NS}sift:result:work-1"),
        ("analyzer", f"{NS}sift:dedup:abc"),
        ("analyzer", f"{NS}sift:source-state:feed"),
        ("collector", "sift:dedup:abc"),  # another namespace
    ],
)
async def test_a_service_cannot_touch_another_services_keys(
    clients: dict[str, Redis], service: str, key: str
) -> None:
    redis = clients[service]
    with pytest.raises(NoPermissionError):
        await redis.get(key)
    with pytest.raises(NoPermissionError):
        await redis.set(key, "forged")
    with pytest.raises(NoPermissionError):  # nor from a script
        await redis.eval("return redis.call('GET', KEYS[1])", 1, key)


@pytest.mark.parametrize(
    "command",
    [("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "GET", "*"), ("KEYS", "*"), ("ACL", "LIST"),
     ("SCRIPT", "FLUSH"), ("CLIENT", "LIST"), ("SHUTDOWN",), ("PUBLISH", "c", "m")],
)  # fmt: skip
async def test_no_service_runs_administrative_commands(
    clients: dict[str, Redis], command: tuple[str, ...]
) -> None:
    for redis in clients.values():
        with pytest.raises(NoPermissionError):
            await redis.execute_command(*command)
