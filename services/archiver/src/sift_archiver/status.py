"""Queue depths and DLQ sizes for `GET /v1/status`, read with passive declares (the management
plugin is off on these machines). A queue that does not exist yet reads as null.

One connection is kept and reused: opening an AMQP connection per status poll costs the broker
a handshake each time, and a busy broker answers a fresh handshake slowest of all."""

import asyncio

import aio_pika
from aio_pika.abc import AbstractConnection
from aio_pika.exceptions import AMQPError, ChannelClosed, ChannelInvalidStateError

from sift_common.messaging.topology import Topology

Depths = dict[str, dict[str, int | None]]


class BrokerUnavailable(RuntimeError):
    """The broker did not answer the status read; the API turns this into a 503."""


class QueueDepths:
    def __init__(self, rabbit_url: str, topology: Topology, timeout_s: float = 15.0) -> None:
        self.rabbit_url = rabbit_url
        self.topology = topology
        self.timeout_s = timeout_s
        self._connection: AbstractConnection | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> Depths:
        async with self._lock:  # one reader at a time shares the one connection
            try:
                return await asyncio.wait_for(self._read(), self.timeout_s)
            except (AMQPError, ChannelInvalidStateError, OSError, TimeoutError) as error:
                await self.close()
                raise BrokerUnavailable(f"broker did not answer: {error!r}") from error

    async def _read(self) -> Depths:
        if self._connection is None or self._connection.is_closed:
            self._connection = await aio_pika.connect(self.rabbit_url)  # bounded by __call__
        depths: Depths = {}
        for spec in self.topology.consumer_queues:
            depths[spec.name] = {
                "messages": await _depth(self._connection, self.topology.work_queue(spec)),
                "dlq": await _depth(self._connection, self.topology.dead_letter_queue(spec)),
            }
        return depths

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed:
            await connection.close()


async def _depth(connection: AbstractConnection, queue: str) -> int | None:
    channel = await connection.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
    except ChannelClosed:  # not declared yet: the channel is closed by the broker
        return None
    count = declared.declaration_result.message_count
    await channel.close()
    return count
