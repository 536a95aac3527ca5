"""The one transaction that stores a batch: documents, analyses, entities, links, vectors.

Every statement is an upsert on the table's unique key, so replaying a batch changes nothing.
An analysis is fenced: the row with the highest lease fencing token wins, and an analysis that
loses takes its entity links with it (`rows.drop_fenced_out`).
Documents and vectors are immutable for a given id (the id hashes the content), hence
`DO NOTHING`: rewriting a vector would add a fresh HNSW entry, the store's costliest write.
Vectors travel in pgvector's binary format (asyncpg codec), not as text.
"""

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import asyncpg

from sift_archiver.rows import AnalysisKey, BatchRows, FencedOut, drop_fenced_out, keep_documents
from sift_common.contracts import EntityRef

DOCUMENTS = """
INSERT INTO documents (id, content_hash, source, external_id, url, title, body, language, kind,
                       published_at, collected_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT DO NOTHING"""
STORED = "SELECT id FROM documents WHERE id = ANY($1::text[])"
# The row with the highest fencing token wins (`rows.outranks`): an equal token is a replay and
# rewrites; no token never replaces a row that has one. Rows the WHERE kept are not RETURNed.
ANALYSES = """
INSERT INTO analyses (document_id, analysis_type, prompt_version, model, result,
                      gateway_profile, repaired, score, fencing_token)
SELECT d, t, v, m, r::jsonb, g, rp, s, f
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::boolean[], $8::float8[], $9::bigint[]) AS x(d, t, v, m, r, g, rp, s, f)
ON CONFLICT (document_id, analysis_type, prompt_version)
DO UPDATE SET model = EXCLUDED.model, result = EXCLUDED.result,
              gateway_profile = EXCLUDED.gateway_profile, repaired = EXCLUDED.repaired,
              score = EXCLUDED.score, fencing_token = EXCLUDED.fencing_token
WHERE analyses.fencing_token IS NULL OR EXCLUDED.fencing_token >= analyses.fencing_token
RETURNING document_id, analysis_type, prompt_version"""
FENCING_TOKENS = """
SELECT document_id, analysis_type, prompt_version, fencing_token FROM analyses
WHERE (document_id, analysis_type, prompt_version)
      IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))"""
ENTITIES = """
INSERT INTO entities (kind, normalized_name, name, ticker)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
ON CONFLICT (kind, normalized_name)
DO UPDATE SET ticker = COALESCE(EXCLUDED.ticker, entities.ticker)
RETURNING id, kind, normalized_name"""
LINKS = """
INSERT INTO document_entities (document_id, entity_id, mention, score)
SELECT d, e, m::jsonb, s FROM unnest($1::text[], $2::bigint[], $3::text[], $4::float8[])
    AS t(d, e, m, s)
ON CONFLICT (document_id, entity_id)
DO UPDATE SET mention = EXCLUDED.mention, score = EXCLUDED.score
RETURNING document_id, entity_id, (xmax = 0) AS inserted"""
EMBEDDINGS = """
INSERT INTO embeddings (document_id, chunk_index, char_start, char_end, model, dim, embedding,
                        source, kind, language, published_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (document_id, model, chunk_index) DO NOTHING"""


@dataclass(frozen=True)
class WriteResult:
    rows: dict[str, int]  # table → rows sent (upserted or already there)
    new_links: dict[EntityRef, list[str]]  # entity → documents linked to it for the first time
    duplicates: int  # documents refused: same content as another stored document
    fenced_out: list[FencedOut]  # analyses not written: a higher fencing token is kept


async def write_batch(
    conn: asyncpg.Connection,
    rows: BatchRows,
    model: str,
    vectors: list[list[float]],
) -> WriteResult:
    """Store `rows` with `vectors` (one per chunk, in order) in one transaction."""
    async with conn.transaction():
        await conn.executemany(DOCUMENTS, rows.documents)
        # A document whose content another document already has is refused by the unique
        # content hash (`DO NOTHING` above); what hangs off it is dropped with it.
        sent = [row[0] for row in rows.documents]
        stored = {row["id"] for row in await conn.fetch(STORED, sent)}
        skipped = len(sent) - len(stored)
        vectors = keep_documents(rows, vectors, stored)
        fenced_out = await _upsert_analyses(conn, rows)
        drop_fenced_out(rows, fenced_out)
        entity_ids = await _upsert_entities(conn, rows)
        new_links = await _upsert_links(conn, rows, entity_ids)
        await conn.executemany(
            EMBEDDINGS,
            [
                (c.document_id, c.chunk.index, c.chunk.start, c.chunk.end, model, len(vector),
                 vector, c.source, c.kind, c.language, c.published_at)
                for c, vector in zip(rows.chunks, vectors, strict=True)
            ],
        )  # fmt: skip
    counts = {
        "documents": len(rows.documents),
        "analyses": len(rows.analyses),
        "entities": len(rows.entities),
        "document_entities": len(rows.mentions),
        "embeddings": len(rows.chunks),
    }
    return WriteResult(counts, new_links, skipped, rows.fenced_out + fenced_out)


async def _upsert_analyses(conn: asyncpg.Connection, rows: BatchRows) -> list[FencedOut]:
    """Upsert the analyses; returns those a stored row with a higher fencing token kept out."""
    if not rows.analyses:
        return []
    ordered = sorted(rows.analyses, key=lambda row: row[:3])  # a fixed order: no deadlocks
    written = {tuple(row) for row in await conn.fetch(ANALYSES, *_columns(ordered, 9))}
    refused = [row for row in ordered if row[:3] not in written]
    if not refused:
        return []
    stored: dict[AnalysisKey, int | None] = {
        (r["document_id"], r["analysis_type"], r["prompt_version"]): r["fencing_token"]
        for r in await conn.fetch(FENCING_TOKENS, *_columns(refused, 3))
    }
    return [FencedOut(row[:3], row[-1], stored[row[:3]]) for row in refused]


def _columns(rows: list[tuple[Any, ...]], count: int) -> list[list[Any]]:
    """The first `count` columns of `rows`, one list each (for `unnest`)."""
    return [[row[column] for row in rows] for column in range(count)]


async def _upsert_entities(conn: asyncpg.Connection, rows: BatchRows) -> dict[tuple[str, str], int]:
    if not rows.entities:
        return {}
    keys = sorted(rows.entities)  # a fixed order keeps concurrent batches from deadlocking
    returned = await conn.fetch(
        ENTITIES,
        [kind for kind, _ in keys],
        [name for _, name in keys],
        [rows.entities[key][0] for key in keys],
        [rows.entities[key][1] for key in keys],
    )
    return {(row["kind"], row["normalized_name"]): row["id"] for row in returned}


async def _upsert_links(
    conn: asyncpg.Connection, rows: BatchRows, entity_ids: dict[tuple[str, str], int]
) -> dict[EntityRef, list[str]]:
    if not rows.mentions:
        return {}
    keys = sorted(rows.mentions)
    returned = await conn.fetch(
        LINKS,
        [document_id for document_id, _ in keys],
        [entity_ids[entity] for _, entity in keys],
        [rows.mentions[key][0] for key in keys],
        [rows.mentions[key][1] for key in keys],
    )
    ref_of = {
        entity_id: EntityRef(kind=key[0], name=rows.entities[key][0], ticker=rows.entities[key][1])
        for key, entity_id in entity_ids.items()
    }
    new_links: dict[EntityRef, list[str]] = defaultdict(list)
    for row in returned:
        if row["inserted"]:
            new_links[ref_of[row["entity_id"]]].append(row["document_id"])
    return dict(new_links)
