"""A Redis lease lock with fencing tokens and a watchdog that renews the lease while work runs.

    lock = LeaseLock(redis, f"lock:analyze:{document_id}", lease_ms=30_000)
    async with lock.hold() as lease:       # LockBusyError when another worker holds it
        result = await call_llm(...)       # the watchdog keeps extending the lease meanwhile
        lease.check()                      # LeaseLostError when the lease was lost
        await store(result, fence=lease.fencing_token)  # the database rejects stale fences

The lock only stops two workers doing the same expensive work at once; correctness rests on the
fencing token: every successful acquire takes a token in the same Lua script as the `SET NX`,
so a later holder always carries a larger token than an earlier one and the database write
can refuse a token smaller than the one it already stored.

The token is Redis's clock in microseconds, raised above the last token issued for the key
(`<key>:fence`) when two acquires share a microsecond. So the counter key may expire (one per
lock key would otherwise pile up for ever), and a Redis that restarts with its data lost still
hands out larger tokens than before: both rest on the server clock moving forward, which the
lease itself already assumes. A retried acquire (its reply lost with the connection) that finds
its own token in the key returns the same fencing token instead of reporting the lock busy.

Why not `redis.asyncio.lock.Lock` itself: it keeps one mutable token per Lock object (in a
`threading.local`, which every coroutine on an event loop shares), so one object cannot stand for
two acquisitions; its acquire is a plain `SET NX` with nowhere to put an atomic fencing `INCR`;
its token is a `uuid1` (time and MAC address, not random); and loss of ownership surfaces as
exceptions from `release`/`extend`. So the lease state is ours, but the release
(compare-and-delete) and renewal (compare-and-`PEXPIRE`) Lua are the library's own scripts.
"""

import asyncio
import logging
import random
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType

from redis.asyncio import Redis
from redis.asyncio.lock import Lock as _RedisLock
from redis.exceptions import RedisError

from sift_common.errors import LeaseLostError, TransientError

logger = logging.getLogger(__name__)

# KEYS[1] lock key, KEYS[2] last fence; ARGV[1] token, ARGV[2] lease in ms, ARGV[3] fence TTL ms.
# Returns the fencing token (>= 1), or 0 when the lock is held by someone else. Tokens stay
# below 2^53 (microseconds since 1970), so Lua's doubles hold them exactly.
_ACQUIRE_SCRIPT = """
local holder = redis.call('get', KEYS[1])
if holder == ARGV[1] then
    return tonumber(redis.call('get', KEYS[2]) or '0')
end
if holder then
    return 0
end
local now = redis.call('time')
local fence = tonumber(now[1]) * 1000000 + tonumber(now[2])
local last = tonumber(redis.call('get', KEYS[2]) or '0')
if fence <= last then
    fence = last + 1
end
local text = string.format('%.0f', fence)
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('set', KEYS[2], text, 'PX', ARGV[3])
return fence
"""
# The last fence must outlive any clock step back it guards against; a minute is plenty.
_FENCE_TTL_MS = 60_000
_RELEASE_SCRIPT = _RedisLock.LUA_RELEASE_SCRIPT  # KEYS[1]; ARGV token -> 1 deleted, 0 not owner
_EXTEND_SCRIPT = _RedisLock.LUA_REACQUIRE_SCRIPT  # KEYS[1]; ARGV token, ms -> 1 renewed, 0 lost

_STOP_WAIT_S = 5.0  # the longest a release waits for its watchdog to end
_POLL_S = 0.05  # mean pause between attempts (busy lock, failed renewal), jittered ±50 %
_MIN_ATTEMPT_S = 0.1  # the shortest time one renewal attempt is given


class LockBusyError(TransientError):
    """The lock is held by another owner and was not freed within the time allowed."""


