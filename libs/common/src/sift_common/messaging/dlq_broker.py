"""`sift dlq` against the broker: read dead letters without losing them, move or delete some.

Reading. RabbitMQ has no peek. A scan takes each message with basic.get (manual ack) and holds
it unacked, so the next get returns the next message, up to the depth the DLQ had when the scan
began (dead letters arriving meanwhile wait for the next run). At the end the held messages are
nacked with requeue one by one, in the order they were read: a quorum queue puts returned
messages back at its head in that order, so the DLQ keeps its order. What a read does change:
RabbitMQ 3.10 adds one to a returned message's `x-delivery-count` and sets its redelivered flag
(DLQs have no delivery limit; a replay drops the header). If the command dies, its connection
closes and the broker returns what it held. While a scan runs, what it holds is not "ready":
a depth read elsewhere (`sift status`) is briefly lower.

Moving. A replayed copy is published persistent and mandatory to the work queue, on a channel
with publisher confirms, and the DLQ message is acked only after the confirm: a crash between
the two leaves both (consumers are idempotent), never neither. A second replay moves nothing:
the message has left the DLQ.
"""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aio_pika.exceptions import ChannelNotFoundEntity, DeliveryError, PublishError

from sift_common.messaging.broker import persistent_copy
from sift_common.messaging.dlq import DeadLetter, Selection, describe, plain, replay_headers
from sift_common.messaging.topology import ConsumerQueue, Topology

PUBLISH_TIMEOUT_S = 30


class Verdict(Enum):
    KEEP = "keep"  # returned to the DLQ when the scan ends
    TAKEN = "taken"  # acked: moved or purged
    STOP = "stop"  # returned, and the scan ends here


Visit = Callable[[AbstractChannel, DeadLetter, AbstractIncomingMessage], Awaitable[Verdict]]


@dataclass
class QueueReport:
    """What one command did to one DLQ."""

    queue: str  # the consumer queue's bare name (`analyzer.documents`)
    dlq: str
    work_queue: str
    depth: int | None = None  # messages when the scan began; None: the DLQ is not declared
    scanned: int = 0
    matched: list[DeadLetter] = field(default_factory=list)  # selected (and moved/purged)
    failed: list[tuple[DeadLetter, str]] = field(default_factory=list)  # selected, left, why


@dataclass(frozen=True)
class Found:
    letter: DeadLetter
    headers: dict[str, Any]
    properties: dict[str, Any]
    body: bytes


async def inspect(
    rabbit_url: str, topology: Topology, specs: Sequence[ConsumerQueue],
    selection: Selection, *, limit: int, now: datetime,
) -> list[QueueReport]:  # fmt: skip
    """The selected dead letters of each DLQ; every message is put back."""

    def visitor(report: QueueReport) -> Visit:
        async def visit(_: AbstractChannel, letter: DeadLetter, __: Any) -> Verdict:
            if selection.matches(letter, now):
                report.matched.append(letter)
            return Verdict.KEEP

        return visit

    return await _each_dlq(rabbit_url, topology, specs, limit, visitor)


async def replay(
    rabbit_url: str, topology: Topology, specs: Sequence[ConsumerQueue],
    selection: Selection, *, limit: int, now: datetime, dry_run: bool,
) -> list[QueueReport]:  # fmt: skip
    """Move the selected dead letters back to their work queues (`dry_run`: only say which)."""
    work_queues = {topology.work_queue(spec) for spec in topology.consumer_queues}

    def visitor(report: QueueReport) -> Visit:
        async def visit(
            channel: AbstractChannel, letter: DeadLetter, message: AbstractIncomingMessage
        ) -> Verdict:
            if not selection.matches(letter, now):
                return Verdict.KEEP
            if letter.original_queue not in work_queues:
                why = f"original queue {letter.original_queue!r} is not a work queue here"
                report.failed.append((letter, why))
                return Verdict.KEEP
            if dry_run:
                report.matched.append(letter)
                return Verdict.KEEP
            try:
                await channel.default_exchange.publish(
                    _replay_copy(message),
                    routing_key=letter.original_queue,
                    mandatory=True,
                    timeout=PUBLISH_TIMEOUT_S,
                )
            except (DeliveryError, PublishError) as exc:  # returned or refused: stays put
                report.failed.append((letter, f"not confirmed: {exc!r}"))
                return Verdict.KEEP
            await message.ack()
            report.matched.append(letter)
            return Verdict.TAKEN

        return visit

    return await _each_dlq(rabbit_url, topology, specs, limit, visitor)


