"""Read-only queries on the archiver's tables for entity digests (pgvector).

- `top_k`: the context, K documents: the ⌈K/2⌉ nearest to the representative vector (the
  mean of the entity's chunk embeddings; cosine distance, a document's nearest chunk
  counts), then the latest others. The nearest alone would never show what is new — a new
  event lies away from the mean by definition — and a digest refreshed because of it must be
  able to say it. Each with its score for the entity and its analysis summary, read with the
  database's `now()`: the digest's "as of".
- `observe`: what the refresh policy weighs, as of a last digest: the documents linked since
  (a vector each: the mean of its chunks; a score), read in one snapshot with the database's
  `now()`, so "since" and "now" are on the database's clock, like `stored_at`.
- `baseline`: what that digest saw: the representative vector at its time, the latest
  documents before it and a sample of older ones.

A document's score for an entity is the mention's own (`document_entities.score`, e.g. a
news item's impact on that company) or else the document's overall one (its latest analysis).
The entity is matched as the archiver stores it: kind + normalised name.
"""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sift_analyzer import refresh_policy
from sift_analyzer.refresh_policy import Arrival, Baseline, Scored
from sift_common.contracts import EntityRef

_ENTITY = "SELECT id FROM entities WHERE kind = :kind AND normalized_name = :name"
# The latest analysis of document d (its overall score and summary).
_LATEST_ANALYSIS = """
    LEFT JOIN LATERAL (
        SELECT a.score, a.result ->> 'summary' AS summary FROM analyses a
        WHERE a.document_id = d.id ORDER BY a.created_at DESC, a.id DESC LIMIT 1
    ) a ON true"""

_TOP_K = text(
    f"""
    WITH entity AS ({_ENTITY}), linked AS (
        SELECT d.id, d.stored_at FROM document_entities de JOIN documents d ON d.id = de.document_id
        WHERE de.entity_id = (SELECT id FROM entity)
    ), chunks AS (
        SELECT e.document_id, e.embedding FROM embeddings e JOIN linked l ON l.id = e.document_id
    ), representative AS (
        SELECT avg(embedding) AS v FROM chunks
    ), distances AS (
        SELECT c.document_id, min(c.embedding <=> r.v) AS distance
        FROM chunks c CROSS JOIN representative r
        GROUP BY c.document_id
    ), nearest AS (
        SELECT document_id, 0 AS part FROM distances ORDER BY distance, document_id LIMIT :near
    ), latest AS (
        SELECT x.document_id, 1 AS part FROM distances x JOIN linked l ON l.id = x.document_id
        WHERE x.document_id NOT IN (SELECT document_id FROM nearest)
        ORDER BY l.stored_at DESC, l.id DESC LIMIT :latest
    ), chosen AS (
        SELECT * FROM nearest UNION ALL SELECT * FROM latest
    )
    SELECT d.id, d.title, d.body, x.distance, COALESCE(de.score, a.score) AS score,
           a.summary, d.language, now() AS as_of
    FROM chosen ch
    JOIN distances x ON x.document_id = ch.document_id
    JOIN documents d ON d.id = ch.document_id
    JOIN document_entities de ON de.document_id = d.id AND de.entity_id = (SELECT id FROM entity)
    {_LATEST_ANALYSIS}
    ORDER BY ch.part, CASE WHEN ch.part = 0 THEN x.distance END, d.stored_at DESC, d.id
    """  # noqa: S608  (constant fragments only)
)

# Documents linked to the entity and stored since a time, oldest first, each with the mean of
# its chunk vectors (NULL when it has none) and its score.
_ARRIVALS = text(
    f"""
    WITH entity AS ({_ENTITY})
    SELECT d.id, d.stored_at, COALESCE(de.score, a.score) AS score,
           (SELECT avg(e.embedding) FROM embeddings e WHERE e.document_id = d.id)::real[] AS v
    FROM document_entities de
    JOIN documents d ON d.id = de.document_id
    {_LATEST_ANALYSIS}
    WHERE de.entity_id = (SELECT id FROM entity) AND d.stored_at > :since
    ORDER BY d.stored_at, d.id
    LIMIT :limit
    """  # noqa: S608  (constant fragments only)
)

# The representative vector as TOP-K computed it at `as_of` (documents stored until then).
_REPRESENTATIVE = text(
    f"""
    WITH entity AS ({_ENTITY})
    SELECT avg(e.embedding)::real[]
    FROM embeddings e
    JOIN document_entities de ON de.document_id = e.document_id
    JOIN documents d ON d.id = e.document_id
    WHERE de.entity_id = (SELECT id FROM entity) AND d.stored_at <= :as_of
    """  # noqa: S608  (constant fragments only)
)

