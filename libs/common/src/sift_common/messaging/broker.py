"""Building the FastStream broker, declaring the topology, and publishing durably.

Every publish is persistent (FastStream's default is transient), mandatory and awaited until the
broker confirms it; an unroutable message raises instead of vanishing (`on_return_raises`).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import aio_pika
from aiormq.exceptions import (
    ChannelAccessRefused,
    ChannelNotFoundEntity,
    ChannelPreconditionFailed,
    ConnectionInternalError,
)
from faststream.rabbit import (
    Channel,
    ExchangeType,
    QueueType,
    RabbitBroker,
    RabbitExchange,
    RabbitQueue,
)

from sift_common.contracts import Event
from sift_common.errors import ConfigError
from sift_common.messaging.catalog import consumed_by
from sift_common.messaging.topology import ConsumerQueue, Topology

SCHEMA_VERSION_HEADER = "x-sift-schema-version"
JSON = "application/json"
DECLARE_ATTEMPTS = 3
DECLARE_PAUSE_S = 1.0  # times the attempt number

logger = logging.getLogger(__name__)


def make_broker(rabbit_url: str, *, log_level: int = logging.DEBUG) -> RabbitBroker:
    """A broker whose default channel has confirms on and raises on returned messages.

    FastStream logs every message at `log_level`; the default DEBUG keeps its per-message INFO
    lines (a measured ~25 % of a hop's CPU) out of production logs."""
    return RabbitBroker(
        rabbit_url,
        default_channel=Channel(publisher_confirms=True, on_return_raises=True),
        log_level=log_level,
    )


def event_exchange(topology: Topology) -> RabbitExchange:
    # Never declared by FastStream (a passive check only): `declare_topology` declared it, and
    # a service's broker user may not configure exchanges (privileges.py).
    return RabbitExchange(topology.exchange, type=ExchangeType.TOPIC, durable=True, declare=False)


def retry_exchange(topology: Topology) -> RabbitExchange:
    return RabbitExchange(
        topology.retry_exchange, type=ExchangeType.TOPIC, durable=True, declare=False
    )


def dead_letter_exchange(topology: Topology) -> RabbitExchange:
    return RabbitExchange(topology.dead_letter_exchange, type=ExchangeType.DIRECT, durable=True)


def quorum_queue(name: str, arguments: dict[str, Any], routing_key: str = "") -> RabbitQueue:
    # The arguments come from Topology, which already names the quorum-queue keys it sets.
    return RabbitQueue(
        name, QueueType.QUORUM, arguments=cast(Any, arguments), routing_key=routing_key
    )


def work_queue(topology: Topology, spec: ConsumerQueue) -> RabbitQueue:
    """The FastStream queue object a subscriber consumes, bound to the event exchange."""
    return quorum_queue(
        topology.work_queue(spec), topology.work_queue_arguments(spec), spec.routing_key
    )


async def declare_topology(
    rabbit_url: str, topology: Topology, *, service: str | None = None
) -> None:
    """Declare every exchange and queue of the system (idempotent; run by each service at
    start-up so no event is ever published before its consumers' queues exist).

    With `service` (SIFT_RABBIT_DECLARE=own, a broker user limited to its service's queues),
    only that service's work queues are declared and bound; the exchanges and the other queues
    must exist already (`sift broker provision` declared them) and are only checked.

    On a connection of its own, not through the FastStream broker: FastStream caches a declared
    queue with the channel that declared it and hands that object to a later subscriber of the
    same queue, which then consumes on the broker's default channel, without its prefetch limit
    (an analyzer with prefetch 24 was seen holding 196 unacked messages).

    A queue that exists with other arguments (declared by an older Sift) stops the start-up
    with a `ConfigError` that says how to move it over."""
    await retry_cluster_not_formed(lambda: _declare_topology(rabbit_url, topology, service))


async def retry_cluster_not_formed(declare: Callable[[], Awaitable[None]]) -> None:
    """Run `declare` (idempotent), again up to `DECLARE_ATTEMPTS` in all when the broker closed
    the connection with INTERNAL_ERROR `cluster_not_formed`: a quorum queue whose Raft members
    did not elect a leader in time, on a busy node or a cluster still forming (seen on a
    2-core machine under load). Any other error is raised at once."""
    for attempt in range(1, DECLARE_ATTEMPTS + 1):
        try:
            await declare()
            return
        except ConnectionInternalError as exc:
            if "cluster_not_formed" not in str(exc) or attempt == DECLARE_ATTEMPTS:
                raise
            logger.warning("declaring the topology again (attempt %d failed): %s", attempt, exc)
        await asyncio.sleep(DECLARE_PAUSE_S * attempt)


async def _declare_topology(rabbit_url: str, topology: Topology, service: str | None) -> None:
    connection = await aio_pika.connect(rabbit_url, timeout=30)
    try:
        if service is None:
            await _declare_all(connection, topology)
        else:
            await _declare_own(connection, topology, service)
    except ChannelPreconditionFailed as exc:
        raise ConfigError(
            f"the broker holds a queue declared with other arguments ({exc}); stop the "
            "services and run `sift queues migrate` (docs/reliability.md): it keeps every message"
        ) from exc
    except (ChannelNotFoundEntity, ChannelAccessRefused) as exc:
        raise ConfigError(
            f"the broker's topology is missing or this user may not use it ({exc}); run "
            "`sift broker provision` (docs/security.md), or SIFT_RABBIT_DECLARE=all with a "
            "user that may configure everything"
        ) from exc
    finally:
        await connection.close()


async def declare_exchanges(
    channel: aio_pika.abc.AbstractChannel, topology: Topology
) -> dict[str, aio_pika.abc.AbstractExchange]:
    """The event, dead-letter and retry exchanges, by name."""
    kinds = (aio_pika.ExchangeType.TOPIC, aio_pika.ExchangeType.DIRECT, aio_pika.ExchangeType.TOPIC)
    return {
        name: await channel.declare_exchange(name, kind, durable=True)
        for name, kind in zip(topology.exchanges(), kinds, strict=True)
    }


async def _declare_all(connection: aio_pika.abc.AbstractConnection, topology: Topology) -> None:
    channel = await connection.channel()
    exchanges = await declare_exchanges(channel, topology)
    for spec in topology.consumer_queues:
        for declaration in topology.declarations(spec):
            queue = await channel.declare_queue(
                declaration.name, durable=True, arguments=declaration.arguments
            )
            for exchange_name, routing_key in declaration.bindings:
                await queue.bind(exchanges[exchange_name], routing_key=routing_key)
        await _declare_work_queue(channel, topology, spec)


async def _declare_own(
    connection: aio_pika.abc.AbstractConnection, topology: Topology, service: str
) -> None:
    """Check the exchanges and every queue exist (passive declares need no permission), then
    declare the service's own work queues: that declare compares their arguments."""
    channel = await connection.channel()
    for name in topology.exchanges():
        await channel.declare_exchange(name, passive=True)
    for name in topology.declared_names():
        await channel.declare_queue(name, passive=True)
    for spec in consumed_by(topology, service):
        await _declare_work_queue(channel, topology, spec)


async def _declare_work_queue(
    channel: aio_pika.abc.AbstractChannel, topology: Topology, spec: ConsumerQueue
) -> None:
    consumed = work_queue(topology, spec)  # the very arguments its subscriber declares
    work = await channel.declare_queue(consumed.name, durable=True, arguments=consumed.arguments)
    await work.bind(topology.exchange, routing_key=spec.routing_key)


def persistent_copy(
    message: aio_pika.abc.AbstractIncomingMessage, headers: dict[str, Any] | None = None
) -> aio_pika.Message:
    """A message to publish elsewhere: the same body and properties (user id and expiry aside),
    persistent, with `headers` instead of the message's own when given."""
    return aio_pika.Message(
        message.body,
        headers=message.headers if headers is None else headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        priority=message.priority,
        correlation_id=message.correlation_id,
        message_id=message.message_id,
        timestamp=message.timestamp,
        type=message.type,
        app_id=message.app_id,
    )


async def publish_event(
    broker: RabbitBroker,
    topology: Topology,
    event: Event,
    *,
    headers: dict[str, Any] | None = None,
) -> None:
    """Publish an event to the event exchange and wait for the broker's confirm."""
    await broker.publish(
        event.model_dump_json().encode(),
        exchange=event_exchange(topology),
        routing_key=event.ROUTING_KEY,
        persist=True,
        mandatory=True,
        content_type=JSON,
        message_id=event.event_id,
        correlation_id=event.correlation_id,
        message_type=event.ROUTING_KEY,
        headers={SCHEMA_VERSION_HEADER: event.schema_version, **(headers or {})},
    )


async def publish_to_queue(
    broker: RabbitBroker,
    topology: Topology,
    queue_name: str,
    body: bytes,
    *,
    headers: dict[str, Any],
    content_type: str | None,
    message_id: str | None,
    correlation_id: str | None,
) -> None:
    """Publish raw bytes to one of the topology's retry queues or DLQs, confirmed: through the
    retry exchange, where each is bound by its own name (not the default exchange, whose write
    permission would reach every queue)."""
    await broker.publish(
        body,
        exchange=retry_exchange(topology),
        routing_key=queue_name,
        persist=True,
        mandatory=True,
        content_type=content_type,
        message_id=message_id,
        correlation_id=correlation_id,
        headers=headers,
    )
