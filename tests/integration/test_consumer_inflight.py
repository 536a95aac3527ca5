"""A message's time budget and the drain at shutdown, on the real RabbitMQ.

A hung handler is retried once its budget runs out instead of holding its slot until the
broker's consumer timeout; at shutdown, handlers that finish within the drain timeout are
acked, the rest are cancelled and their messages handed back, and deliveries arriving while
draining are handed back untouched.
"""

import asyncio
from collections.abc import AsyncIterator

import pytest

from sift_common.contracts import DocumentCollected
from sift_common.messaging.broker import declare_topology, make_broker, publish_event
from sift_common.messaging.consumer import subscribe
from sift_common.messaging.inflight import InFlight
from sift_common.messaging.topology import LAST_ERROR_HEADER, ConsumerQueue, Topology
from tests.support.rabbit import (
    delete_topology,
    drain,
    ready_count,
    sample_event,
    wait_until,
    wait_until_ready,
)

pytestmark = pytest.mark.integration

SPEC = ConsumerQueue("test.inflight", DocumentCollected, retry_delays_ms=(60_000,), max_retries=3)


@pytest.fixture
async def topology(rabbit_url: str, namespace: str) -> AsyncIterator[Topology]:
    topology = Topology(namespace, (SPEC,))
    yield topology
    await delete_topology(rabbit_url, topology)


async def test_a_hung_handler_is_retried_once_its_budget_runs_out(
    rabbit_url: str, topology: Topology
) -> None:
    broker = make_broker(rabbit_url)
    started = asyncio.Event()

    async def hangs(event: DocumentCollected) -> None:
        started.set()
        await asyncio.Event().wait()  # a dependency that never answers

    subscribe(broker, topology, SPEC, hangs, inflight=InFlight(budget_s=0.5))
    await broker.connect()
    await declare_topology(rabbit_url, topology)
    await broker.start()
    try:
        await publish_event(broker, topology, sample_event())
        await asyncio.wait_for(started.wait(), 10)
        retry_queue = topology.retry_queue(SPEC, 0)
        await wait_until_ready(rabbit_url, retry_queue, 1, timeout=10)
    finally:
        await broker.stop()
    [retried] = await drain(rabbit_url, retry_queue)
    assert "ran past its budget" in str(retried.headers[LAST_ERROR_HEADER])
    assert await ready_count(rabbit_url, topology.dead_letter_queue(SPEC)) == 0


async def test_drain_acks_what_finishes_and_hands_back_the_rest(
    rabbit_url: str, topology: Topology
) -> None:
    broker = make_broker(rabbit_url)
    inflight = InFlight()
    running: list[str] = []
    finished: list[str] = []

    async def handler(event: DocumentCollected) -> None:
        running.append(event.document.title or "")
        await asyncio.sleep(0.3 if event.document.title == "quick" else 3600)
        finished.append(event.document.title or "")

    subscribe(broker, topology, SPEC, handler, prefetch=4, inflight=inflight)
    await broker.connect()
    await declare_topology(rabbit_url, topology)
    await broker.start()
    try:
        for title in ("quick", "stuck"):
            await publish_event(broker, topology, sample_event(title))
        await wait_until(lambda: len(running) == 2, timeout=10)
        handed_back = await inflight.drain(timeout_s=2.0)
        # Arriving while draining: handed back untouched, never handled.
        await publish_event(broker, topology, sample_event("late"))
        await asyncio.sleep(0.5)
    finally:
        await broker.stop()
    assert handed_back == 1
    assert finished == ["quick"]
    assert sorted(running) == ["quick", "stuck"]  # "late" never ran
    left = await drain(rabbit_url, topology.work_queue(SPEC))
    assert sorted(DocumentCollected.model_validate_json(m.body).document.title for m in left) == [
        "late",
        "stuck",
    ]
    assert await ready_count(rabbit_url, topology.retry_queue(SPEC, 0)) == 0
