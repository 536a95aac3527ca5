"""Move a broker's queues to the arguments this version of Sift declares, keeping every message.

RabbitMQ cannot change a queue's arguments in place: a service declaring a queue that an older
Sift declared differently (before at-least-once dead-lettering, say) is refused with
PRECONDITION_FAILED. Migrating one queue, with the services stopped:

    1. declare `<queue>.migrating` (a plain quorum queue) and move every message there
    2. delete the old queue (refused up front while a consumer is attached: stop the services)
    3. declare the queue with the new arguments and its binding
    4. move the messages back from `<queue>.migrating`, then delete it

Each move acks a message only after its copy is confirmed, so a crash duplicates at worst
(the consumers are idempotent) and never loses; a rerun finishes a migration cut short,
because step 4 runs whenever a `.migrating` queue is found. Queues already right are left
alone. Message order is kept within each queue.
"""

import logging
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractQueue
from aiormq.exceptions import ChannelNotFoundEntity, ChannelPreconditionFailed

from sift_common.errors import ConfigError
from sift_common.messaging.broker import declare_exchanges, persistent_copy
from sift_common.messaging.topology import QueueDeclaration, Topology

logger = logging.getLogger(__name__)

HOLDING_SUFFIX = ".migrating"
QUORUM: dict[str, Any] = {"x-queue-type": "quorum"}


@dataclass(frozen=True)
class QueueMigration:
    queue: str
    moved: int  # messages carried over to the re-declared queue


async def outdated_queues(rabbit_url: str, topology: Topology) -> list[str]:
    """The topology's queues that exist with other arguments than this version declares."""
    connection = await aio_pika.connect(rabbit_url, timeout=30)
    try:
        return [
            declaration.name
            for declaration in _declarations(topology)
            if await _exists(connection, declaration.name)
            and not await _declares(connection, declaration)
        ]
    finally:
        await connection.close()


async def migrate_queues(rabbit_url: str, topology: Topology) -> list[QueueMigration]:
    """Re-declare every outdated queue of `topology` with its new arguments (see above)."""
    connection = await aio_pika.connect(rabbit_url, timeout=30)
    done: list[QueueMigration] = []
    try:
        channel = await connection.channel()
        await declare_exchanges(channel, topology)
        await channel.close()
        for name in map(topology.work_queue, topology.consumer_queues):
            if await _exists(connection, name):  # before anything moves: all or nothing
                await _refuse_if_consumed(connection, name)
        for declaration in _declarations(topology):
            holding = declaration.name + HOLDING_SUFFIX
            unfinished = await _exists(connection, holding)
            exists = await _exists(connection, declaration.name)
            if not unfinished and (not exists or await _declares(connection, declaration)):
                continue  # new (its service declares it) or already right
            if not unfinished:
                await _move_all(connection, declaration.name, holding, create_target=True)
                await _delete(connection, declaration.name)
            await _declare(connection, declaration, topology)
            moved = await _move_all(connection, holding, declaration.name, create_target=False)
            await _delete(connection, holding)
            logger.info("queue %s migrated, %d messages kept", declaration.name, moved)
            done.append(QueueMigration(declaration.name, moved))
    finally:
        await connection.close()
    return done


def _declarations(topology: Topology) -> list[QueueDeclaration]:
    return [d for spec in topology.consumer_queues for d in topology.declarations(spec)]


async def _declares(connection: AbstractConnection, declaration: QueueDeclaration) -> bool:
    """Whether the existing queue has the arguments this version declares."""
    channel = await connection.channel()
    try:
        await channel.declare_queue(declaration.name, durable=True, arguments=declaration.arguments)
    except ChannelPreconditionFailed:
        return False  # the broker closed this channel
    await channel.close()
    return True


async def _exists(connection: AbstractConnection, name: str) -> bool:
    channel = await connection.channel()
    try:
        await channel.declare_queue(name, passive=True)
    except ChannelNotFoundEntity:
        return False
    await channel.close()
    return True


async def _declare(
    connection: AbstractConnection, declaration: QueueDeclaration, topology: Topology
) -> None:
    channel = await connection.channel()
    queue = await channel.declare_queue(
        declaration.name, durable=True, arguments=declaration.arguments
    )
    for exchange, routing_key in declaration.bindings:
        await queue.bind(exchange, routing_key=routing_key)
    spec = next((s for s in topology.consumer_queues if topology.work_queue(s) == queue.name), None)
    if spec is not None:  # a work queue: bound to the event exchange by its routing key
        await queue.bind(topology.exchange, routing_key=spec.routing_key)
    await channel.close()


async def _refuse_if_consumed(connection: AbstractConnection, name: str) -> None:
    # Quorum queues refuse `queue.delete` with if-unused, so the check is made here.
    channel = await connection.channel()
    queue = await channel.declare_queue(name, passive=True)
    await channel.close()
    consumers = queue.declaration_result.consumer_count or 0
    if consumers:
        raise ConfigError(
            f"queue {name} has {consumers} consumer(s): stop the services before migrating"
        )


async def _delete(connection: AbstractConnection, name: str) -> None:
    channel = await connection.channel()
    await channel.queue_delete(name)
    await channel.close()


async def _move_all(
    connection: AbstractConnection, source: str, target: str, *, create_target: bool
) -> int:
    """Move every message from `source` to `target`, each acked after its copy's confirm."""
    channel = await connection.channel(publisher_confirms=True)
    try:
        if create_target:
            await channel.declare_queue(target, durable=True, arguments=QUORUM)
        queue = await channel.declare_queue(source, passive=True)
        return await _move(channel, queue, target)
    finally:
        await channel.close()


async def _move(channel: AbstractChannel, queue: AbstractQueue, target: str) -> int:
    moved = 0
    while (message := await queue.get(fail=False, no_ack=False)) is not None:
        await channel.default_exchange.publish(
            persistent_copy(message), routing_key=target, mandatory=True
        )
        await message.ack()
        moved += 1
    return moved
