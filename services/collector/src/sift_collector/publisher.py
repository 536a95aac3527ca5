"""Publishing collected documents: dedup claim, then `document.collected` with confirms.

Confirms are awaited concurrently (up to `max_in_flight` unconfirmed messages: the bounded
buffer), and a batch reports success only when every message in it is confirmed. A broker that
is down or restarting surfaces as `BrokerUnavailableError` within `confirm_timeout_s`; the
claims of unconfirmed documents are given back, so the caller's retry (an API client, the next
poll of a source) publishes them again and nothing is lost. FastStream's robust connection
reconnects by itself once the broker is back.
"""

import asyncio
import logging
from dataclasses import dataclass, field

from faststream.rabbit import RabbitBroker

from sift_collector.dedup import Deduplicator
from sift_common.contracts import Document, DocumentCollected, Priority
from sift_common.errors import TransientError
from sift_common.messaging.broker import publish_event
from sift_common.messaging.topology import Topology

logger = logging.getLogger(__name__)


class BrokerUnavailableError(TransientError):
    """The broker did not confirm in time (down, restarting, or refusing)."""


@dataclass
class PublishReport:
    published: list[Document] = field(default_factory=list)
    duplicates: list[Document] = field(default_factory=list)


class DocumentPublisher:
    def __init__(
        self,
        broker: RabbitBroker,
        topology: Topology,
        dedup: Deduplicator,
        *,
        max_in_flight: int = 256,
        confirm_timeout_s: float = 10.0,
    ) -> None:
        self._broker = broker
        self._topology = topology
        self._dedup = dedup
        self._slots = asyncio.Semaphore(max_in_flight)
        self._confirm_timeout_s = confirm_timeout_s

    async def publish(
        self, documents: list[Document], priority: Priority = "normal"
    ) -> PublishReport:
        """Publish the new documents of a batch; returns once every one is confirmed."""
        report = PublishReport()
        claims = await self._dedup.claim(documents)
        for document, is_new in zip(documents, claims, strict=True):
            (report.published if is_new else report.duplicates).append(document)
        results = await asyncio.gather(
            *(self._send(document, priority) for document in report.published),
            return_exceptions=True,
        )
        failed = [doc for doc, result in zip(report.published, results, strict=True) if result]
        if failed:
            await self._dedup.release(failed)
            first = next(result for result in results if isinstance(result, BaseException))
            raise BrokerUnavailableError(
                f"{len(failed)} of {len(report.published)} documents not confirmed: {first!r}"
            ) from first
        return report

    async def _send(self, document: Document, priority: Priority) -> BaseException | None:
        event = DocumentCollected(correlation_id=document.id, document=document, priority=priority)
        async with self._slots:
            try:
                async with asyncio.timeout(self._confirm_timeout_s):
                    await publish_event(self._broker, self._topology, event)
            except Exception as exc:  # reported per document; the batch decides
                logger.warning("publish of %s failed: %r", document.id, exc)
                return exc
        return None