# The latest documents stored until `as_of`, newest first: the policy's memory.
_RECENT = text(
    f"""
    WITH entity AS ({_ENTITY})
    SELECT COALESCE(de.score, a.score) AS score,
           (SELECT avg(e.embedding) FROM embeddings e WHERE e.document_id = d.id)::real[] AS v
    FROM document_entities de
    JOIN documents d ON d.id = de.document_id
    {_LATEST_ANALYSIS}
    WHERE de.entity_id = (SELECT id FROM entity) AND d.stored_at <= :as_of
    ORDER BY d.stored_at DESC, d.id DESC
    LIMIT :memory
    """  # noqa: S608  (constant fragments only)
)

# Older documents until `as_of` (beyond the latest MEMORY), sampled: ids are sha256 hex, so
# their order is a uniform, stable shuffle.
_OLDER = text(
    f"""
    WITH entity AS ({_ENTITY}), older AS (
        SELECT d.id FROM document_entities de JOIN documents d ON d.id = de.document_id
        WHERE de.entity_id = (SELECT id FROM entity) AND d.stored_at <= :as_of
        ORDER BY d.stored_at DESC, d.id DESC OFFSET :memory
    )
    SELECT (SELECT avg(e.embedding) FROM embeddings e WHERE e.document_id = o.id)::real[] AS v
    FROM older o ORDER BY o.id LIMIT :memory
    """  # noqa: S608  (constant fragments only)
)

# A burst beyond this many unseen documents is judged on its first ones: far more than any
# threshold needs, and it bounds the work of one decision.
MAX_ARRIVALS = 500


@dataclass(frozen=True)
class ContextDocument:
    id: str
    title: str | None
    body: str
    distance: float
    score: float | None = None
    summary: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class Context:
    documents: list[ContextDocument]
    as_of: datetime | None  # the database's now() at the read; None without documents


@dataclass(frozen=True)
class Observation:
    now: datetime
    arrivals: list[Arrival]


def normalized_name(entity: EntityRef) -> str:
    """The name part of `EntityRef.key`, as the archiver stores it."""
    return entity.key.split(":", 1)[1]


def _entity(entity: EntityRef) -> dict[str, str]:
    return {"kind": entity.kind, "name": normalized_name(entity)}


class DigestStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def top_k(self, entity: EntityRef, k: int) -> Context:
        async with self._engine.connect() as conn:
            near = (k + 1) // 2
            params = {**_entity(entity), "near": near, "latest": k - near}
            rows = (await conn.execute(_TOP_K, params)).all()
        documents = [
            ContextDocument(
                r.id,
                r.title,
                r.body,
                float(r.distance),
                None if r.score is None else float(r.score),
                r.summary if isinstance(r.summary, str) and r.summary.strip() else None,
                r.language,
            )
            for r in rows
        ]
        return Context(documents, rows[0].as_of if rows else None)

    async def observe(self, entity: EntityRef, since: datetime) -> Observation:
        """The documents linked since `since` and the database's clock, in one snapshot."""
        async with self._snapshot() as conn:
            now = await conn.scalar(text("SELECT now()"))
            params = {**_entity(entity), "since": since, "limit": MAX_ARRIVALS}
            rows = (await conn.execute(_ARRIVALS, params)).all()
        arrivals = [refresh_policy.arrival(r.stored_at, r.v, _score(r.score)) for r in rows]
        return Observation(now, arrivals)

    async def baseline(self, entity: EntityRef, as_of: datetime) -> Baseline:
        """What a digest made at `as_of` saw: the representative vector then, the latest
        documents (vector, score) stored until then and a sample of older ones."""
        async with self._snapshot() as conn:
            params = {**_entity(entity), "as_of": as_of}
            representative = await conn.scalar(_REPRESENTATIVE, params)
            memory = {**params, "memory": refresh_policy.MEMORY}
            rows = (await conn.execute(_RECENT, memory)).all()
            older = (await conn.execute(_OLDER, memory)).scalars().all()
        latest: Sequence[Scored] = [(r.v, _score(r.score)) for r in rows]
        return refresh_policy.baseline_of(representative, latest, older)

    @asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[AsyncConnection]:
        """A read-only REPEATABLE READ transaction: its statements see one snapshot and share
        one now(), so "stored since" and "now" cannot disagree."""
        async with self._engine.connect() as conn:
            await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                await conn.execute(text("SET TRANSACTION READ ONLY"))
                yield conn

    async def ping(self) -> None:
        async with self._engine.connect() as conn:
            await conn.execute(text("SELECT 1"))


def _score(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None
