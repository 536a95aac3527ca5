"""Delete a namespace's queues and exchanges: a finished demo or test leaves no quorum queues
behind (each one is a Raft group the broker keeps running, idle or not)."""

import aio_pika

from sift_common.messaging.topology import Topology


async def delete_topology(rabbit_url: str, *topologies: Topology) -> None:
    """Every work, retry and dead-letter queue of the `topologies` (one namespace seen by
    several services, whose retry ladders may differ), then their exchanges. Messages still in
    them are dropped, so call this only on a namespace that is done. Deleting what does not
    exist is a no-op."""
    queues = {q.name for t in topologies for s in t.consumer_queues for q in t.declarations(s)}
    exchanges = {name for t in topologies for name in t.exchanges()}
    connection = await aio_pika.connect(rabbit_url, timeout=30)
    try:
        channel = await connection.channel()
        for queue in sorted(queues):
            await channel.queue_delete(queue)
        for exchange in sorted(exchanges):
            await channel.exchange_delete(exchange)
    finally:
        await connection.close()
