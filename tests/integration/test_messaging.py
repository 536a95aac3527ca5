"""The reliable consumer against the real RabbitMQ: ack, retry ladder, dead-lettering."""

import asyncio
import time
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.exceptions import DeliveryError

from sift_common.contracts import DocumentCollected
from sift_common.errors import TransientError
from sift_common.messaging.broker import declare_topology, make_broker, publish_event
from sift_common.messaging.topology import (
    DEAD_LETTER_KIND_HEADER,
    DEAD_LETTER_REASON_HEADER,
    RETRY_COUNT_HEADER,
    ConsumerQueue,
    Topology,
)
from tests.support.rabbit import (
    delete_topology,
    drain,
    rabbit_channel,
    ready_count,
    running_consumer,
    sample_event,
    wait_until,
    wait_until_ready,
)

pytestmark = pytest.mark.integration

SPEC = ConsumerQueue(
    "test.documents",
    DocumentCollected,
    retry_delays_ms=(400, 800, 1_600),
    max_retries=3,
    delivery_limit=3,
)


@pytest.fixture
async def topology(rabbit_url: str, namespace: str) -> AsyncIterator[Topology]:
    topology = Topology(namespace, (SPEC,))
    yield topology
    await delete_topology(rabbit_url, topology)


async def publish(rabbit_url: str, topology: Topology, event: DocumentCollected) -> None:
    broker = make_broker(rabbit_url)
    await broker.connect()
    await declare_topology(rabbit_url, topology)
    await publish_event(broker, topology, event)
    await broker.stop()


async def test_event_is_consumed_and_acked_once(rabbit_url: str, topology: Topology) -> None:
    seen: list[DocumentCollected] = []

    async def handler(event: DocumentCollected) -> None:
        seen.append(event)

    sent = sample_event()
    await publish(rabbit_url, topology, sent)
    async with running_consumer(rabbit_url, topology, SPEC, handler):
        await wait_until(lambda: len(seen) == 1)
    # The consumer's connection is closed now: an unacked message would be back in the queue.
    assert seen == [sent]
    assert await ready_count(rabbit_url, topology.work_queue(SPEC)) == 0
    assert await ready_count(rabbit_url, topology.dead_letter_queue(SPEC)) == 0


async def test_published_events_are_persistent(rabbit_url: str, topology: Topology) -> None:
    await publish(rabbit_url, topology, sample_event())
    [message] = await drain(rabbit_url, topology.work_queue(SPEC))
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.content_type == "application/json"


async def test_transient_failures_back_off_through_the_ladder(
    rabbit_url: str, topology: Topology
) -> None:
    attempts: list[float] = []

    async def flaky(event: DocumentCollected) -> None:
        attempts.append(time.monotonic())
        if len(attempts) <= 2:
            raise TransientError("gateway unavailable")

    await publish(rabbit_url, topology, sample_event())
    async with running_consumer(rabbit_url, topology, SPEC, flaky):
        await wait_until(lambda: len(attempts) == 3)
        # Give a wrongly repeated delivery time to show up before counting.
        await wait_until(lambda: time.monotonic() - attempts[-1] > 1.0)
    assert len(attempts) == 3
    first_gap, second_gap = attempts[1] - attempts[0], attempts[2] - attempts[1]
    # The broker's TTL clock is not ours: an expiry was seen 3 ms short of 800 ms. Allow 10 %.
    assert 0.4 * 0.9 <= first_gap < 5.0
    assert 0.8 * 0.9 <= second_gap < 5.0
    assert second_gap > first_gap
    assert await ready_count(rabbit_url, topology.work_queue(SPEC)) == 0
    assert await ready_count(rabbit_url, topology.dead_letter_queue(SPEC)) == 0


async def test_persistent_failure_is_dead_lettered_after_the_configured_retries(
    rabbit_url: str, topology: Topology
) -> None:
    attempts: list[float] = []

    async def broken(event: DocumentCollected) -> None:
        attempts.append(time.monotonic())
        raise TransientError("upstream 503")

    sent = sample_event()
    await publish(rabbit_url, topology, sent)
    dlq = topology.dead_letter_queue(SPEC)
    async with running_consumer(rabbit_url, topology, SPEC, broken):
        await wait_until(lambda: len(attempts) == 1 + SPEC.max_retries)
        await wait_until(lambda: time.monotonic() - attempts[-1] > 0.5)
    assert len(attempts) == 1 + SPEC.max_retries
    [parked] = await drain(rabbit_url, dlq)
    assert DocumentCollected.model_validate_json(parked.body) == sent
    assert parked.headers[DEAD_LETTER_KIND_HEADER] == "retries_exhausted"
    assert parked.headers[RETRY_COUNT_HEADER] == SPEC.max_retries
    assert "upstream 503" in str(parked.headers[DEAD_LETTER_REASON_HEADER])
    assert parked.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert await ready_count(rabbit_url, topology.work_queue(SPEC)) == 0
    for rung in range(len(SPEC.retry_delays_ms)):
        assert await ready_count(rabbit_url, topology.retry_queue(SPEC, rung)) == 0


