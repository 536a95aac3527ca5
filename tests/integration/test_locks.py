"""The Redis lease lock against the real Redis: exclusion, owner-only release, renewal, fencing,
loss detection and busy handling. Timings are generous: the machine is small and shared."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from yarl import URL

from sift_common.errors import LeaseLostError
from sift_common.locks import Lease, LeaseLock, LockBusyError
from sift_common.redis_client import make_redis
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


async def _wait_until_gone(redis: Redis, key: str, within_s: float) -> None:
    async with asyncio.timeout(within_s):
        while await redis.exists(key):
            await asyncio.sleep(0.02)


def _watchdogs() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("lease-watchdog")]


async def test_only_one_of_many_concurrent_acquirers_wins(redis: Redis, namespace: str) -> None:
    key = f"{namespace}lock:doc"
    locks = [LeaseLock(redis, key, lease_ms=10_000) for _ in range(20)]

    leases = await asyncio.gather(*(lock.acquire() for lock in locks))

    winners = [lease for lease in leases if lease is not None]
    assert len(winners) == 1
    assert await redis.get(key) == winners[0].token
    assert await redis.get(f"{key}:fence") == str(winners[0].fencing_token)
    assert await winners[0].release()
    assert not await redis.exists(key)


async def test_release_by_a_non_owner_does_nothing(redis: Redis, namespace: str) -> None:
    key = f"{namespace}lock:doc"
    lock = LeaseLock(redis, key, lease_ms=10_000)
    owner = await lock.acquire()
    assert owner is not None
    impostor = Lease(lock, "not-the-token", owner.fencing_token, expires_at=float("inf"))

    assert not await impostor.release()

    assert await redis.get(key) == owner.token
    assert await owner.release()
    assert not await owner.release(), "a second release is not an owner's release"


async def test_watchdog_keeps_a_short_lease_alive(redis: Redis, namespace: str) -> None:
    key = f"{namespace}lock:doc"
    lock = LeaseLock(redis, key, lease_ms=300)
    lease = await lock.acquire()
    assert lease is not None

    async with lease:
        await asyncio.sleep(1.5)  # five lease lengths
        assert await redis.get(key) == lease.token
        assert not lease.lost.is_set()
        lease.check()

    assert not await redis.exists(key), "released on exit"
    assert _watchdogs() == [], "the watchdog task is gone"


async def test_without_the_watchdog_the_lease_expires(redis: Redis, namespace: str) -> None:
    key = f"{namespace}lock:doc"
    lease = await LeaseLock(redis, key, lease_ms=300).acquire()
    assert lease is not None
    assert await redis.get(key) == lease.token

    await _wait_until_gone(redis, key, within_s=3)

    with pytest.raises(LeaseLostError):
        lease.check()


async def test_an_expired_holder_cannot_release_the_next_holders_lock(
    redis: Redis, namespace: str
) -> None:
    key = f"{namespace}lock:doc"
    first = await LeaseLock(redis, key, lease_ms=200).acquire()
    assert first is not None
    await _wait_until_gone(redis, key, within_s=3)
    second = await LeaseLock(redis, key, lease_ms=10_000).acquire()
    assert second is not None

    assert not await first.release()

    assert await redis.get(key) == second.token
    assert second.fencing_token > first.fencing_token
    with pytest.raises(LeaseLostError):
        first.check()
    await second.release()


@pytest.mark.parametrize("takeover", ["delete", "overwrite"])
async def test_watchdog_detects_a_lost_lease(redis: Redis, namespace: str, takeover: str) -> None:
    key = f"{namespace}lock:doc"
    lock = LeaseLock(redis, key, lease_ms=600, renew_every_ms=150)
    lease = await lock.acquire()
    assert lease is not None

    async with lease:
        if takeover == "delete":
            await redis.delete(key)
        else:
            await redis.set(key, "someone-else", px=10_000)
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(lease.lost.wait(), timeout=5)  # expected within ~2 periods
        detected_after = asyncio.get_running_loop().time() - started
        with pytest.raises(LeaseLostError):
            lease.check()
        assert _watchdogs() == [], "the watchdog stops once the lease is lost"

    assert detected_after < 2.0, f"took {detected_after:.2f} s for 150 ms renewals"
    expected = None if takeover == "delete" else "someone-else"
    assert await redis.get(key) == expected, "exit did not touch the new owner's key"


async def test_hold_raises_busy_then_waits_for_the_holder(redis: Redis, namespace: str) -> None:
    key = f"{namespace}lock:doc"
    holder = LeaseLock(redis, key, lease_ms=5_000)
    waiter = LeaseLock(redis, key, lease_ms=5_000)

    async with holder.hold() as first:
        with pytest.raises(LockBusyError, match="held by another owner"):
            async with waiter.hold():
                pytest.fail("entered a held lock")

        async def wait_for_it() -> int:
            async with waiter.hold(wait_s=10) as second:
                assert await redis.get(key) == second.token
                return second.fencing_token

        waiting = asyncio.create_task(wait_for_it())
        await asyncio.sleep(0.3)
        assert not waiting.done()
    # `first` released on leaving the block; the waiter gets the lock.
    assert await asyncio.wait_for(waiting, timeout=10) > first.fencing_token
    assert not await redis.exists(key)


async def test_hold_releases_when_the_block_raises(redis: Redis, namespace: str) -> None:
    key = f"{namespace}lock:doc"

    async def failing_work() -> None:
        async with LeaseLock(redis, key).hold():
            assert await redis.exists(key)
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await failing_work()
    assert not await redis.exists(key)
    assert _watchdogs() == []


async def test_renewal_errors_are_retried_until_the_lease_runs_out(
    redis: Redis, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Redis cannot be made to fail on cue for one client only, so renewals are broken by hand.
    key = f"{namespace}lock:doc"
    lock = LeaseLock(redis, key, lease_ms=1_000, renew_every_ms=100)
    real_extend = lock._extend
    failing = True

    async def flaky_extend(token: str) -> bool:
        if failing:
            raise RedisConnectionError("connection refused")
        return await real_extend(token)

    monkeypatch.setattr(lock, "_extend", flaky_extend)
    lease = await lock.acquire()
    assert lease is not None
    async with lease:
        await asyncio.sleep(0.35)  # a few failures, well inside the lease
        assert not lease.lost.is_set(), "transient errors inside the lease are tolerated"
        failing = False
        await asyncio.sleep(1.2)  # past the original expiry: renewals must have resumed
        assert not lease.lost.is_set()
        assert await redis.get(key) == lease.token

        failing = True
        await asyncio.wait_for(lease.lost.wait(), timeout=5)
        with pytest.raises(LeaseLostError):
            lease.check()


async def test_a_redis_outage_shorter_than_the_lease_left_keeps_the_lease(
    redis_url: str, namespace: str
) -> None:
    """Redis unreachable (connections cut, new ones refused) right after each renewal, for 60 %
    of the lease: the next renewal meets the outage, and must get through once Redis is back,
    with 0.4 of the lease still to run. The Redis client's own reconnect backoff (up to
    seconds between tries) once slept through that margin and the lease was lost."""
    url = URL(redis_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 6379)
    await proxy.start()
    client = make_redis(str(url.with_host("127.0.0.1").with_port(proxy.port)))
    key = f"{namespace}lock:doc"
    lock = LeaseLock(client, key, lease_ms=1_000)
    renewed = asyncio.Event()
    real_extend = lock._extend

    async def noted_extend(token: str) -> bool:
        ok = await real_extend(token)
        renewed.set()
        return ok

    lock._extend = noted_extend  # type: ignore[method-assign]
    try:
        lease = await lock.acquire()
        assert lease is not None
        async with lease:
            for _ in range(5):
                renewed.clear()
                await asyncio.wait_for(renewed.wait(), timeout=5)
                assert await proxy.cut(refuse_s=0.6) >= 1, "the client's connection was cut"
                await asyncio.sleep(0.6)
                assert not lease.lost.is_set(), "lost to an outage shorter than the lease left"
            assert proxy.stats.refused >= 5, "the renewals met the outages"
            lease.check()
            assert await client.get(key) == lease.token.encode()
    finally:
        await client.aclose()
        await proxy.close()


async def test_a_release_that_cannot_reach_redis_leaves_the_key_to_run_out(
    redis: Redis, redis_url: str, namespace: str
) -> None:
    """Redis unreachable as the block ends: the block's work is done, so the release failing
    must not raise out of `async with` (it once did: a published analysis went back to the
    retry ladder); the key expires by itself within the lease."""
    url = URL(redis_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 6379)
    await proxy.start()
    client = make_redis(str(url.with_host("127.0.0.1").with_port(proxy.port)))
    key = f"{namespace}lock:doc"
    try:
        lease = await LeaseLock(client, key, lease_ms=2_000).acquire()
        assert lease is not None
        async with lease:
            assert await proxy.cut(refuse_s=60) >= 1, "the client's connection was cut"
        assert proxy.stats.refused >= 1, "the release met the outage"
        assert _watchdogs() == []
        await _wait_until_gone(redis, key, within_s=5)
    finally:
        await client.aclose()
        await proxy.close()


async def test_fencing_tokens_keep_rising_after_redis_loses_its_data(
    redis: Redis, namespace: str
) -> None:
    key = f"{namespace}lock:doc"
    first = await LeaseLock(redis, key, lease_ms=10_000).acquire()
    assert first is not None
    await redis.delete(key, f"{key}:fence")  # what a restart without persistence leaves
    second = await LeaseLock(redis, key, lease_ms=10_000).acquire()
    assert second is not None
    assert second.fencing_token > first.fencing_token  # a counter would have restarted at 1
    await second.release()


async def test_the_fence_key_expires_instead_of_piling_up(redis: Redis, namespace: str) -> None:
    key = f"{namespace}lock:doc"
    lease = await LeaseLock(redis, key, lease_ms=1_000).acquire()
    assert lease is not None
    assert 0 < await redis.pttl(f"{key}:fence") <= 60_000
    await lease.release()


async def test_a_retried_acquire_that_already_holds_gets_its_own_token(
    redis: Redis, namespace: str
) -> None:
    """The reply of a successful acquire lost with its connection: the client's retry runs the
    script again with the same token, and must not report the lock as busy."""
    lock = LeaseLock(redis, f"{namespace}lock:doc", lease_ms=10_000)
    args = ["token-1", lock.lease_ms, 60_000]
    keys = [lock.key, lock.fence_key]
    fence = await lock._acquire_script(keys=keys, args=args)
    assert fence > 0
    assert await lock._acquire_script(keys=keys, args=args) == fence
    assert await lock._acquire_script(keys=keys, args=["token-2", 10_000, 60_000]) == 0
