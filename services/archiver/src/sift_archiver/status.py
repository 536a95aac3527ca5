"""Queue depths, consumers and DLQ sizes, read with passive declares (the management plugin is
off on these machines): for `GET /v1/status` and for the queue gauges on /metrics. A queue that
does not exist yet reads as null (and has no gauge).

One connection is kept and reused: opening an AMQP connection per status poll costs the broker
a handshake each time, and a busy broker answers a fresh handshake slowest of all."""

import asyncio
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractConnection
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError

from sift_common.messaging.passive import passive_counts
from sift_common.messaging.topology import Topology

Depths = dict[str, dict[str, int | None]]


class BrokerUnavailable(RuntimeError):
    """The broker did not answer the status read; the API turns this into a 503."""


@dataclass(frozen=True)
class QueueState:
    """One consumer's queues as the broker reported them; None where a queue is not declared."""

    queue: str  # the work queue's name, as the broker knows it (namespace included)
    messages: int | None  # ready messages (unacked deliveries are not counted)
    consumers: int | None
    dlq: int | None


class QueueDepths:
    def __init__(self, rabbit_url: str, topology: Topology, timeout_s: float = 15.0) -> None:
        self.rabbit_url = rabbit_url
        self.topology = topology
        self.timeout_s = timeout_s
        self._connection: AbstractConnection | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> Depths:
        """Ready messages and DLQ size per consumer queue (by its name without namespace)."""
        return {
            name: {"messages": state.messages, "dlq": state.dlq}
            for name, state in (await self.states()).items()
        }

    async def states(self) -> dict[str, QueueState]:
        """Every consumer queue's state, by the queue's name without namespace."""
        async with self._lock:  # one reader at a time shares the one connection
            try:
                return await asyncio.wait_for(self._read(), self.timeout_s)
            except (AMQPError, ChannelInvalidStateError, OSError, TimeoutError) as error:
                await self.close()
                raise BrokerUnavailable(f"broker did not answer: {error!r}") from error

    async def _read(self) -> dict[str, QueueState]:
        if self._connection is None or self._connection.is_closed:
            self._connection = await aio_pika.connect(self.rabbit_url)  # bounded by states()
        states: dict[str, QueueState] = {}
        for spec in self.topology.consumer_queues:
            work_queue = self.topology.work_queue(spec)
            work = await passive_counts(self._connection, work_queue)
            dlq = await passive_counts(self._connection, self.topology.dead_letter_queue(spec))
            states[spec.name] = QueueState(
                queue=work_queue,
                messages=None if work is None else work.messages,
                consumers=None if work is None else work.consumers,
                dlq=None if dlq is None else dlq.messages,
            )
        return states

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed:
            await connection.close()
