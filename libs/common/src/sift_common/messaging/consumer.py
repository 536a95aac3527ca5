"""A reliable FastStream subscriber: typed handler in, at-least-once with no silent loss out.

The wrapper owns acknowledgement (FastStream's MANUAL policy). A message is acked only after its
fate is durable: the handler's effect done, or its copy confirmed on a retry queue or the DLQ.
If even that publish fails (broker going away), the message is not acked and the broker
redelivers it; the quorum queue's delivery limit stops a message that kills its consumer.
Each message runs under the time budget of the service's `InFlight`, which also drains the
consumer at shutdown (inflight.py). Given the service's registry, it also times each message's
wait in the queue (`sift_queue_message_age_seconds`; see `delivery_ages`).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from weakref import WeakKeyDictionary

from faststream import AckPolicy
from faststream.rabbit import Channel, RabbitBroker, RabbitMessage
from prometheus_client import CollectorRegistry, Histogram

from sift_common.logs import correlation_id
from sift_common.messaging.broker import event_exchange, publish_to_queue, work_queue
from sift_common.messaging.failures import (
    Action,
    Disposition,
    EventT,
    decide,
    decode_event,
    retries_so_far,
)
from sift_common.messaging.inflight import BudgetExceededError, InFlight
from sift_common.messaging.topology import (
    DEAD_LETTER_KIND_HEADER,
    DEAD_LETTER_REASON_HEADER,
    LAST_ERROR_HEADER,
    ORIGINAL_QUEUE_HEADER,
    RETRY_COUNT_HEADER,
    ConsumerQueue,
    Topology,
)

logger = logging.getLogger(__name__)

Handler = Callable[[EventT], Awaitable[None]]

AGE_BUCKETS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600)
_AGES: WeakKeyDictionary[CollectorRegistry, Histogram] = WeakKeyDictionary()


def delivery_ages(registry: CollectorRegistry) -> Histogram:
    """Seconds from a message's publish (its AMQP timestamp, whole seconds) to its first
    delivery, by work queue: how long it waited. A retried message is left out (its copy's
    timestamp counts the retry delay too). One histogram per registry, shared by its queues."""
    if registry not in _AGES:
        _AGES[registry] = Histogram(
            "sift_queue_message_age_seconds",
            "Age of a message at its first delivery to a consumer (queue wait), by work queue",
            ["queue"],
            buckets=AGE_BUCKETS,
            registry=registry,
        )
    return _AGES[registry]


def _observe_age(ages: Histogram, message: RabbitMessage) -> None:
    sent: datetime | None = message.raw_message.timestamp
    if sent is None or RETRY_COUNT_HEADER in message.headers:  # upstream without a timestamp
        return
    if sent.tzinfo is None:  # AMQP timestamps are POSIX seconds: UTC
        sent = sent.replace(tzinfo=UTC)
    ages.observe(max((datetime.now(UTC) - sent).total_seconds(), 0.0))


async def _raw_body(message: Any) -> bytes:
    # Skip FastStream's JSON decoding: a malformed body must reach our policy, not crash early.
    # A coroutine: FastStream runs a plain-function decoder in a worker thread, a thread hop
    # per message (14% of the archiver's Python CPU in docs/performance.md's profile).
    body: bytes = message.body
    return body


def subscribe(
    broker: RabbitBroker,
    topology: Topology,
    spec: ConsumerQueue[EventT],
    handler: Handler[EventT],
    *,
    prefetch: int = 32,
    inflight: InFlight | None = None,
    registry: CollectorRegistry | None = None,
) -> None:
    """Register `handler` for `spec`'s work queue; each message is decoded as `spec.event`.
    Handlers run concurrently up to `prefetch`, each within `inflight`'s time budget (a private
    `InFlight` with the default budget when the caller does not drain at shutdown). With a
    `registry`, each message's age at delivery is observed there."""
    queue_name = topology.work_queue(spec)
    tracker = inflight if inflight is not None else InFlight()
    # The child exists from the start: a queue nothing was delivered from reads 0, not absent.
    ages = None if registry is None else delivery_ages(registry).labels(queue_name)

    async def on_message(body: bytes, message: RabbitMessage) -> None:
        if not tracker.accepting:  # draining: left unacked, handed back when the channel closes
            return
        if ages is not None:
            _observe_age(ages, message)
        await _handle(message, body)

    async def _handle(message: RabbitMessage, body: bytes) -> None:
        headers = dict(message.headers)
        correlation_id.set(message.correlation_id)
        work = tracker.start(_run(handler, decode_event, spec.event, body, tracker.budget_s))
        try:
            error = await asyncio.shield(work)
        except asyncio.CancelledError:  # left unacked: the broker hands the message out again
            if work.cancelled():
                logger.info("handing back %s: cancelled at shutdown", message.message_id)
            else:  # the channel closed under the delivery: the handler finishes on its own
                logger.warning(
                    "delivery of %s cancelled (connection lost?); its handler runs on and the "
                    "redelivery will find its work done",
                    message.message_id,
                )
            raise
        disposition = decide(error, retries_so_far(headers), spec)
        _log_outcome(queue_name, message, disposition, error)
        try:
            await _settle(broker, topology, spec, message, body, headers, disposition)
        except Exception:
            logger.exception(
                "could not park message %s; leaving it to redelivery", message.message_id
            )
            await message.nack(requeue=True)
            return
        await message.ack()

    broker.subscriber(
        work_queue(topology, spec),
        event_exchange(topology),
        channel=Channel(prefetch_count=prefetch, on_return_raises=True),
        ack_policy=AckPolicy.MANUAL,
        decoder=_raw_body,
        title=queue_name,
        description=f"{spec.event.__name__} events for {spec.name}",
    )(on_message)


