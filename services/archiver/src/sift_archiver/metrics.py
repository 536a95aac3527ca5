"""The archiver's Prometheus metrics, in a registry of its own (one per app instance), and the
queue gauges of the whole pipeline (the archiver already reads the queues for /v1/status)."""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sift_archiver.status import BrokerUnavailable, QueueState

logger = logging.getLogger("sift_archiver")

_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass(frozen=True)
class ArchiverMetrics:
    batch_size: Histogram
    embed_seconds: Histogram
    commit_seconds: Histogram
    rows_written: Counter
    batches: Counter
    refused_documents: Counter
    fenced_out: Counter
    digests: Counter
    refreshes: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> "ArchiverMetrics":
        return cls(
            batch_size=Histogram(
                "sift_archiver_batch_size", "Documents per stored batch", buckets=_SIZES,
                registry=registry,
            ),
            embed_seconds=Histogram(
                "sift_archiver_embed_seconds", "Gateway embeddings call per batch",
                buckets=_SECONDS, registry=registry,
            ),
            commit_seconds=Histogram(
                "sift_archiver_commit_seconds", "Store transaction per batch, commit included",
                buckets=_SECONDS, registry=registry,
            ),
            rows_written=Counter(
                "sift_archiver_rows_written", "Rows upserted, by table", ["table"],
                registry=registry,
            ),
            batches=Counter(
                "sift_archiver_batches", "Batches by outcome: stored, partial (some documents "
                "failed), failed", ["outcome"], registry=registry,
            ),
            refused_documents=Counter(
                "sift_archiver_refused_documents",
                "Documents the store or the gateway refused alone (dead-lettered)",
                registry=registry,
            ),
            fenced_out=Counter(
                "sift_archiver_fenced_out",
                "Analyses not written: the store holds one with a higher lease fencing token",
                registry=registry,
            ),
            digests=Counter("sift_archiver_digests_stored", "Digests stored", registry=registry),
            refreshes=Counter(
                "sift_archiver_entity_refresh_published", "entity.refresh events published",
                registry=registry,
            ),
        )  # fmt: skip


class QueueGauges(Collector):
    """`sift_queue_messages`, `sift_queue_consumers` and `sift_dlq_messages` per work queue,
    from the last broker read (`run` refreshes it in the background): a scrape never waits on
    the broker, and while the broker does not answer it gets no queue series at all rather
    than stale ones."""

    def __init__(self, every_s: float = 15.0) -> None:
        self.every_s = every_s
        self._states: tuple[QueueState, ...] = ()
        self._read_at: float | None = None

    def update(self, states: Iterable[QueueState], now: float | None = None) -> None:
        self._states = tuple(states)
        self._read_at = time.monotonic() if now is None else now

    def clear(self) -> None:
        self._states, self._read_at = (), None

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        fresh = self._read_at is not None and time.monotonic() - self._read_at < 3 * self.every_s
        if not fresh:  # the reader is stuck or gone: no series beats a stale one
            return iter(())
        return iter(self._families(self._states))

    @staticmethod
    def _families(states: Sequence[QueueState] = ()) -> list[GaugeMetricFamily]:
        families = {
            "messages": GaugeMetricFamily(
                "sift_queue_messages", "Ready messages in a work queue", labels=["queue"]
            ),
            "consumers": GaugeMetricFamily(
                "sift_queue_consumers", "Consumers attached to a work queue", labels=["queue"]
            ),
            "dlq": GaugeMetricFamily(
                "sift_dlq_messages", "Messages in a work queue's DLQ", labels=["queue"]
            ),
        }
        for state in states:
            for field, family in families.items():
                value = getattr(state, field)
                if value is not None:  # a queue not declared yet has no series
                    family.add_metric([state.queue], value)
        return list(families.values())

    async def run(
        self, read: Callable[[], Awaitable[Mapping[str, QueueState]]], stop: asyncio.Event
    ) -> None:
        """Read the broker every `every_s` until `stop` is set; a failed read clears the gauges
        (logged once per outage)."""
        failing = False
        while not stop.is_set():
            try:
                self.update((await read()).values())
                if failing:
                    logger.info("queue gauges: the broker answers again")
                failing = False
            except BrokerUnavailable as error:
                self.clear()
                if not failing:
                    logger.warning("queue gauges left out of /metrics: %s", error)
                failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every_s)
