"""The AMQP intake against the real RabbitMQ: valid submissions published, invalid ones
dead-lettered with the reason — the same validation as the HTTP API."""

import json
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from pydantic import AmqpDsn, RedisDsn
from redis.asyncio import Redis

from sift_collector.app import Collector
from sift_collector.settings import CollectorSettings
from sift_common.contracts import DocumentCollected, DocumentSubmitted, IncomingDocument
from sift_common.messaging.topology import (
    ANALYZER_DOCUMENTS,
    COLLECTOR_INTAKE,
    DEAD_LETTER_KIND_HEADER,
    DEAD_LETTER_REASON_HEADER,
    Topology,
)
from tests.support.rabbit import (
    delete_topology,
    drain,
    rabbit_channel,
    ready_count,
    wait_until_ready,
)

pytestmark = pytest.mark.integration

MAX_BODY_CHARS = 2_000


@pytest.fixture
async def collector(rabbit_url: str, redis_url: str, namespace: str) -> AsyncIterator[Collector]:
    settings = CollectorSettings(
        rabbit_url=AmqpDsn(rabbit_url),
        redis_url=RedisDsn(redis_url),
        namespace=namespace,
        collector_max_body_chars=MAX_BODY_CHARS,
        collector_confirm_timeout_s=3.0,
    )
    collector = Collector(settings)
    async with collector.lifespan(collector.api):
        yield collector
    await delete_topology(rabbit_url, collector.topology)
    redis = Redis.from_url(redis_url)
    keys = [key async for key in redis.scan_iter(f"{namespace}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def send(rabbit_url: str, topology: Topology, body: bytes) -> None:
    """What a publisher speaking AMQP does: persistent JSON to the exchange, confirmed."""
    async with rabbit_channel(rabbit_url) as channel:
        exchange = await channel.get_exchange(topology.exchange)
        await exchange.publish(
            aio_pika.Message(
                body,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                correlation_id="intake-test",
            ),
            routing_key=DocumentSubmitted.ROUTING_KEY,
            mandatory=True,
        )


def submitted(**fields: Any) -> DocumentSubmitted:
    document = IncomingDocument(
        source="amqp-wire",
        title="Harbour reopens",
        body=fields.pop("body", "The harbour reopened after the storm and ships came in."),
        url="https://news.example/harbour",
    )
    return DocumentSubmitted(correlation_id="intake-test", document=document, **fields)


async def test_valid_submission_is_published(
    collector: Collector, rabbit_url: str, namespace: str
) -> None:
    topology = collector.topology
    await send(rabbit_url, topology, submitted(priority="realtime").model_dump_json().encode())
    analyzer = topology.work_queue(ANALYZER_DOCUMENTS)
    await wait_until_ready(rabbit_url, analyzer, 1)
    [message] = await drain(rabbit_url, analyzer)
    event = DocumentCollected.model_validate_json(message.body)
    assert event.document.source == "amqp-wire"
    assert event.document.metadata["publisher"] == "amqp"
    assert event.priority == "realtime"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert await ready_count(rabbit_url, topology.dead_letter_queue(COLLECTOR_INTAKE)) == 0


def _without_body() -> bytes:
    raw = json.loads(submitted().model_dump_json())
    del raw["document"]["body"]
    return json.dumps(raw).encode()


INVALID: list[tuple[str, bytes, str]] = [
    ("bad JSON", b'{"document": ', "not valid JSON"),
    ("missing field", _without_body(), "document.body"),
    (
        "oversize text",
        submitted(body="word " * MAX_BODY_CHARS).model_dump_json().encode(),
        "document.body",
    ),
    (
        "not an http URL",
        json.dumps(
            {
                **json.loads(submitted().model_dump_json()),
                "document": {"source": "s", "body": "some text here", "url": "mailto:a@b.example"},
            }
        ).encode(),
        "document.url",
    ),
]


@pytest.mark.parametrize(
    ("body", "reason_part"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID]
)
async def test_invalid_submission_is_dead_lettered_with_the_reason(
    collector: Collector, rabbit_url: str, body: bytes, reason_part: str
) -> None:
    topology = collector.topology
    await send(rabbit_url, topology, body)
    dlq = topology.dead_letter_queue(COLLECTOR_INTAKE)
    await wait_until_ready(rabbit_url, dlq, 1)
    [message] = await drain(rabbit_url, dlq)
    assert message.body == body
    assert reason_part in str(message.headers[DEAD_LETTER_REASON_HEADER])
    assert message.headers[DEAD_LETTER_KIND_HEADER] == "invalid"
    assert await ready_count(rabbit_url, topology.work_queue(ANALYZER_DOCUMENTS)) == 0
