"""A service's lifespan: what it opens is closed in reverse order, whatever fails on the way.

`serving(name, readiness)` yields a `Shutdown`. Each resource registers how it stops right
after it is opened, so a start-up that fails half-way closes what it had opened, and a stop
that fails (a broker already gone, say) is logged while the rest still stop. On exit readiness
turns draining first. A consumer service therefore registers, in this order: its clients'
closes, `start_consuming` (the broker's stop, then the drain of the messages in flight), then
its background tasks; they stop the other way round.
"""

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Any, Protocol

from faststream.rabbit import RabbitBroker

from sift_common.messaging.broker import declare_topology
from sift_common.messaging.inflight import InFlight
from sift_common.messaging.topology import Topology
from sift_common.service.readiness import Readiness
from sift_common.service.task_dump import install_task_dump
from sift_common.settings import RabbitSettings

logger = logging.getLogger(__name__)

Stop = Callable[[], object]  # a coroutine function, or a plain function
Background = Callable[[asyncio.Event], Coroutine[Any, Any, None]]  # runs until the event is set


class Shutdown:
    """The stops registered so far; they run last-registered first."""

    def __init__(self, stack: AsyncExitStack) -> None:
        self._stack = stack

    def on_stop(self, what: str, stop: Stop) -> None:
        async def logged() -> None:
            try:
                result = stop()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("stopping the %s failed", what)

        self._stack.push_async_callback(logged)

    def background(self, what: str, run: Background) -> None:
        """Run `run(stop_event)` as a task; at shutdown set the event and wait for it."""
        stop = asyncio.Event()
        task = asyncio.create_task(run(stop), name=what)
        task.add_done_callback(partial(_report_if_failed, what))

        async def finish() -> None:
            stop.set()
            await asyncio.wait([task])

        self.on_stop(what, finish)


def _report_if_failed(what: str, task: "asyncio.Task[None]") -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        logger.error("the %s stopped: %r", what, error, exc_info=error)


@asynccontextmanager
async def serving(name: str, readiness: Readiness) -> AsyncIterator[Shutdown]:
    install_task_dump()
    async with AsyncExitStack() as stack:
        try:
            yield Shutdown(stack)
        finally:
            readiness.draining = True
    logger.info("%s stopped", name)


class Consumer(Protocol):
    """What a consuming service's composition root holds (collector, analyzer, archiver)."""

    @property
    def broker(self) -> RabbitBroker: ...
    @property
    def topology(self) -> Topology: ...
    @property
    def inflight(self) -> InFlight: ...
    @property
    def settings(self) -> RabbitSettings: ...


async def start_consuming(shutdown: Shutdown, consumer: Consumer, service: str) -> None:
    """Connect, declare the whole topology (or `service`'s own queues, SIFT_RABBIT_DECLARE=own)
    and start the subscribers. At exit, the messages in flight are drained first
    (`SIFT_DRAIN_TIMEOUT_S`), then the broker stops."""
    broker, settings, inflight = consumer.broker, consumer.settings, consumer.inflight
    await broker.connect()
    shutdown.on_stop("broker", broker.stop)
    own = service if settings.rabbit_declare == "own" else None
    await declare_topology(str(settings.rabbit_url), consumer.topology, service=own)
    await broker.start()
    drain_s = settings.drain_timeout_s
    shutdown.on_stop("messages in flight", lambda: inflight.drain(drain_s))
