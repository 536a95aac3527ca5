"""The admission queue: priority classes, shortest-first within a class, aging, queue timeout,
and no slot lost to a waiter that goes away."""

import asyncio
from types import SimpleNamespace

import pytest

from sift_gateway import admission
from sift_gateway.admission import AdmissionQueue, PriorityClass, QueueTimeoutError

INTERACTIVE, NORMAL, BACKFILL = (
    PriorityClass.INTERACTIVE,
    PriorityClass.NORMAL,
    PriorityClass.BACKFILL,
)


class Clock:
    """A fake time.monotonic() for the admission module only (the event loop keeps real time)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(admission, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


class Line:
    """Waiters started one after another on a saturated queue; records who got a slot when."""

    def __init__(self, queue: AdmissionQueue) -> None:
        self.queue = queue
        self.granted: list[str] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def enqueue(self, name: str, priority: PriorityClass, cost: int = 100) -> None:
        async def wait() -> None:
            await self.queue.acquire(priority, cost)
            self.granted.append(name)

        self.tasks.append(asyncio.create_task(wait()))
        await settle()

    async def release_all(self) -> list[str]:
        while len(self.granted) < len(self.tasks):
            before = len(self.granted)
            self.queue.release()
            await settle()
            assert len(self.granted) == before + 1, "a release granted no waiter"
        await asyncio.gather(*self.tasks)
        return self.granted


async def test_free_capacity_admits_immediately() -> None:
    queue = AdmissionQueue(capacity=2)
    await queue.acquire(BACKFILL, 10)
    await queue.acquire(BACKFILL, 10)
    assert queue.in_flight == 2
    assert queue.waiters == []


async def test_priority_order_under_a_saturated_cap(clock: Clock) -> None:
    queue = AdmissionQueue(capacity=1)
    await queue.acquire(NORMAL, 10)  # the one slot is held
    line = Line(queue)
    await line.enqueue("backfill", BACKFILL)
    await line.enqueue("interactive", INTERACTIVE)
    await line.enqueue("normal", NORMAL)
    assert line.granted == []
    assert len(queue.waiters) == 3
    assert await line.release_all() == ["interactive", "normal", "backfill"]
    assert queue.in_flight == 1
    assert queue.waiters == []


async def test_shortest_cost_first_within_a_class(clock: Clock) -> None:
    queue = AdmissionQueue(capacity=1)
    await queue.acquire(NORMAL, 10)
    line = Line(queue)
    await line.enqueue("long", NORMAL, cost=3000)
    await line.enqueue("short", NORMAL, cost=50)
    await line.enqueue("medium", NORMAL, cost=800)
    await line.enqueue("short-too", NORMAL, cost=50)  # a tie keeps arrival order
    assert await line.release_all() == ["short", "short-too", "medium", "long"]


async def test_a_cheap_normal_does_not_overtake_an_expensive_interactive(clock: Clock) -> None:
    queue = AdmissionQueue(capacity=1, class_weight_tokens=4000)
    await queue.acquire(NORMAL, 10)
    line = Line(queue)
    await line.enqueue("normal-cheap", NORMAL, cost=1)
    await line.enqueue("interactive-big", INTERACTIVE, cost=3000)
    assert await line.release_all() == ["interactive-big", "normal-cheap"]


async def test_aging_lets_an_old_backfill_overtake_fresh_interactive_ones(clock: Clock) -> None:
    queue = AdmissionQueue(capacity=1, class_weight_tokens=4000, aging_tokens_per_s=500)
    await queue.acquire(NORMAL, 10)
    line = Line(queue)
    await line.enqueue("old-backfill", BACKFILL)
    clock.now += 5.0  # 2 500 tokens of aging: still behind an interactive (8 000 apart)
    await line.enqueue("interactive-1", INTERACTIVE)
    queue.release()
    await settle()
    assert line.granted == ["interactive-1"]
    clock.now += 20.0  # waited 25 s: 12 500 tokens of aging, more than two classes
    await line.enqueue("interactive-2", INTERACTIVE)
    await line.enqueue("interactive-3", INTERACTIVE)
    assert await line.release_all() == [
        "interactive-1",
        "old-backfill",
        "interactive-2",
        "interactive-3",
    ]


async def test_queue_timeout_raises_with_retry_after_and_forgets_the_waiter() -> None:
    queue = AdmissionQueue(capacity=1, max_wait_s=0.05)
    await queue.acquire(NORMAL, 10)
    with pytest.raises(QueueTimeoutError) as raised:
        await queue.acquire(INTERACTIVE, 10)
    assert raised.value.retry_after_s == 1
    assert "waited" in str(raised.value)
    assert queue.waiters == []
    assert queue.in_flight == 1
    queue.release()
    assert queue.in_flight == 0


def test_retry_after_scales_with_the_queue_limit() -> None:
    assert QueueTimeoutError(20.0, max(1, round(20.0 / 4))).retry_after_s == 5


async def test_a_cancelled_waiter_does_not_leak_a_slot() -> None:
    queue = AdmissionQueue(capacity=1)
    await queue.acquire(NORMAL, 10)
    waiting = asyncio.create_task(queue.acquire(BACKFILL, 10))
    await settle()
    assert len(queue.waiters) == 1
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert queue.waiters == []
    queue.release()
    assert queue.in_flight == 0
    await asyncio.wait_for(queue.acquire(NORMAL, 10), 1.0)  # admitted at once
    assert queue.in_flight == 1


async def test_a_waiter_past_its_deadline_leaves_the_next_one_its_turn() -> None:
    queue = AdmissionQueue(capacity=1)
    await queue.acquire(NORMAL, 10)
    line = Line(queue)

    async def impatient() -> None:
        async with asyncio.timeout(0.05):
            await queue.acquire(INTERACTIVE, 10)

    with pytest.raises(TimeoutError):
        await impatient()
    await line.enqueue("patient", BACKFILL)
    assert len(queue.waiters) == 1
    assert await line.release_all() == ["patient"]
    assert queue.in_flight == 1


async def test_granted_then_cancelled_passes_the_slot_on_or_keeps_it() -> None:
    """A waiter cancelled right after being granted either returns holding the slot (Python
    3.11's wait_for prefers the result) or passes it to the next waiter; never both, never
    neither."""
    queue = AdmissionQueue(capacity=1)
    await queue.acquire(NORMAL, 10)
    first = asyncio.create_task(queue.acquire(INTERACTIVE, 10))
    await settle()
    line = Line(queue)
    await line.enqueue("second", BACKFILL)
    queue.release()  # grants `first`
    first.cancel()
    result = await asyncio.gather(first, return_exceptions=True)
    await settle()
    if isinstance(result[0], asyncio.CancelledError):
        assert line.granted == ["second"]
    else:
        assert line.granted == []
        queue.release()  # `first` holds the slot and gives it back
        await settle()
        assert line.granted == ["second"]
    assert queue.in_flight == 1
    assert queue.waiters == []