async def _run(
    handler: Handler[EventT],
    decode: Callable[[type[EventT], bytes], EventT],
    model: type[EventT],
    body: bytes,
    budget_s: float,
) -> Exception | None:
    """Run the handler within its budget; the error it raised, classified by the caller."""
    try:
        async with asyncio.timeout(budget_s) as budget:
            await handler(decode(model, body))
    except TimeoutError as exc:
        if budget.expired():
            return BudgetExceededError(f"handler ran past its budget of {budget_s:.0f} s")
        return exc
    except Exception as exc:  # classified by the policy, never swallowed
        return exc
    return None


async def _settle(
    broker: RabbitBroker,
    topology: Topology,
    spec: ConsumerQueue,
    message: RabbitMessage,
    body: bytes,
    headers: dict[str, Any],
    disposition: Disposition,
) -> None:
    """Put a failed message's copy where it belongs; returns once the broker confirmed it."""
    if disposition.action is Action.ACK:
        return
    if disposition.action is Action.RETRY:
        assert disposition.retry_number is not None
        assert disposition.rung is not None
        target = topology.retry_queue(spec, disposition.rung)
        headers |= {
            RETRY_COUNT_HEADER: disposition.retry_number,
            LAST_ERROR_HEADER: disposition.reason,
        }
    else:
        assert disposition.kind is not None
        target = topology.dead_letter_queue(spec)
        headers |= {
            DEAD_LETTER_REASON_HEADER: disposition.reason,
            DEAD_LETTER_KIND_HEADER: disposition.kind.value,
            ORIGINAL_QUEUE_HEADER: topology.work_queue(spec),
            "x-sift-dead-lettered-at": datetime.now(UTC).isoformat(),
        }
    await publish_to_queue(
        broker,
        topology,
        target,
        body,
        headers=headers,
        content_type=message.content_type,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
    )


def _log_outcome(
    queue: str, message: RabbitMessage, disposition: Disposition, error: BaseException | None
) -> None:
    context = {
        "queue": queue,
        "message_id": message.message_id,
        "correlation_id": message.correlation_id,
    }
    if disposition.action is Action.RETRY:
        logger.warning(
            "retry %s scheduled: %s", disposition.retry_number, disposition.reason, extra=context
        )
    elif disposition.action is Action.DEAD_LETTER:
        bug = disposition.kind is not None and disposition.kind.value == "bug"
        logger.log(
            logging.ERROR if bug else logging.WARNING,
            "dead-lettered (%s): %s",
            disposition.kind.value if disposition.kind else "?",
            disposition.reason,
            extra=context,
            exc_info=error if bug else None,
        )
