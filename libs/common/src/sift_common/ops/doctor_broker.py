"""`sift doctor`'s broker probe: each work queue's depth and consumers, each DLQ's depth and the
dead letters at its head.

Depths and consumer counts come from passive declares (`sift_common.messaging.passive`, as the
archiver's `GET /v1/status` reads them). The dead letters are read
with `sift dlq list`'s scan (`dlq_broker.inspect`), which puts every message back where it was:
a doctor run never takes a message off a DLQ.

A work queue's oldest message has no age here: AMQP cannot show a quorum queue's head without
taking it, so the finding says "unknown" rather than guess. A DLQ's oldest dead letter has one:
the time its header records.
"""

import asyncio
from datetime import datetime

import aio_pika
from aio_pika.abc import AbstractConnection

from sift_common.messaging import dlq_broker
from sift_common.messaging.dlq import Selection
from sift_common.messaging.passive import passive_counts
from sift_common.messaging.topology import Topology
from sift_common.ops.doctor_checks import DlqReading, QueueReading

DLQ_SCAN_LIMIT = 200
"""Dead letters read per DLQ for the top reasons and growth: enough to judge, quick to put back."""


async def read_broker(
    rabbit_url: str, topology: Topology, now: datetime, timeout_s: float
) -> tuple[list[QueueReading], list[DlqReading]]:
    """Raises what the broker raised (unreachable, refused, too slow): the caller reports it."""
    async with asyncio.timeout(timeout_s):
        connection = await aio_pika.connect(rabbit_url, timeout=timeout_s)
        try:
            queues = [
                await _work_queue(connection, spec.name, topology.work_queue(spec))
                for spec in topology.consumer_queues
            ]
        finally:
            await connection.close()
        reports = await dlq_broker.inspect(
            rabbit_url,
            topology,
            topology.consumer_queues,
            Selection(),
            limit=DLQ_SCAN_LIMIT,
            now=now,
        )
    dlqs = [DlqReading(r.queue, r.dlq, r.depth, tuple(r.matched)) for r in reports]
    return queues, dlqs


async def _work_queue(connection: AbstractConnection, bare: str, name: str) -> QueueReading:
    counts = await passive_counts(connection, name)
    if counts is None:
        return QueueReading(bare, name, messages=None, consumers=None)
    return QueueReading(bare, name, counts.messages, counts.consumers)
