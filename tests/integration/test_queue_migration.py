"""Moving a broker's queues from an older Sift's arguments to at-least-once dead-lettering,
on the real RabbitMQ: the services refuse to start on outdated queues and say what to run;
`migrate_queues` re-declares them and keeps every message; a cut-short run is finished."""

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from sift_common.contracts import DocumentCollected
from sift_common.errors import ConfigError
from sift_common.messaging.broker import declare_topology
from sift_common.messaging.queue_migration import (
    HOLDING_SUFFIX,
    QueueMigration,
    migrate_queues,
    outdated_queues,
)
from sift_common.messaging.topology import (
    ANALYZER_DOCUMENTS,
    AT_LEAST_ONCE,
    ConsumerQueue,
    Topology,
)
from tests.support.rabbit import delete_topology, drain, rabbit_channel, ready_count

pytestmark = pytest.mark.integration

SIFT = Path(sys.executable).with_name("sift")  # the console script users run

# Long delays: a message parked on a retry queue stays there for the whole test.
SPEC = ConsumerQueue("test.migrated", DocumentCollected, retry_delays_ms=(600_000,))


@pytest.fixture
async def topology(rabbit_url: str, namespace: str) -> AsyncIterator[Topology]:
    topology = Topology(namespace, (SPEC,))
    yield topology
    await delete_topology(rabbit_url, topology)
    async with rabbit_channel(rabbit_url) as channel:
        for name in topology.declared_names():
            await channel.queue_delete(name + HOLDING_SUFFIX)


async def declare_as_an_older_sift(
    rabbit_url: str, topology: Topology, spec: ConsumerQueue = SPEC
) -> None:
    """The same queues and bindings, without the at-least-once arguments."""
    async with rabbit_channel(rabbit_url) as channel:
        events = await channel.declare_exchange(topology.exchange, "topic", durable=True)
        await channel.declare_exchange(topology.dead_letter_exchange, "direct", durable=True)
        for declaration in topology.declarations(spec):
            old = {k: v for k, v in declaration.arguments.items() if k not in AT_LEAST_ONCE}
            queue = await channel.declare_queue(declaration.name, durable=True, arguments=old)
            for exchange, routing_key in declaration.bindings:
                if exchange != topology.retry_exchange:  # an older Sift had none
                    await queue.bind(exchange, routing_key=routing_key)
        work = await channel.get_queue(topology.work_queue(spec))
        await work.bind(events, routing_key=spec.routing_key)


async def put(rabbit_url: str, queue: str, *ids: str) -> None:
    async with rabbit_channel(rabbit_url) as channel:
        for message_id in ids:
            message = aio_pika.Message(
                b"{}", message_id=message_id, headers={"x-sift-retry-count": 2}, delivery_mode=2
            )
            await channel.default_exchange.publish(message, routing_key=queue)


async def test_outdated_queues_are_refused_then_migrated_with_every_message(
    rabbit_url: str, topology: Topology
) -> None:
    await declare_as_an_older_sift(rabbit_url, topology)
    work, retry = topology.work_queue(SPEC), topology.retry_queue(SPEC, 0)
    dlq = topology.dead_letter_queue(SPEC)
    await put(rabbit_url, work, "w1", "w2", "w3")
    await put(rabbit_url, retry, "r1")
    await put(rabbit_url, dlq, "d1")

    with pytest.raises(ConfigError, match="sift queues migrate"):
        await declare_topology(rabbit_url, topology)
    assert sorted(await outdated_queues(rabbit_url, topology)) == sorted([work, retry])

    migrated = await migrate_queues(rabbit_url, topology)

    assert sorted(migrated, key=lambda m: m.queue) == sorted(
        [QueueMigration(work, 3), QueueMigration(retry, 1)], key=lambda m: m.queue
    )
    await declare_topology(rabbit_url, topology)  # the services start again
    assert await outdated_queues(rabbit_url, topology) == []
    assert await migrate_queues(rabbit_url, topology) == []  # nothing left to do
    kept = await drain(rabbit_url, work)
    assert [m.message_id for m in kept] == ["w1", "w2", "w3"]  # order kept
    assert all(m.headers["x-sift-retry-count"] == 2 for m in kept)
    assert all(m.delivery_mode == aio_pika.DeliveryMode.PERSISTENT for m in kept)
    assert await ready_count(rabbit_url, retry) == 1
    assert await ready_count(rabbit_url, dlq) == 1  # untouched: its arguments did not change
    async with rabbit_channel(rabbit_url) as channel:  # the binding came back
        exchange = await channel.get_exchange(topology.exchange)
        await exchange.publish(aio_pika.Message(b"{}"), routing_key=SPEC.routing_key)
    assert await ready_count(rabbit_url, work) == 1