@pytest.mark.parametrize(
    ("body", "reason_fragment"),
    [
        (b"this is not json", "not valid JSON"),
        (b'{"correlation_id": "x", "document": {"source": "feed"}}', "document.id: Field required"),
        (b'{"schema_version": 99, "correlation_id": "x"}', "schema_version"),
    ],
    ids=["not-json", "wrong-schema", "unknown-version"],
)
async def test_malformed_bodies_go_straight_to_the_dlq(
    rabbit_url: str, topology: Topology, body: bytes, reason_fragment: str
) -> None:
    calls: list[DocumentCollected] = []

    async def handler(event: DocumentCollected) -> None:
        calls.append(event)

    async with running_consumer(rabbit_url, topology, SPEC, handler) as broker:
        await broker.publish(body, routing_key=topology.work_queue(SPEC), persist=True)
        await wait_until_ready(rabbit_url, topology.dead_letter_queue(SPEC), 1)
    assert calls == []
    [message] = await drain(rabbit_url, topology.dead_letter_queue(SPEC))
    assert message.body == body
    assert message.headers[DEAD_LETTER_KIND_HEADER] == "invalid"
    assert reason_fragment in str(message.headers[DEAD_LETTER_REASON_HEADER])
    assert RETRY_COUNT_HEADER not in message.headers
    assert await ready_count(rabbit_url, topology.work_queue(SPEC)) == 0


async def test_a_bug_in_the_handler_is_dead_lettered_not_retried(
    rabbit_url: str, topology: Topology
) -> None:
    calls: list[DocumentCollected] = []

    async def buggy(event: DocumentCollected) -> None:
        calls.append(event)
        raise KeyError("summary")

    await publish(rabbit_url, topology, sample_event())
    async with running_consumer(rabbit_url, topology, SPEC, buggy):
        await wait_until(lambda: len(calls) == 1)
        dlq = topology.dead_letter_queue(SPEC)
        await wait_until_ready(rabbit_url, dlq, 1)
    assert len(calls) == 1
    [message] = await drain(rabbit_url, dlq)
    assert message.headers[DEAD_LETTER_KIND_HEADER] == "bug"
    assert "KeyError" in str(message.headers[DEAD_LETTER_REASON_HEADER])


async def test_delivery_limit_dead_letters_a_message_that_keeps_coming_back(
    rabbit_url: str, topology: Topology
) -> None:
    """A consumer that dies before acking (here: requeues) cannot loop forever."""
    await publish(rabbit_url, topology, sample_event())
    async with rabbit_channel(rabbit_url) as channel:
        queue = await channel.declare_queue(topology.work_queue(SPEC), passive=True)
        returns = 0
        while (message := await queue.get(fail=False)) is not None:
            await message.nack(requeue=True)
            returns += 1
            assert returns <= SPEC.delivery_limit + 1
    assert returns == SPEC.delivery_limit + 1
    await wait_until_ready(rabbit_url, topology.dead_letter_queue(SPEC), 1)


async def test_unroutable_publish_raises_instead_of_vanishing(
    rabbit_url: str, topology: Topology
) -> None:
    broker = make_broker(rabbit_url)
    await broker.connect()
    try:
        await declare_topology(rabbit_url, topology)
        with pytest.raises(DeliveryError):
            await broker.publish(
                b"{}", routing_key=f"{topology.namespace}no-such-queue", persist=True
            )
    finally:
        await broker.stop()


async def test_declaring_the_topology_twice_is_harmless(
    rabbit_url: str, topology: Topology
) -> None:
    for _ in range(2):
        await declare_topology(rabbit_url, topology)
    await publish(rabbit_url, topology, sample_event())
    assert await ready_count(rabbit_url, topology.work_queue(SPEC)) == 1


async def test_prefetch_bounds_the_handlers_in_flight(rabbit_url: str, topology: Topology) -> None:
    """The consumer's prefetch caps concurrent handlers, even though the service declared its
    queue before subscribing (FastStream's declared-queue cache once made it consume without
    a limit: hundreds of LLM calls in flight instead of the prefetch)."""
    in_flight, peak, done = 0, 0, 0
    release = asyncio.Event()

    async def handler(_: DocumentCollected) -> None:
        nonlocal in_flight, peak, done
        in_flight += 1
        peak = max(peak, in_flight)
        await release.wait()
        in_flight -= 1
        done += 1

    for n in range(20):
        await publish(rabbit_url, topology, sample_event(f"Document {n}"))
    async with running_consumer(rabbit_url, topology, SPEC, handler):  # prefetch 8
        await wait_until(lambda: in_flight == 8)
        await asyncio.sleep(1.0)  # time for any delivery beyond the prefetch to arrive
        assert peak == 8
        release.set()
        await wait_until(lambda: done == 20)
    assert peak == 8
