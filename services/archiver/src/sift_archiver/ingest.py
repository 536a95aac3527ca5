"""The archiver's consumers: analysed documents in micro-batches, and entity digests.

A batch is chunked, embedded in one gateway call, written in one transaction, and only then
are its messages acked (each handler awaits its own outcome). Database and gateway outages are
transient (`sift_common.classify`, the consumers' one policy): they fail the whole batch, and
the retry ladder takes it. Any other failure bisects
the batch (`bisection.py`), so a document the store refuses is dead-lettered alone, with its
reason (`poison.py`), and the rest of its batch is stored.
"""

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
from faststream.rabbit import RabbitBroker

from sift_archiver.batching import Batcher
from sift_archiver.bisection import settle
from sift_archiver.embedder import Embedder
from sift_archiver.metrics import ArchiverMetrics
from sift_archiver.poison import UnstorableDocumentError, blame
from sift_archiver.rows import BatchRows, FencedOut, batch_rows, normalized_name
from sift_archiver.writer import write_batch
from sift_common.contracts import DocumentAnalyzed, EntityDigested, EntityRef, EntityRefresh
from sift_common.errors import TransientError
from sift_common.logs import correlation_id
from sift_common.messaging.broker import publish_event
from sift_common.messaging.topology import Topology

logger = logging.getLogger("sift_archiver")


@dataclass
class ChunkVectors:
    """Vectors fetched while one batch is settled: a half of a bisected batch whose write
    failed does not pay for its embeddings again."""

    model: str | None = None
    by_chunk: dict[tuple[str, int], list[float]] = field(default_factory=dict)

    def add(self, model: str, keys: list[tuple[str, int]], vectors: list[list[float]]) -> None:
        if self.model not in (None, model):  # the alias was switched in the meantime
            raise TransientError(f"embedding model changed mid-batch: {self.model} → {model}")
        self.model = model
        self.by_chunk.update(zip(keys, vectors, strict=True))


class DocumentArchive:
    """Stores batches of analysed documents; wire `handle` to the consumer."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        embedder: Embedder,
        metrics: ArchiverMetrics,
        publish_refresh: Callable[[EntityRefresh], Awaitable[None]],
        *,
        batch_size: int,
        batch_wait_s: float,
        chunk_words: int,
        chunk_overlap: int,
    ) -> None:
        self._pool, self._embedder, self._metrics = pool, embedder, metrics
        self._publish_refresh = publish_refresh
        self._words, self._overlap = chunk_words, chunk_overlap
        self.batcher: Batcher[DocumentAnalyzed] = Batcher(
            self.store_batch, max_size=batch_size, max_wait_s=batch_wait_s
        )

    async def handle(self, event: DocumentAnalyzed) -> None:
        await self.batcher.submit(event)

    async def store_batch(self, events: list[DocumentAnalyzed]) -> list[Exception | None]:
        """Store `events`; one outcome per event. A batch that fails for a reason that is not
        transient is bisected, so only the documents the store refuses fail (`poison.py`)."""
        # A batch runs in its own task, which inherited the id of whichever document filled
        # it: a batch has no single correlation id, its log lines list every document.
        correlation_id.set(None)
        vectors = ChunkVectors()
        settled = await settle(events, lambda part: self._store(part, vectors))
        outcomes = [
            None if outcome is None else blame(event.document.id, outcome)
            for event, outcome in zip(events, settled, strict=True)
        ]
        failed = sum(outcome is not None for outcome in outcomes)
        label = "stored" if not failed else "failed" if failed == len(events) else "partial"
        self._metrics.batches.labels(label).inc()
        refused = sum(isinstance(outcome, UnstorableDocumentError) for outcome in outcomes)
        self._metrics.refused_documents.inc(refused)
        self._metrics.batch_size.observe(len(events))  # last: a batch counts once fully done
        return outcomes

    async def _store(self, events: list[DocumentAnalyzed], vectors: ChunkVectors) -> None:
        """Embed and write `events` in one transaction, then announce new entity links."""
        rows = batch_rows(events, words=self._words, overlap=self._overlap)
        await self._skip_embedded(rows)
        model, embedded = await self._embed(rows, vectors)
        started = time.perf_counter()
        async with self._pool.acquire() as conn:
            result = await write_batch(conn, rows, model, embedded)
        self._metrics.commit_seconds.observe(time.perf_counter() - started)
        for table, count in result.rows.items():
            self._metrics.rows_written.labels(table).inc(count)
        logger.info(
            "batch stored",
            extra={
                "documents": result.rows["documents"],
                "chunks": result.rows["embeddings"],
                "duplicates": result.duplicates,
                "document_ids": [event.document.id for event in events],
            },
        )
        self._report_fenced_out(result.fenced_out)
        await self._announce(result.new_links)

    def _report_fenced_out(self, fenced_out: list[FencedOut]) -> None:
        """A fenced-out analysis is not an error (its message is acked): a later lease holder
        wrote this analysis, or will; the stale write is logged and counted."""
        for fenced in fenced_out:
            document_id, analysis_type, prompt_version = fenced.key
            logger.warning(
                "analysis fenced out: its fencing token %s does not outrank the stored %s",
                fenced.token,
                fenced.kept_token,
                extra={
                    "document_id": document_id,
                    "analysis_type": analysis_type,
                    "prompt_version": prompt_version,
                    "fencing_token": fenced.token,
                    "stored_fencing_token": fenced.kept_token,
                },
            )
        self._metrics.fenced_out.inc(len(fenced_out))

    async def _skip_embedded(self, rows: BatchRows) -> None:
        """A replayed document already has its vectors (of the model the gateway served last):
        embedding it again would cost an LLM call for a row `DO NOTHING` then drops."""
        model = self._embedder.last_model
        if model is None or not rows.chunks:
            return
        ids = sorted({chunk.document_id for chunk in rows.chunks})
        async with self._pool.acquire() as conn:
            done = await conn.fetch(EMBEDDED, ids, model)
        embedded = {row["document_id"] for row in done}
        rows.chunks = [chunk for chunk in rows.chunks if chunk.document_id not in embedded]

    async def _embed(self, rows: BatchRows, vectors: ChunkVectors) -> tuple[str, list[list[float]]]:
        """The vectors of `rows.chunks`, asking the gateway only for those not fetched yet."""
        missing = [chunk for chunk in rows.chunks if chunk.key not in vectors.by_chunk]
        if missing:
            with self._metrics.embed_seconds.time():
                model, fetched = await self._embedder.embed([c.chunk.text for c in missing])
            vectors.add(model, [chunk.key for chunk in missing], fetched)
        if not rows.chunks:  # everything was embedded before: nothing to ask the gateway
            return self._embedder.last_model or "", []
        assert vectors.model is not None, "set by the first answer"
        return vectors.model, [vectors.by_chunk[chunk.key] for chunk in rows.chunks]

    async def _announce(self, new_links: dict[EntityRef, list[str]]) -> None:
        """Tell the analyzer which entities have new documents. The batch is committed: a
        failed publish is logged, not raised (a retry would find no new links to announce),
        and the analyzer's scheduled refresh catches the entity up."""
        for entity, document_ids in sorted(new_links.items(), key=lambda item: item[0].key):
            key = entity.key
            event = EntityRefresh(
                correlation_id=key,
                entity=entity,
                reason="new_documents",
                new_document_ids=sorted(document_ids),
            )
            try:
                await self._publish_refresh(event)
                self._metrics.refreshes.inc()
            except Exception:
                logger.exception("entity.refresh for %s not published", key)


