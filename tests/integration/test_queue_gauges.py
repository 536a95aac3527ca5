"""The pipeline's queue gauges on the archiver's /metrics and the consumers' message-age
histogram, against the real RabbitMQ: depths, consumers and DLQ sizes as the broker counts
them, a scrape that answers without queue series when the broker does not, and each message's
wait measured from its own AMQP timestamp. Alert rules built on them: deploy/prometheus."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage, HeadersType
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sift_archiver.metrics import QueueGauges
from sift_archiver.status import QueueDepths, QueueState
from sift_common.contracts import DocumentCollected
from sift_common.messaging.broker import JSON, declare_topology, make_broker, publish_event
from sift_common.messaging.consumer import subscribe
from sift_common.messaging.topology import (
    ANALYZER_DOCUMENTS,
    ARCHIVER_DIGESTS,
    ARCHIVER_DOCUMENTS,
    RETRY_COUNT_HEADER,
    ConsumerQueue,
    Topology,
)
from tests.support.archiver import archiver_settings, fake_embedding_gateway, running_archiver
from tests.support.archiver import topology as archiver_queues
from tests.support.gateway import free_port
from tests.support.rabbit import delete_topology, rabbit_channel, sample_event, wait_until

pytestmark = pytest.mark.integration
__all__ = ["archiver_queues"]

QUEUE_SERIES = ("sift_queue_messages", "sift_queue_consumers", "sift_dlq_messages")
AGES = "sift_queue_message_age_seconds"


def samples(text: str) -> dict[tuple[str, str], float]:
    """(sample name, queue label) -> value, from an exposition text."""
    return {
        (sample.name, sample.labels.get("queue", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
async def declared(rabbit_url: str, namespace: str) -> AsyncIterator[Topology]:
    """archiver.documents and archiver.digests declared; analyzer.documents named, not declared."""
    topology = Topology(namespace, (ARCHIVER_DOCUMENTS, ARCHIVER_DIGESTS, ANALYZER_DOCUMENTS))
    own = Topology(namespace, (ARCHIVER_DOCUMENTS, ARCHIVER_DIGESTS))
    await declare_topology(rabbit_url, own)
    yield topology
    await delete_topology(rabbit_url, own)


async def _ignore(message: AbstractIncomingMessage) -> None:
    return None


async def test_a_scrape_shows_depth_consumers_and_dlq_of_every_declared_queue(
    rabbit_url: str, declared: Topology
) -> None:
    documents, digests = (declared.work_queue(s) for s in (ARCHIVER_DOCUMENTS, ARCHIVER_DIGESTS))
    depths, gauges, registry = QueueDepths(rabbit_url, declared), QueueGauges(), CollectorRegistry()
    registry.register(gauges)
    async with rabbit_channel(rabbit_url) as channel:
        for queue in (documents, documents, declared.dead_letter_queue(ARCHIVER_DOCUMENTS)):
            await channel.default_exchange.publish(aio_pika.Message(b"{}"), routing_key=queue)
        idle = await channel.get_queue(digests)
        await idle.consume(_ignore)  # a consumer on the empty queue
        try:
            gauges.update((await depths.states()).values())
        finally:
            await depths.close()
    scraped = samples(generate_latest(registry).decode())
    assert scraped[("sift_queue_messages", documents)] == 2
    assert scraped[("sift_queue_consumers", documents)] == 0
    assert scraped[("sift_dlq_messages", documents)] == 1
    assert scraped[("sift_queue_messages", digests)] == 0
    assert scraped[("sift_queue_consumers", digests)] == 1
    assert scraped[("sift_dlq_messages", digests)] == 0
    not_declared = declared.work_queue(ANALYZER_DOCUMENTS)
    assert not [key for key in scraped if key[1] == not_declared], "no series for a missing queue"


async def test_a_broker_that_does_not_answer_leaves_the_queue_series_out_fast(
    declared: Topology, caplog: pytest.LogCaptureFixture
) -> None:
    gone = QueueDepths(f"amqp://guest:guest@127.0.0.1:{free_port()}/", declared, timeout_s=2)
    gauges, registry = QueueGauges(every_s=0.2), CollectorRegistry()
    registry.register(gauges)
    gauges.update([], now=time.monotonic())
    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="sift_archiver"):
        task = asyncio.create_task(gauges.run(gone.states, stop))
        try:
            await wait_until(lambda: bool(caplog.records), timeout=10)
            started = time.monotonic()
            text = generate_latest(registry).decode()
            assert time.monotonic() - started < 0.5, "a scrape must not wait on the broker"
            await asyncio.sleep(1.0)  # more failed reads: still one warning per outage
        finally:
            stop.set()
            await task
    assert not [name for name in QUEUE_SERIES if name in text]
    [warning] = [r for r in caplog.records if "queue gauges left out" in r.getMessage()]
    assert "broker did not answer" in warning.getMessage()


def test_gauges_older_than_three_reads_are_not_served() -> None:
    gauges, registry = QueueGauges(every_s=10), CollectorRegistry()
    registry.register(gauges)
    gauges.update([], now=time.monotonic())
    assert "sift_queue_messages" in generate_latest(registry).decode()  # families, fresh
    gauges.update([QueueState("q", 5, 1, 0)], now=time.monotonic() - 31)
    assert "sift_queue_messages{" not in generate_latest(registry).decode()


SPEC = ConsumerQueue("test.ages", DocumentCollected)


@pytest.fixture
async def ages_topology(rabbit_url: str, namespace: str) -> AsyncIterator[Topology]:
    topology = Topology(namespace, (SPEC,))
    yield topology
    await delete_topology(rabbit_url, topology)


async def test_the_consumer_times_each_first_delivery_from_the_message_timestamp(
    rabbit_url: str, ages_topology: Topology
) -> None:
    registry, handled = CollectorRegistry(), []
    broker = make_broker(rabbit_url)

    async def handler(event: DocumentCollected) -> None:
        handled.append(event.document.title)

    subscribe(broker, ages_topology, SPEC, handler, registry=registry)
    queue = ages_topology.work_queue(SPEC)
    assert registry.get_sample_value(f"{AGES}_count", {"queue": queue}) == 0, "0 before any"
    await broker.connect()
    await declare_topology(rabbit_url, ages_topology)
    await broker.start()
    two_minutes_ago = datetime.now(UTC) - timedelta(minutes=2)
    try:
        async with rabbit_channel(rabbit_url) as channel:
            cases: tuple[tuple[str, HeadersType], ...] = (
                ("waited", {}),
                ("retried", {RETRY_COUNT_HEADER: 1}),
            )
            for title, headers in cases:
                body = sample_event(title).model_dump_json().encode()
                message = aio_pika.Message(
                    body, content_type=JSON, timestamp=two_minutes_ago, headers=headers
                )
                await channel.default_exchange.publish(message, routing_key=queue)
        await publish_event(broker, ages_topology, sample_event("fresh"))
        await wait_until(lambda: len(handled) == 3, timeout=20)
    finally:
        await broker.stop()
    assert registry.get_sample_value(f"{AGES}_count", {"queue": queue}) == 2, "retry left out"
    total = registry.get_sample_value(f"{AGES}_sum", {"queue": queue})
    assert total is not None
    assert 119 <= total <= 125, total  # 120 s + ~0 s, in whole seconds


async def test_the_archiver_serves_the_queue_gauges_on_its_metrics(
    rabbit_url: str, namespace: str, fresh_database: str, tmp_path: Path, archiver_queues: Topology
) -> None:
    async with fake_embedding_gateway(tmp_path) as gateway:
        settings = archiver_settings(
            rabbit_url, namespace, fresh_database, gateway.url, archiver_refresh_every_s=0
        )
        async with running_archiver(settings) as running, running.http() as http:
            documents = archiver_queues.work_queue(ARCHIVER_DOCUMENTS)

            async def scraped() -> dict[tuple[str, str], float]:
                return samples((await http.get("/metrics")).text)

            deadline = time.monotonic() + 20
            while ("sift_queue_consumers", documents) not in (found := await scraped()):
                assert time.monotonic() < deadline, "no queue gauges on /metrics"
                await asyncio.sleep(0.2)
    assert found[("sift_queue_consumers", documents)] == 1  # the archiver itself
    assert found[("sift_dlq_messages", documents)] == 0
    assert (f"{AGES}_count", documents) in found