async def test_a_migration_cut_short_is_finished_by_the_next_run(
    rabbit_url: str, topology: Topology
) -> None:
    """Stopped after the old queue was deleted: its messages wait in the holding queue."""
    await declare_topology(rabbit_url, topology)
    work = topology.work_queue(SPEC)
    async with rabbit_channel(rabbit_url) as channel:
        await channel.queue_delete(work)
        await channel.declare_queue(
            work + HOLDING_SUFFIX, durable=True, arguments={"x-queue-type": "quorum"}
        )
    await put(rabbit_url, work + HOLDING_SUFFIX, "h1", "h2")

    assert await migrate_queues(rabbit_url, topology) == [QueueMigration(work, 2)]

    assert [m.message_id for m in await drain(rabbit_url, work)] == ["h1", "h2"]
    async with rabbit_channel(rabbit_url) as channel:
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
            await channel.declare_queue(work + HOLDING_SUFFIX, passive=True)


async def test_migration_refuses_while_a_service_still_consumes(
    rabbit_url: str, topology: Topology
) -> None:
    await declare_as_an_older_sift(rabbit_url, topology)
    await put(rabbit_url, topology.work_queue(SPEC), "w1")
    async with rabbit_channel(rabbit_url) as channel:
        queue = await channel.get_queue(topology.work_queue(SPEC))

        async def hold(message: AbstractIncomingMessage) -> None:
            pass  # a service attached to the queue, busy with its message

        await queue.consume(hold)
        with pytest.raises(ConfigError, match="stop the services"):
            await migrate_queues(rabbit_url, topology)
    assert await ready_count(rabbit_url, topology.work_queue(SPEC)) == 1
    assert len(await outdated_queues(rabbit_url, topology)) == 2  # nothing was touched


async def test_sift_queues_check_and_migrate_as_an_operator_runs_them(
    rabbit_url: str, namespace: str
) -> None:
    everything = Topology(namespace)  # what the CLI reads from SIFT_NAMESPACE
    for spec in everything.consumer_queues:
        await declare_as_an_older_sift(rabbit_url, everything, spec)
    work = everything.work_queue(ANALYZER_DOCUMENTS)
    await put(rabbit_url, work, "w1")
    env = {**os.environ, "SIFT_RABBIT_URL": rabbit_url, "SIFT_NAMESPACE": namespace}
    env.pop("SIFT_ANALYZER_RETRY_DELAYS_MS", None)

    def sift(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SIFT), "queues", *args], env=env, capture_output=True, text=True, timeout=120
        )

    checked = await asyncio.to_thread(sift, "check")
    assert checked.returncode == 1
    assert work in checked.stdout.split()
    assert (await asyncio.to_thread(sift, "migrate")).returncode == 1  # no --yes: refused
    migrated = await asyncio.to_thread(sift, "migrate", "--yes")
    assert migrated.returncode == 0, migrated.stderr
    assert f"{work}: re-declared, 1 message(s) kept" in migrated.stdout
    assert (await asyncio.to_thread(sift, "check")).returncode == 0
    await declare_topology(rabbit_url, everything)
    assert [m.message_id for m in await drain(rabbit_url, work)] == ["w1"]
