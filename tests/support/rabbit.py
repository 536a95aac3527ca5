"""Test helpers for the real RabbitMQ: run a reliable consumer, read queues, clean up."""

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from faststream.rabbit import RabbitBroker

from sift_common.contracts import Document, DocumentCollected
from sift_common.messaging.broker import declare_topology, make_broker
from sift_common.messaging.consumer import subscribe
from sift_common.messaging.teardown import delete_topology as delete_topology  # re-export
from sift_common.messaging.topology import ConsumerQueue, Topology


def sample_event(title: str = "Acme beats estimates", body: str | None = None) -> DocumentCollected:
    document = Document.create(
        source="test-feed",
        body=body or f"{title}. Shares rose 4% in early trading.",
        title=title,
        kind="news",
        url="https://news.example/acme",
    )
    return DocumentCollected(correlation_id=document.id, document=document)


@asynccontextmanager
async def running_consumer(
    rabbit_url: str,
    topology: Topology,
    spec: ConsumerQueue[DocumentCollected],
    handler: Callable[[DocumentCollected], Awaitable[None]],
) -> AsyncIterator[RabbitBroker]:
    """A started broker with `handler` subscribed to `spec`'s queue; stopped on exit."""
    broker = make_broker(rabbit_url)
    subscribe(broker, topology, spec, handler, prefetch=8)
    await broker.connect()
    await declare_topology(rabbit_url, topology)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


@asynccontextmanager
async def rabbit_channel(rabbit_url: str) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect(rabbit_url)
    try:
        yield await connection.channel()
    finally:
        await connection.close()


async def ready_count(rabbit_url: str, queue: str) -> int:
    """Messages ready in `queue` (a passive declare: the management plugin is off)."""
    async with rabbit_channel(rabbit_url) as channel:
        declared = await channel.declare_queue(queue, passive=True)
        count = declared.declaration_result.message_count
        assert count is not None
        return count


async def drain(rabbit_url: str, queue: str) -> list[AbstractIncomingMessage]:
    """Take (and ack) every ready message of `queue`."""
    taken: list[AbstractIncomingMessage] = []
    async with rabbit_channel(rabbit_url) as channel:
        declared = await channel.declare_queue(queue, passive=True)
        while (message := await declared.get(fail=False)) is not None:
            await message.ack()
            taken.append(message)
    return taken


async def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.05)


async def wait_until_ready(rabbit_url: str, queue: str, count: int, timeout: float = 20.0) -> None:
    """Wait until `queue` holds at least `count` ready messages."""
    deadline = time.monotonic() + timeout
    while await ready_count(rabbit_url, queue) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{queue} never had {count} ready messages")
        await asyncio.sleep(0.1)


async def sweep_test_queues(rabbit_url: str, prefix: str) -> None:
    """Delete every queue named `prefix…` on a local broker: those a test's own teardown did not
    name (another service's retry ladder) or could not reach (the test failed first). Listing
    queues needs `rabbitmqctl` (the management plugin is off); without it this does nothing."""
    if shutil.which("rabbitmqctl") is None:
        return
    listed = subprocess.run(
        ["rabbitmqctl", "list_queues", "--quiet", "--no-table-headers", "name"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    names = [name for name in listed.stdout.split() if name.startswith(prefix)]
    if listed.returncode != 0 or not names:
        return
    async with rabbit_channel(rabbit_url) as channel:
        for name in names:
            await channel.queue_delete(name)
