"""Publishing collected documents: dedup claim, then `document.collected` with confirms.

Confirms are awaited concurrently (up to `max_in_flight` unconfirmed messages: the bounded
buffer), and a batch reports success only when every message in it is confirmed. A broker that
is down or restarting surfaces as `BrokerUnavailableError` within `confirm_timeout_s`.
FastStream's robust connection reconnects by itself once the broker is back.

Claims (`sift_collector.dedup`): each document is claimed *pending* for `pending_s` (by default
twice the confirm timeout), published, and its claim committed for the dedup window only once
the broker confirmed it. Every other end of a publish — refused, timed out, or cancelled (a
source poll's timeout, shutdown) — gives the claim back, shielded from the cancellation, so the
caller's retry (an API client, an AMQP redelivery, the next poll of a source) publishes the
document again and nothing is lost. Where the give-back cannot run (Redis gone, the process
killed, a cancellation during the claim's own round trip), the pending claim expires after
`pending_s`. So that a pending claim never lapses under a publish still in flight, the
publishes of a batch must be confirmed within `PUBLISH_SHARE` of `pending_s` from the claim,
or they count as failed.

Several copies of one content:

- in one batch, the first is published and the others answer `duplicate`;
- already committed (published inside the window): `duplicate`;
- pending for another submission: this one waits for that publish to end, re-trying the claim
  at growing intervals for up to `pending_s` — then `duplicate` if it was committed, or claimed
  and published here if it was given back or lapsed. It never holds a pending claim while it
  waits (the rest of its batch is published first), so two batches cannot wait on each other.
  Still pending after that (yet another claimant): `ClaimConflictError`, a transient error;
  what the batch did publish is committed, so the retry answers it `duplicate`.

A document is reported `published` by at most one submission per window. A publish whose
confirm was lost although the broker had routed the message is published again by the retry:
delivery is at least once (the archiver stores a document once).
"""

import asyncio
import logging
import uuid
from dataclasses import dataclass, field

from aio_pika.exceptions import ChannelInvalidStateError
from faststream.rabbit import RabbitBroker
from redis.exceptions import RedisError

from sift_collector.dedup import Claim, Deduplicator
from sift_common.contracts import Document, DocumentCollected, Priority
from sift_common.errors import TransientError
from sift_common.messaging.broker import publish_event
from sift_common.messaging.topology import Topology

logger = logging.getLogger(__name__)

PUBLISH_SHARE = 0.75  # of the pending TTL the publishes may take; the rest is for the commit
FIRST_RETRY_S, MAX_RETRY_S = 0.05, 0.5  # re-trying a claim pending elsewhere
RESTORE_POLL_S = 0.05  # waiting for a channel aio-pika restores after a reconnect


class BrokerUnavailableError(TransientError):
    """The broker did not confirm in time (down, restarting, or refusing)."""


class ClaimConflictError(TransientError):
    """The same content is still being published by another submission; retry later."""


@dataclass
class PublishReport:
    published: list[Document] = field(default_factory=list)
    duplicates: list[Document] = field(default_factory=list)


def first_copies(documents: list[Document], repeats: list[Document]) -> list[Document]:
    """The first document of each content hash; later copies are appended to `repeats`."""
    seen: set[str] = set()
    firsts: list[Document] = []
    for document in documents:
        (repeats if document.content_hash in seen else firsts).append(document)
        seen.add(document.content_hash)
    return firsts


async def publish_once_open(
    broker: RabbitBroker, topology: Topology, event: DocumentCollected
) -> None:
    """Publish and wait for the confirm. After a reconnect aio-pika reports the connection up
    before it has restored its channels, so a publish in between finds the channel closed,
    before anything was sent: with the connection up, wait for the channel (bounded by the
    caller's timeout); with it down, fail at once."""
    while True:
        try:
            await publish_event(broker, topology, event)
            return
        except ChannelInvalidStateError:
            if not await broker.ping(timeout=RESTORE_POLL_S):
                raise
        await asyncio.sleep(RESTORE_POLL_S)


