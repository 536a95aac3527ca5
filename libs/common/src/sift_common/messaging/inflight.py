"""The messages a service is handling now: a time budget for each, and a drain at shutdown.

Each handler runs in a task of its own (`start`), which the delivery awaits through
`asyncio.shield`: when the broker connection drops, aiormq cancels the deliveries of the closed
channel, but their handlers finish their work (an LLM call paid for is cached, not thrown away)
and the redelivered message finds it done. Only the drain cancels a handler.

A hung handler (a dependency that accepts a connection and never answers) would hold its
prefetch slot until RabbitMQ's consumer timeout (30 minutes by default) closes the whole
channel and requeues everything on it. `budget_s` bounds one message instead: past it the
handler is cancelled and the message retried like any transient failure.

Shutdown drains in three steps, so no work is abandoned and none is cut off mid-write:
stop taking messages, give the running ones up to `drain(timeout_s)` to finish and be acked,
then cancel what is left, all before the clients the handlers use are closed. A cancelled
message, and one delivered while draining, is left unacked: closing the channel hands it back
to the broker for another replica. (Nacking it instead would have the broker deliver it
straight back to this still-subscribed consumer, again and again, each time counting towards
the quorum queue's delivery limit.)
"""

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from sift_common.errors import TransientError

logger = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_BUDGET_S = 900.0  # well under RabbitMQ's default consumer timeout of 30 minutes


class BudgetExceededError(TransientError):
    """A handler ran past the time budget of one message."""


class InFlight:
    def __init__(self, budget_s: float = DEFAULT_BUDGET_S) -> None:
        if budget_s <= 0:
            raise ValueError("a handler's time budget must be positive")
        self.budget_s = budget_s
        self.accepting = True
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, work: Coroutine[Any, Any, T]) -> "asyncio.Task[T]":
        """Run one message's handler in a task of its own, counted until it ends."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        self._idle.clear()
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: "asyncio.Task[Any]") -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self._idle.set()

    def stop_accepting(self) -> None:
        """From now on a delivery is left unacked, for the broker to hand to another replica."""
        self.accepting = False

    async def drain(self, timeout_s: float) -> int:
        """Stop accepting, wait up to `timeout_s` for running handlers, cancel the rest and
        wait until their messages are handed back. Returns how many were cancelled."""
        self.stop_accepting()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
            return 0
        except TimeoutError:
            pass
        left = list(self._tasks)
        logger.warning(
            "%d message(s) still in flight after %.0f s of draining: handing them back",
            len(left),
            timeout_s,
        )
        for task in left:
            task.cancel()
        await asyncio.wait(left, timeout=30)
        return len(left)
