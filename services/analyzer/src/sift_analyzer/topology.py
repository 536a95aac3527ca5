"""The analyzer's queues (with the retry ladder from its settings) and a handler wrapper that
counts retries and dead letters by the same policy the reliable consumer applies."""

from collections.abc import Awaitable, Callable
from dataclasses import replace

from sift_analyzer.metrics import AnalyzerMetrics
from sift_analyzer.settings import AnalyzerSettings
from sift_common.classify import is_transient
from sift_common.contracts import DocumentCollected, EntityRefresh
from sift_common.errors import InvalidMessageError
from sift_common.messaging.failures import EventT
from sift_common.messaging.topology import (
    ANALYZER_DOCUMENTS,
    ANALYZER_ENTITY_REFRESH,
    ARCHIVER_DIGESTS,
    ARCHIVER_DOCUMENTS,
    ConsumerQueue,
    Topology,
)


def analyzer_topology(
    settings: AnalyzerSettings,
) -> tuple[Topology, ConsumerQueue[DocumentCollected], ConsumerQueue[EntityRefresh]]:
    """Its two work queues, plus the archiver's so confirmed publishes always have a home."""
    delays, retries = settings.retry_delays, settings.analyzer_max_retries
    documents = replace(ANALYZER_DOCUMENTS, retry_delays_ms=delays, max_retries=retries)
    refresh = replace(ANALYZER_ENTITY_REFRESH, retry_delays_ms=delays, max_retries=retries)
    queues = (documents, refresh, ARCHIVER_DOCUMENTS, ARCHIVER_DIGESTS)
    return Topology(settings.namespace, queues), documents, refresh


def observed(
    handler: Callable[[EventT], Awaitable[None]], spec: ConsumerQueue, metrics: AnalyzerMetrics
) -> Callable[[EventT], Awaitable[None]]:
    async def run(event: EventT) -> None:
        try:
            await handler(event)
        except InvalidMessageError:
            metrics.dead_letters.labels(spec.name, "invalid").inc()
            raise
        except Exception as exc:
            if is_transient(exc):
                metrics.retries.labels(spec.name).inc()
            else:
                metrics.dead_letters.labels(spec.name, "bug").inc()
            raise

    return run
