import asyncio
from collections.abc import Sequence

import pytest

from sift_archiver.batching import Batcher


async def test_a_full_batch_is_written_at_once_and_each_waiter_released() -> None:
    batches: list[list[int]] = []

    async def process(items: list[int]) -> list[BaseException | None]:
        batches.append(items)
        return [None] * len(items)

    batcher = Batcher(process, max_size=3, max_wait_s=60)
    await asyncio.wait_for(asyncio.gather(*(batcher.submit(n) for n in range(6))), 5)
    assert batches == [[0, 1, 2], [3, 4, 5]]


async def test_a_partial_batch_is_written_when_its_time_is_up() -> None:
    batches: list[list[int]] = []

    async def process(items: list[int]) -> list[BaseException | None]:
        batches.append(items)
        return [None] * len(items)

    batcher = Batcher(process, max_size=100, max_wait_s=0.05)
    await asyncio.wait_for(asyncio.gather(batcher.submit(1), batcher.submit(2)), 5)
    assert batches == [[1, 2]]


async def test_a_failed_batch_raises_in_every_waiter() -> None:
    async def process(items: list[int]) -> list[BaseException | None]:
        raise ConnectionError("store down")

    batcher = Batcher(process, max_size=2, max_wait_s=60)
    results = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)


async def test_close_writes_the_open_batch_and_later_items_at_once() -> None:
    batches: list[list[int]] = []

    async def process(items: list[int]) -> list[BaseException | None]:
        batches.append(items)
        return [None] * len(items)

    batcher = Batcher(process, max_size=100, max_wait_s=3600)
    waiting = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0)
    await batcher.close()
    await asyncio.wait_for(waiting, 5)
    await asyncio.wait_for(batcher.submit(2), 5)
    assert batches == [[1], [2]]


async def test_each_waiter_gets_its_own_outcome() -> None:
    async def process(items: list[int]) -> Sequence[BaseException | None]:
        return [ValueError(f"item {n} refused") if n % 2 else None for n in items]

    batcher = Batcher(process, max_size=4, max_wait_s=60)
    results = await asyncio.gather(*(batcher.submit(n) for n in range(4)), return_exceptions=True)
    assert results[0] is None
    assert results[2] is None
    assert [str(results[1]), str(results[3])] == ["item 1 refused", "item 3 refused"]


async def test_a_wrong_number_of_outcomes_fails_every_waiter() -> None:
    async def process(items: list[int]) -> list[BaseException | None]:
        return [None]

    batcher = Batcher(process, max_size=2, max_wait_s=60)
    results = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)


def test_bad_limits_are_refused() -> None:
    async def process(items: list[int]) -> list[BaseException | None]:
        return []

    with pytest.raises(ValueError, match="max_size"):
        Batcher(process, max_size=0, max_wait_s=1)