EMBEDDED = """
SELECT DISTINCT document_id FROM embeddings WHERE document_id = ANY($1::text[]) AND model = $2"""
INSERT_ENTITY = """
INSERT INTO entities (kind, normalized_name, name, ticker) VALUES ($1, $2, $3, $4)
ON CONFLICT (kind, normalized_name)
DO UPDATE SET ticker = COALESCE(EXCLUDED.ticker, entities.ticker)
RETURNING id"""
INSERT_DIGEST = """
INSERT INTO entity_digests (entity_id, digest_type, summary, score, details, document_count,
                            model, prompt_version, event_id, document_ids, created_at)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10::jsonb, $11)
ON CONFLICT (event_id) DO NOTHING"""


class DigestArchive:
    """Stores entity digests, one row per digest (history kept), once per event."""

    def __init__(self, pool: asyncpg.Pool, metrics: ArchiverMetrics) -> None:
        self._pool, self._metrics = pool, metrics

    async def handle(self, event: EntityDigested) -> None:
        entity = event.entity
        async with (
            self._pool.acquire() as conn,
            conn.transaction(),
        ):
            entity_id = await conn.fetchval(
                INSERT_ENTITY, entity.kind, normalized_name(entity.name), entity.name,
                entity.ticker,
            )  # fmt: skip
            status = await conn.execute(
                INSERT_DIGEST, entity_id, event.digest_type, event.summary, event.score,
                json.dumps(event.details), len(event.document_ids), event.model,
                event.prompt_version, event.event_id, json.dumps(event.document_ids),
                event.occurred_at,
            )  # fmt: skip
        if status.endswith(" 1"):
            self._metrics.digests.inc()
        logger.info("digest stored", extra={"entity": entity.key, "event_id": event.event_id})


def refresh_publisher(
    broker: RabbitBroker, topology: Topology
) -> Callable[[EntityRefresh], Awaitable[None]]:
    async def publish(event: EntityRefresh) -> None:
        await publish_event(broker, topology, event)

    return publish
