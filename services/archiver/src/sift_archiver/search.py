"""Semantic search: k nearest documents to a query vector, with filters, in pgvector.

One table is searched: the filters live on the embedding rows (revision 0002). Inside one
transaction the query sets `hnsw.ef_search` and `hnsw.iterative_scan = relaxed_order`, so a
filtered HNSW scan keeps walking the graph until it has enough matching rows (pgvector >= 0.8)
instead of returning fewer; `relaxed_order` may hand rows back slightly out of order, so the
outer query sorts again. Where a filter is selective, the planner prefers a B-tree on the
filter column and an exact sort of the few rows it keeps: exact, and faster than the graph.
Only vectors of the query's own model are compared, so a model change never mixes spaces.
"""

from dataclasses import dataclass
from typing import Any

import asyncpg

from sift_archiver.queries import DocFilters, _where

CHUNKS_PER_DOCUMENT = 3  # chunks fetched per wanted document: long documents have several


@dataclass(frozen=True)
class SearchSettings:
    ef_search: int = 200
    max_scan_tuples: int = 20_000


def nearest_sql(filters: DocFilters, args: list[Any]) -> str:
    """The k-NN statement; `args` must hold [vector, model] and gets filters and the limit."""
    clauses = ["model = $2", *_where(filters, args, "published_at", "")]
    args.append(None)  # the limit, set by the caller
    # Only fixed column names and $n placeholders are interpolated, never a value.
    return f"""SELECT document_id, distance FROM (
                 SELECT document_id, embedding <=> $1 AS distance FROM embeddings
                 WHERE {" AND ".join(clauses)}
                 ORDER BY embedding <=> $1 LIMIT ${len(args)}
               ) AS nearest ORDER BY distance"""  # noqa: S608


async def configure(conn: asyncpg.Connection, settings: SearchSettings) -> None:
    """Session settings for this transaction only (`set_config(..., true)` = SET LOCAL)."""
    await conn.execute(
        """SELECT set_config('hnsw.ef_search', $1, true),
                  set_config('hnsw.iterative_scan', 'relaxed_order', true),
                  set_config('hnsw.max_scan_tuples', $2, true)""",
        str(settings.ef_search),
        str(settings.max_scan_tuples),
    )


async def nearest_documents(
    conn: asyncpg.Connection,
    vector: list[float],
    model: str,
    filters: DocFilters,
    wanted: int,
    settings: SearchSettings,
) -> list[tuple[str, float]]:
    """Up to `wanted` (document id, best chunk distance), nearest first."""
    args: list[Any] = [vector, model]
    sql = nearest_sql(filters, args)
    limit = wanted * CHUNKS_PER_DOCUMENT
    async with conn.transaction():
        await configure(conn, settings)
        while True:
            args[-1] = limit
            rows = await conn.fetch(sql, *args)
            best: dict[str, float] = {}
            for row in rows:
                best.setdefault(row["document_id"], float(row["distance"]))
            # Too few distinct documents while chunks remain: ask for more chunks.
            if len(best) >= wanted or len(rows) < limit or limit >= 10_000:
                break
            limit *= 4
    return sorted(best.items(), key=lambda item: item[1])[:wanted]


async def describe(conn: asyncpg.Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Documents by id with the summary of their latest analysis."""
    rows = await conn.fetch(
        """SELECT d.id AS document_id, d.title, d.source, d.kind, d.language, d.published_at,
                  a.result ->> 'summary' AS summary
           FROM documents d LEFT JOIN LATERAL (
               SELECT result FROM analyses WHERE document_id = d.id
               ORDER BY created_at DESC, id DESC LIMIT 1) a ON true
           WHERE d.id = ANY($1::text[])""",
        ids,
    )
    return {row["document_id"]: dict(row) for row in rows}
