"""A queue's counts as the broker reports them to a passive declare (the management plugin is
off on these machines): the archiver's status and gauges and `sift doctor` read queues this way."""

from dataclasses import dataclass

from aio_pika.abc import AbstractConnection
from aio_pika.exceptions import ChannelClosed


@dataclass(frozen=True)
class QueueCounts:
    messages: int | None  # ready messages (unacked deliveries are not counted)
    consumers: int | None


async def passive_counts(connection: AbstractConnection, queue: str) -> QueueCounts | None:
    """The queue's counts; None when it is not declared (the broker closes the channel)."""
    channel = await connection.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
    except ChannelClosed:
        return None
    result = declared.declaration_result
    await channel.close()
    return QueueCounts(result.message_count, result.consumer_count)
