"""Queue depths and DLQ sizes for `GET /v1/status`, read with passive declares (the management
plugin is off on these machines). A queue that does not exist yet reads as null."""

import aio_pika
from aio_pika.exceptions import ChannelClosed

from sift_common.messaging.topology import Topology


async def queue_depths(rabbit_url: str, topology: Topology) -> dict[str, dict[str, int | None]]:
    connection = await aio_pika.connect(rabbit_url, timeout=5)
    try:
        depths: dict[str, dict[str, int | None]] = {}
        for spec in topology.consumer_queues:
            depths[spec.name] = {
                "messages": await _depth(connection, topology.work_queue(spec)),
                "dlq": await _depth(connection, topology.dead_letter_queue(spec)),
            }
        return depths
    finally:
        await connection.close()


async def _depth(connection: aio_pika.abc.AbstractConnection, queue: str) -> int | None:
    channel = await connection.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
    except ChannelClosed:  # not declared yet: the channel is closed by the broker
        return None
    count = declared.declaration_result.message_count
    await channel.close()
    return count
