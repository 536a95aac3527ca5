"""Admission control: a cap on in-flight requests per replica, and a waiting line ordered by
priority class, then estimated prefill cost (shortest first), with aging so nothing starves.

Queueing here (instead of rejecting, or piling everything onto vLLM) keeps vLLM's batch full
while letting interactive, short requests overtake backfills. A request that waits longer
than its limit gets a 503 with `Retry-After`.
"""

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from enum import IntEnum


class PriorityClass(IntEnum):
    """Lower is more urgent; the value is also sent as vLLM's `priority`."""

    INTERACTIVE = 0
    NORMAL = 1
    BACKFILL = 2


class QueueTimeoutError(Exception):
    def __init__(self, waited_s: float, retry_after_s: int) -> None:
        super().__init__(f"waited {waited_s:.1f} s for a free upstream slot")
        self.retry_after_s = retry_after_s


@dataclass
class Waiter:
    priority: PriorityClass
    cost_tokens: int
    enqueued_at: float
    sequence: int
    future: asyncio.Future[None] = field(repr=False)

    def rank(self, now: float, class_weight_tokens: float, aging_tokens_per_s: float) -> float:
        """Smaller goes first: class dominates, then cost; waiting time wears both down."""
        waited = now - self.enqueued_at
        return self.priority * class_weight_tokens + self.cost_tokens - waited * aging_tokens_per_s


@dataclass
class AdmissionQueue:
    """One waiting line per profile, shared by its replicas' slots."""

    capacity: int
    max_wait_s: float = 30.0
    class_weight_tokens: float = 4_000.0
    aging_tokens_per_s: float = 500.0
    in_flight: int = 0
    waiters: list[Waiter] = field(default_factory=list)
    finished_at: float = field(default_factory=time.monotonic)  # the idle signal's origin
    _sequence: "itertools.count[int]" = field(default_factory=itertools.count)

    def try_acquire(self) -> bool:
        """Take a free slot without waiting (the common case), if nobody is queued before us."""
        if self.in_flight < self.capacity and not self.waiters:
            self.in_flight += 1
            return True
        return False

    async def acquire(self, priority: PriorityClass, cost_tokens: int) -> None:
        """Wait for a slot; raises QueueTimeoutError after `max_wait_s`."""
        if self.try_acquire():
            return
        loop = asyncio.get_running_loop()
        waiter = Waiter(
            priority, cost_tokens, time.monotonic(), next(self._sequence), loop.create_future()
        )
        self.waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), self.max_wait_s)
        except TimeoutError:
            if waiter.future.done() and not waiter.future.cancelled():
                return  # granted at the last moment: keep the slot
            self._forget(waiter)
            raise QueueTimeoutError(self.max_wait_s, max(1, round(self.max_wait_s / 4))) from None
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self.release()  # granted, but the caller went away: pass the slot on
            else:
                self._forget(waiter)
            raise

    def release(self) -> None:
        """Free a slot and hand it to the best-ranked waiter, if any."""
        self.in_flight -= 1
        self.finished_at = time.monotonic()
        self._grant()

    def resize(self, capacity: int) -> None:
        self.capacity = capacity
        self._grant()

    def _grant(self) -> None:
        while self.waiters and self.in_flight < self.capacity:
            now = time.monotonic()
            best = min(
                self.waiters,
                key=lambda w: (
                    w.rank(now, self.class_weight_tokens, self.aging_tokens_per_s),
                    w.sequence,
                ),
            )
            self.waiters.remove(best)
            if best.future.done():
                continue
            self.in_flight += 1
            best.future.set_result(None)

    def _forget(self, waiter: Waiter) -> None:
        if waiter in self.waiters:
            self.waiters.remove(waiter)
        waiter.future.cancel()
