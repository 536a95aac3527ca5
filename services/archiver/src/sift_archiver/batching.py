"""Micro-batching for per-message handlers: size or time, whichever comes first.

Each handler submits its item and awaits its own outcome in the batch it landed in: `process`
answers one outcome per item (None: stored and durable; an exception: that item's failure), or
raises, which fails every item of the batch. The reliable consumer acks a message only when its
handler returns, so no message is acked before its item is durable.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

ItemT = TypeVar("ItemT")
Process = Callable[[list[ItemT]], Awaitable[Sequence[BaseException | None]]]

logger = logging.getLogger(__name__)


class Batcher(Generic[ItemT]):
    def __init__(
        self,
        process: Process[ItemT],
        *,
        max_size: int,
        max_wait_s: float,
    ) -> None:
        if max_size < 1 or max_wait_s <= 0:
            raise ValueError("max_size >= 1 and max_wait_s > 0 required")
        self._process, self._max_size, self._max_wait_s = process, max_size, max_wait_s
        self._pending: list[tuple[ItemT, asyncio.Future[None]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._closing = False

    async def submit(self, item: ItemT) -> None:
        """Add `item` to the open batch; returns once it is written, or raises its failure."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if self._closing or len(self._pending) >= self._max_size:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._max_wait_s, self._flush)
        await done

    async def close(self) -> None:
        """Write the open batch now, and every later item at once; wait for running batches."""
        self._closing = True
        self._flush()
        if self._running:
            await asyncio.wait(set(self._running))

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        task = asyncio.create_task(self._run(batch), name="archiver-batch")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[tuple[ItemT, asyncio.Future[None]]]) -> None:
        try:
            outcomes = list(await self._process([item for item, _ in batch]))
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{len(outcomes)} outcomes for a batch of {len(batch)}")
        except Exception as exc:  # handed to every waiting handler, which classifies it
            outcomes = [exc] * len(batch)
        for (_, done), outcome in zip(batch, outcomes, strict=True):
            if done.done():
                continue
            if outcome is None:
                done.set_result(None)
            else:
                done.set_exception(outcome)
