"""LeaseLock's parameter checks and the lease's watchdog; nothing here talks to Redis
(registering a script only hashes it)."""

import asyncio

import pytest
from redis.asyncio import Redis

from sift_common.errors import LeaseLostError, TransientError
from sift_common.locks import Lease, LeaseLock, LockBusyError


def _client() -> Redis:
    return Redis(host="127.0.0.1", port=1)  # never connected to


def test_renewal_defaults_to_a_third_of_the_lease() -> None:
    lock = LeaseLock(_client(), "k", lease_ms=30_000)
    assert lock.renew_every_ms == 10_000
    assert lock.fence_key == "k:fence"


@pytest.mark.parametrize(
    ("lease_ms", "renew_every_ms"), [(0, None), (-5, None), (1_000, 0), (1_000, 1_000)]
)
def test_renewal_must_fall_inside_the_lease(lease_ms: int, renew_every_ms: int | None) -> None:
    with pytest.raises(ValueError, match="renew_every_ms"):
        LeaseLock(_client(), "k", lease_ms=lease_ms, renew_every_ms=renew_every_ms)


def test_a_shared_fence_counter_can_be_named() -> None:
    assert LeaseLock(_client(), "k", fence_key="fences").fence_key == "fences"


def test_errors_are_transient() -> None:
    assert issubclass(LockBusyError, TransientError)
    assert issubclass(LeaseLostError, TransientError)


class FakeSwallowingLock:
    """A FAKE lock whose renewal turns the watchdog's cancellation into a TimeoutError, the way
    a cancel meeting `asyncio.timeout`'s own expiry was seen to come out of the real one."""

    key = "k"
    lease_ms = 60_000
    renew_every_ms = 10

    async def _extend(self, token: str) -> bool:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise TimeoutError from None
        return True

    async def _release(self, token: str) -> bool:
        return True


async def test_a_release_never_waits_for_ever_on_a_watchdog_that_swallowed_its_cancel() -> None:
    loop = asyncio.get_running_loop()
    lease = Lease(FakeSwallowingLock(), "t", 1, expires_at=loop.time() + 60)  # type: ignore[arg-type]
    async with asyncio.timeout(10):  # before the fix: the release waited for ever
        async with lease:
            await asyncio.sleep(0.05)  # the watchdog is inside a renewal now
    assert lease._watchdog is None
