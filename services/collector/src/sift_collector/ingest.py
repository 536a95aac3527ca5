"""The ingest core shared by the HTTP API and the AMQP intake: normalise, then publish.

Batch semantics — all or nothing at validation: every document of a submission is normalised
first; if any is refused, the whole submission is refused with every refusal (index, field,
reason) and nothing is published. A publisher fixes and resends one batch instead of working
out which half got in. A valid batch is then published (dedup claim, confirmed publishes; see
`sift_collector.publisher`). When the broker does not confirm, `BrokerUnavailableError`
propagates and no unconfirmed document stays claimed, so resending the same batch is safe: what
did get in answers `duplicate`, the rest is published. Redis down, or a document whose content
another submission is still publishing after the wait, is `DependencyUnavailableError`: retry.

Publisher identity: documents keep the `source` their sender gave; the authenticated publisher
name is written to `metadata["publisher"]` (replacing any value the sender put there). It does
not enter the document id, so two publishers relaying the same story still deduplicate.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sift_collector.normalise import DocumentRejectedError, Limits, normalise
from sift_collector.publisher import ClaimConflictError, PublishReport
from sift_common.contracts import Document, IncomingDocument, Priority
from sift_common.errors import SiftError, TransientError

PUBLISHER_METADATA_KEY = "publisher"
DEFAULT_LIMITS = Limits()

Status = Literal["published", "duplicate"]


class DocumentPublishing(Protocol):
    """What `Ingest` needs of `DocumentPublisher` (a fake stands in for unit tests)."""

    async def publish(
        self, documents: list[Document], priority: Priority = "normal"
    ) -> PublishReport: ...


@dataclass(frozen=True)
class Rejection:
    """One refused document: its position in the submission, the field, and why."""

    index: int
    field: str
    reason: str


class BatchRejectedError(SiftError):
    """At least one document of a submission was refused; nothing of it was published."""

    def __init__(self, rejections: Sequence[Rejection]) -> None:
        self.rejections = list(rejections)
        super().__init__("; ".join(f"#{r.index} {r.field}: {r.reason}" for r in self.rejections))


class DependencyUnavailableError(TransientError):
    """Redis (dedup) could not be reached, or a document's content is still being published by
    another submission; the submission may succeed later."""


@dataclass(frozen=True)
class Outcome:
    id: str
    status: Status


@dataclass(frozen=True)
class SubmitResult:
    """One outcome per submitted document, in submission order."""

    outcomes: list[Outcome]

    @property
    def published(self) -> int:
        return sum(outcome.status == "published" for outcome in self.outcomes)

    @property
    def duplicates(self) -> int:
        return sum(outcome.status == "duplicate" for outcome in self.outcomes)


class Ingest:
    def __init__(
        self,
        publisher: DocumentPublishing,
        limits: Limits = DEFAULT_LIMITS,
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._publisher = publisher
        self._limits = limits
        self._documents = Counter(
            "sift_collector_documents",
            "Documents submitted to the collector, by publisher and outcome",
            ["publisher", "outcome"],
            registry=registry if registry is not None else CollectorRegistry(),
        )

    def prepare(self, incoming: Sequence[IncomingDocument], publisher_name: str) -> list[Document]:
        """Normalise every document; raises `BatchRejectedError` listing every refusal."""
        documents: list[Document] = []
        rejections: list[Rejection] = []
        for index, item in enumerate(incoming):
            stamped = item.model_copy(
                update={"metadata": {**item.metadata, PUBLISHER_METADATA_KEY: publisher_name}}
            )
            try:
                documents.append(normalise(stamped, self._limits))
            except DocumentRejectedError as exc:
                rejections.append(Rejection(index, exc.field, exc.reason))
            except ValidationError as exc:  # the normalised form broke a Document constraint
                rejections.extend(_from_validation(index, exc))
        if rejections:
            self._documents.labels(publisher_name, "rejected").inc(len(rejections))
            raise BatchRejectedError(rejections)
        return documents

    async def submit(
        self,
        incoming: Sequence[IncomingDocument],
        publisher_name: str,
        priority: Priority = "normal",
    ) -> SubmitResult:
        """Normalise, then publish; returns only once every new document is confirmed."""
        # Normalising (HTML parsing, language detection) is CPU work: keep the loop free.
        documents = await asyncio.to_thread(self.prepare, incoming, publisher_name)
        try:
            report = await self._publisher.publish(documents, priority)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise DependencyUnavailableError(f"Redis unavailable: {exc}") from exc
        except ClaimConflictError as exc:
            raise DependencyUnavailableError(str(exc)) from exc
        published = {id(document) for document in report.published}
        outcomes = [
            Outcome(document.id, "published" if id(document) in published else "duplicate")
            for document in documents
        ]
        result = SubmitResult(outcomes)
        self._documents.labels(publisher_name, "published").inc(result.published)
        self._documents.labels(publisher_name, "duplicate").inc(result.duplicates)
        return result


def _from_validation(index: int, exc: ValidationError) -> list[Rejection]:
    return [
        Rejection(index, ".".join(str(part) for part in error["loc"]) or "document", error["msg"])
        for error in exc.errors()
    ]