class LeaseLock:
    """A named lease lock in Redis; each successful `acquire` returns a new `Lease`."""

    def __init__(
        self,
        redis: Redis,
        key: str,
        lease_ms: int = 30_000,
        renew_every_ms: int | None = None,
        *,
        fence_key: str | None = None,
    ) -> None:
        renew_ms = lease_ms // 3 if renew_every_ms is None else renew_every_ms
        if lease_ms <= 0 or not 0 < renew_ms < lease_ms:
            raise ValueError(f"need 0 < renew_every_ms ({renew_ms}) < lease_ms ({lease_ms})")
        self.key = key
        # One last-fence key per lock key (it expires), unless several locks share one.
        self.fence_key = fence_key if fence_key is not None else f"{key}:fence"
        self.lease_ms = lease_ms
        self.renew_every_ms = renew_ms
        self._acquire_script = redis.register_script(_ACQUIRE_SCRIPT)
        self._release_script = redis.register_script(_RELEASE_SCRIPT)
        self._extend_script = redis.register_script(_EXTEND_SCRIPT)

    async def acquire(self, wait_s: float = 0) -> "Lease | None":
        """A new lease, or None when the lock is still held by another owner after `wait_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            lease = await self._try_acquire()
            remaining = deadline - loop.time()
            if lease is not None or remaining <= 0:
                return lease
            await asyncio.sleep(min(remaining, _POLL_S * random.uniform(0.5, 1.5)))

    @asynccontextmanager
    async def hold(self, wait_s: float = 0) -> AsyncIterator["Lease"]:
        """Acquire (or raise LockBusyError), renew while the block runs, release on exit."""
        lease = await self.acquire(wait_s)
        if lease is None:
            raise LockBusyError(f"lock {self.key!r} is held by another owner (waited {wait_s} s)")
        async with lease:
            yield lease

    async def _try_acquire(self) -> "Lease | None":
        token = secrets.token_hex(16)
        sent_at = asyncio.get_running_loop().time()
        fence = int(
            await self._acquire_script(
                keys=[self.key, self.fence_key],
                args=[token, self.lease_ms, max(_FENCE_TTL_MS, 2 * self.lease_ms)],
            )
        )
        if fence == 0:
            return None
        return Lease(self, token, fence, expires_at=sent_at + self.lease_ms / 1000)

    async def _extend(self, token: str) -> bool:
        return bool(await self._extend_script(keys=[self.key], args=[token, self.lease_ms]))

    async def _release(self, token: str) -> bool:
        return bool(await self._release_script(keys=[self.key], args=[token]))


class Lease:
    """One holding of a `LeaseLock`. As an async context manager it runs the renewing watchdog
    for the duration of the block and releases on exit.

    `lost` is set when the watchdog finds the key gone or owned by another token, or could not
    reach Redis before the lease ran out; `check()` also fails once the lease has run out
    locally without a renewal (a lease used without the watchdog)."""

    def __init__(self, lock: LeaseLock, token: str, fencing_token: int, expires_at: float) -> None:
        self.key = lock.key
        self.token = token
        self.fencing_token = fencing_token
        self.lost = asyncio.Event()
        self._lock = lock
        # Event-loop time by which Redis has surely expired the key unless renewed: counted from
        # when the command was sent, so it errs early.
        self._expires_at = expires_at
        self._watchdog: asyncio.Task[None] | None = None
        self._stopping = False
        self._released = False

    def check(self) -> None:
        """Raise LeaseLostError unless the lease is still known to be held."""
        if self.lost.is_set() or asyncio.get_running_loop().time() >= self._expires_at:
            raise LeaseLostError(
                f"lease on {self.key!r} (fencing token {self.fencing_token}) was lost"
            )

    async def release(self) -> bool:
        """Stop the watchdog and delete the key if it still holds this lease's token.
        Returns False when it did not (expired, taken over, or already released)."""
        await self._stop_watchdog()
        if self._released:
            return False
        released = await self._lock._release(self.token)
        self._released = True
        return released

    async def __aenter__(self) -> "Lease":
        if self._watchdog is not None or self._released:
            raise RuntimeError("a lease can be entered only once, and not after release")
        self._watchdog = asyncio.create_task(self._watch(), name=f"lease-watchdog {self.key}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._released:
            return
        try:
            released = await self.release()
        except (RedisError, TimeoutError) as exc:
            # The block's work is done (or its own error is on the way out): a release that
            # cannot reach Redis must not turn it into a failure; the key runs out by itself.
            self._released = True
            logger.warning(
                "lease not released, Redis unreachable; it expires within the lease: %r",
                exc,
                extra={"lock_key": self.key, "fencing_token": self.fencing_token},
            )
            return
        if not released and not self.lost.is_set():
            logger.warning(
                "lease was no longer held at release",
                extra={"lock_key": self.key, "fencing_token": self.fencing_token},
            )

    async def _stop_watchdog(self) -> None:
        """Stop renewing. The flag ends the loop even should a cancellation be swallowed on the
        way (seen: a cancel that met the renewal's own timeout came out as a TimeoutError, the
        loop went on renewing, and the release waited for it for ever); the wait is bounded
        too, so a release can never hang on its watchdog."""
        task, self._watchdog = self._watchdog, None
        self._stopping = True
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=_STOP_WAIT_S)  # never raises into the caller

    async def _watch(self) -> None:
        try:
            await self._renew_until_lost()
        except Exception:  # a bug: log it loudly; the lease can no longer be trusted
            logger.exception("lease watchdog crashed", extra={"lock_key": self.key})
            self.lost.set()

    async def _renew_until_lost(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self._lock.renew_every_ms / 1000
        # Each renewal attempt is short and a failed one is retried at once: the Redis client's
        # own backoff between reconnects (up to seconds) must not sleep through the moment a
        # restarted Redis is back while the lease still has a fraction of a second to run.
        attempt_s = min(interval, max(_MIN_ATTEMPT_S, interval / 4))
        pause, warned, renewed_at = interval, False, loop.time()
        while not self._stopping:
            await asyncio.sleep(pause)
            if self._stopping:
                return
            sent_at = loop.time()
            try:
                async with asyncio.timeout(max(min(self._expires_at - sent_at, attempt_s), 0)):
                    renewed = await self._lock._extend(self.token)
            except (RedisError, TimeoutError) as exc:
                if self._stopping:
                    return
                if loop.time() < self._expires_at:
                    if not warned:  # once per outage, not once per attempt
                        warned = True
                        logger.warning(
                            "lease renewal failed, retrying until the lease runs out: %r",
                            exc,
                            extra={"lock_key": self.key, "fencing_token": self.fencing_token},
                        )
                    pause = _POLL_S * random.uniform(0.5, 1.5)
                    continue
                self._mark_lost(f"Redis unreachable until the lease ran out: {exc!r}")
                return
            if not renewed:
                # How late the renewal came tells a starved process from a key taken away.
                late = sent_at - renewed_at
                self._mark_lost(
                    f"the key expired or holds another owner's token ({late:.1f} s after the "
                    f"last renewal, lease {self._lock.lease_ms / 1000:g} s)"
                )
                return
            self._expires_at = sent_at + self._lock.lease_ms / 1000
            pause, warned, renewed_at = interval, False, sent_at

    def _mark_lost(self, reason: str) -> None:
        self.lost.set()
        logger.warning(
            "lease lost: %s",
            reason,
            extra={"lock_key": self.key, "fencing_token": self.fencing_token},
        )