async def purge(
    rabbit_url: str, topology: Topology, specs: Sequence[ConsumerQueue],
    selection: Selection, *, limit: int, now: datetime,
) -> list[QueueReport]:  # fmt: skip
    """Delete (ack) the selected dead letters."""

    def visitor(report: QueueReport) -> Visit:
        async def visit(
            _: AbstractChannel, letter: DeadLetter, message: AbstractIncomingMessage
        ) -> Verdict:
            if not selection.matches(letter, now):
                return Verdict.KEEP
            await message.ack()
            report.matched.append(letter)
            return Verdict.TAKEN

        return visit

    return await _each_dlq(rabbit_url, topology, specs, limit, visitor)


async def find(
    rabbit_url: str, topology: Topology, specs: Sequence[ConsumerQueue], wanted: str,
    *, limit: int,
) -> Found | None:  # fmt: skip
    """The first dead letter whose message id or correlation id (document id) is `wanted`."""
    found: list[Found] = []

    def visitor(_: QueueReport) -> Visit:
        async def visit(
            __: AbstractChannel, letter: DeadLetter, message: AbstractIncomingMessage
        ) -> Verdict:
            if wanted not in (letter.message_id, letter.correlation_id):
                return Verdict.KEEP
            found.append(Found(letter, plain(message.headers), _properties(message), message.body))
            return Verdict.STOP

        return visit

    await _each_dlq(rabbit_url, topology, specs, limit, visitor, until=lambda: bool(found))
    return found[0] if found else None


async def _each_dlq(
    rabbit_url: str,
    topology: Topology,
    specs: Sequence[ConsumerQueue],
    limit: int,
    visitor: Callable[[QueueReport], Visit],
    *,
    until: Callable[[], bool] = lambda: False,
) -> list[QueueReport]:
    reports = [
        QueueReport(spec.name, topology.dead_letter_queue(spec), topology.work_queue(spec))
        for spec in specs
    ]
    connection = await aio_pika.connect(rabbit_url, timeout=30)
    try:
        for report in reports:
            if until():
                break
            await _scan(connection, report, limit, visitor(report))
    finally:
        await connection.close()
    return reports


async def _scan(
    connection: AbstractConnection, report: QueueReport, limit: int, visit: Visit
) -> None:
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    try:
        try:
            queue = await channel.declare_queue(report.dlq, passive=True)
        except ChannelNotFoundEntity:
            return  # not declared yet (its service never started): depth stays None
        report.depth = queue.declaration_result.message_count or 0
        held: list[AbstractIncomingMessage] = []
        try:
            while report.scanned < min(report.depth, limit):
                message = await queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                report.scanned += 1
                verdict = await _visit(channel, report, message, visit, held)
                if verdict is Verdict.STOP:
                    break
        finally:
            await _put_back(channel, held)
    finally:
        if not channel.is_closed:
            await channel.close()


async def _visit(
    channel: AbstractChannel,
    report: QueueReport,
    message: AbstractIncomingMessage,
    visit: Visit,
    held: list[AbstractIncomingMessage],
) -> Verdict:
    letter = describe(
        report.dlq,
        message.headers,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        body_size=len(message.body),
    )
    try:
        verdict = await visit(channel, letter, message)
    except BaseException:
        held.append(message)  # put back in its place before the error goes on
        raise
    if verdict is not Verdict.TAKEN:
        held.append(message)
    return verdict


async def _put_back(channel: AbstractChannel, held: list[AbstractIncomingMessage]) -> None:
    """Requeue in reading order, which a quorum queue keeps. On a closed channel the broker
    has already returned them."""
    for message in held:
        if channel.is_closed:
            return
        await message.nack(requeue=True)


def _replay_copy(message: AbstractIncomingMessage) -> aio_pika.Message:
    """The same body and properties (user id and expiry aside), replay headers, persistent."""
    return persistent_copy(message, replay_headers(message.headers))


def _properties(message: AbstractIncomingMessage) -> dict[str, Any]:
    names = ("message_id", "correlation_id", "content_type", "content_encoding", "delivery_mode",
             "priority", "timestamp", "type", "app_id", "redelivered")  # fmt: skip
    return {name: plain(getattr(message, name)) for name in names}