class DocumentPublisher:
    def __init__(
        self,
        broker: RabbitBroker,
        topology: Topology,
        dedup: Deduplicator,
        *,
        max_in_flight: int = 256,
        confirm_timeout_s: float = 10.0,
        pending_s: float | None = None,
    ) -> None:
        self._pending_s = 2 * confirm_timeout_s if pending_s is None else pending_s
        if self._pending_s <= 0:
            raise ValueError("the pending claim TTL must be positive")
        self._broker = broker
        self._topology = topology
        self._dedup = dedup
        self._slots = asyncio.Semaphore(max_in_flight)
        self._confirm_timeout_s = confirm_timeout_s
        self._settling: set[asyncio.Task[None]] = set()  # give-backs outliving a cancel

    async def publish(
        self, documents: list[Document], priority: Priority = "normal"
    ) -> PublishReport:
        """Publish the new documents of a batch; returns once every one is confirmed."""
        loop = asyncio.get_running_loop()
        report = PublishReport()
        todo = first_copies(documents, report.duplicates)
        give_up_at = loop.time() + self._pending_s
        pause = FIRST_RETRY_S
        while todo := await self._round(todo, priority, report):
            if loop.time() >= give_up_at:
                raise ClaimConflictError(
                    f"{len(todo)} of {len(documents)} documents are still being published by "
                    "another submission; retry later"
                )
            await asyncio.sleep(pause)
            pause = min(2 * pause, MAX_RETRY_S)
        return report

    async def _round(
        self, documents: list[Document], priority: Priority, report: PublishReport
    ) -> list[Document]:
        """Claim, publish what was won, settle the claims; returns the documents pending for
        another submission (neither published nor duplicate yet)."""
        if not documents:
            return []
        token = uuid.uuid4().hex
        deadline = asyncio.get_running_loop().time() + self._pending_s * PUBLISH_SHARE
        claims = await self._dedup.claim(documents, token, self._pending_s)
        won = [d for d, claim in zip(documents, claims, strict=True) if claim is Claim.WON]
        confirmed: set[int] = set()
        try:
            results = await asyncio.gather(
                *(self._send(document, priority, deadline, confirmed) for document in won),
                return_exceptions=True,
            )
        finally:
            await self._settle(token, won, confirmed)
        report.published.extend(d for d in won if id(d) in confirmed)
        report.duplicates.extend(
            d for d, claim in zip(documents, claims, strict=True) if claim is Claim.DUPLICATE
        )
        failures = [result for result in results if result is not None]
        if failures:
            raise BrokerUnavailableError(
                f"{len(failures)} of {len(won)} documents not confirmed: {failures[0]!r}"
            ) from failures[0]
        return [d for d, claim in zip(documents, claims, strict=True) if claim is Claim.PENDING]

    async def _send(
        self, document: Document, priority: Priority, deadline: float, confirmed: set[int]
    ) -> BaseException | None:
        event = DocumentCollected(correlation_id=document.id, document=document, priority=priority)
        try:
            async with asyncio.timeout_at(deadline), self._slots:
                async with asyncio.timeout(self._confirm_timeout_s):
                    await publish_once_open(self._broker, self._topology, event)
        except Exception as exc:  # reported per document; the batch decides
            logger.warning("publish of %s failed: %r", document.id, exc)
            return exc
        confirmed.add(id(document))
        return None

    async def _settle(self, token: str, won: list[Document], confirmed: set[int]) -> None:
        """Commit the confirmed claims and give back the others, even while this task is
        being cancelled: the work runs in a task of its own that a cancel does not reach."""
        if not won:
            return
        commit = [document for document in won if id(document) in confirmed]
        release = [document for document in won if id(document) not in confirmed]
        task = asyncio.create_task(self._settle_or_log(token, commit, release))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)
        await asyncio.shield(task)

    async def _settle_or_log(
        self, token: str, commit: list[Document], release: list[Document]
    ) -> None:
        try:
            await self._dedup.settle(token, commit=commit, release=release)
        except RedisError as exc:  # the pending claims lapse on their own: nothing is lost
            logger.warning(
                "dedup claims not settled (%d to commit, %d to give back); they lapse in "
                "%.0f s: %r",
                len(commit),
                len(release),
                self._pending_s,
                exc,
            )
