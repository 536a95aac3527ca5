"""Read-only queries on the archiver's tables for entity digests (pgvector TOP-K).

The representative vector is the mean of the entity's document embeddings; the context is the
entity's documents nearest to it by cosine distance (a document's distance is that of its
nearest chunk). The entity is matched as the archiver stores it: kind + normalised name.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from sift_common.contracts import EntityRef

_TOP_K = text(
    """
    WITH entity AS (
        SELECT id FROM entities WHERE kind = :kind AND normalized_name = :name
    ), chunks AS (
        SELECT e.document_id, e.embedding
        FROM embeddings e
        JOIN document_entities de ON de.document_id = e.document_id
        WHERE de.entity_id = (SELECT id FROM entity)
    ), representative AS (
        SELECT avg(embedding) AS v FROM chunks
    )
    SELECT d.id, d.title, d.body, min(c.embedding <=> r.v) AS distance
    FROM chunks c
    JOIN documents d ON d.id = c.document_id
    CROSS JOIN representative r
    GROUP BY d.id, d.title, d.body
    ORDER BY distance, d.id
    LIMIT :k
    """
)

_LINKED_SINCE = text(
    """
    SELECT EXISTS (
        SELECT 1 FROM document_entities de
        JOIN entities en ON en.id = de.entity_id
        JOIN documents d ON d.id = de.document_id
        WHERE en.kind = :kind AND en.normalized_name = :name AND d.stored_at > :since
    )
    """
)

_STORED_SINCE = text(
    "SELECT EXISTS (SELECT 1 FROM documents WHERE id IN :ids AND stored_at > :since)"
).bindparams(bindparam("ids", expanding=True))


@dataclass(frozen=True)
class ContextDocument:
    id: str
    title: str | None
    body: str
    distance: float


def normalized_name(entity: EntityRef) -> str:
    """The name part of `EntityRef.key`, as the archiver stores it."""
    return entity.key.split(":", 1)[1]


class DigestStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def top_k(self, entity: EntityRef, k: int) -> list[ContextDocument]:
        params = {"kind": entity.kind, "name": normalized_name(entity), "k": k}
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_TOP_K, params)).all()
        return [ContextDocument(r.id, r.title, r.body, float(r.distance)) for r in rows]

    async def linked_since(self, entity: EntityRef, since: datetime) -> bool:
        """Whether any document linked to the entity was stored after `since`."""
        params = {"kind": entity.kind, "name": normalized_name(entity), "since": since}
        async with self._engine.connect() as conn:
            return bool(await conn.scalar(_LINKED_SINCE, params))

    async def stored_since(self, document_ids: list[str], since: datetime) -> bool:
        """Whether any of these documents was stored after `since`."""
        if not document_ids:
            return False
        async with self._engine.connect() as conn:
            return bool(await conn.scalar(_STORED_SINCE, {"ids": document_ids, "since": since}))

    async def ping(self) -> None:
        async with self._engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
