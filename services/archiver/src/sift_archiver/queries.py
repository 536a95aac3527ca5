"""The analysts' read queries over the store (plain SQL through asyncpg).

Time filters and buckets use a document's publication time, or its collection time when the
source gave none. Every list is ordered by a total order, so cursors never skip or repeat.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

DOC_TIME = "COALESCE(d.published_at, d.collected_at)"


@dataclass(frozen=True)
class DocFilters:
    source: str | None = None
    kind: str | None = None
    language: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _where(filters: DocFilters, args: list[Any], time_column: str, prefix: str) -> list[str]:
    """SQL conditions for `filters`, appending their values to `args` ($n placeholders)."""
    clauses: list[str] = []
    for column in ("source", "kind", "language"):
        value = getattr(filters, column)
        if value is not None:
            args.append(value)
            clauses.append(f"{prefix}{column} = ${len(args)}")
    if filters.since is not None:
        args.append(filters.since)
        clauses.append(f"{time_column} >= ${len(args)}")
    if filters.until is not None:
        args.append(filters.until)
        clauses.append(f"{time_column} < ${len(args)}")
    return clauses


async def entity_id(conn: asyncpg.Connection, key: str) -> int | None:
    kind, _, name = key.partition(":")
    value: int | None = await conn.fetchval(
        "SELECT id FROM entities WHERE kind = $1 AND normalized_name = $2", kind, name
    )
    return value


async def scores(
    conn: asyncpg.Connection,
    entity: int,
    bucket: str,
    filters: DocFilters,
    after: datetime | None,
    limit: int,
) -> list[dict[str, Any]]:
    args: list[Any] = [bucket, entity]
    clauses = ["de.entity_id = $2", "de.score IS NOT NULL"]
    clauses += _where(filters, args, DOC_TIME, "d.")
    if after is not None:
        args.append(after)
        clauses.append(f"date_trunc($1, {DOC_TIME}, 'UTC') > ${len(args)}")
    args.append(limit)
    # Only fixed column names and $n placeholders are interpolated, never a value.
    rows = await conn.fetch(
        f"""SELECT date_trunc($1, {DOC_TIME}, 'UTC') AS bucket_start, count(*) AS count,
                   avg(de.score) AS mean, min(de.score) AS min, max(de.score) AS max
            FROM document_entities de JOIN documents d ON d.id = de.document_id
            WHERE {" AND ".join(clauses)}
            GROUP BY 1 ORDER BY 1 LIMIT ${len(args)}""",  # noqa: S608
        *args,
    )
    return [dict(row) for row in rows]


async def rankings(
    conn: asyncpg.Connection,
    direction: str,
    window_days: int,
    kind: str | None,
    offset: int,
    limit: int,
    min_documents: int = 1,
) -> list[dict[str, Any]]:
    order = "DESC" if direction == "top" else "ASC"
    args: list[Any] = [window_days, kind, offset, limit, min_documents]
    rows = await conn.fetch(
        f"""SELECT e.kind || ':' || e.normalized_name AS entity_key, e.kind, e.name, e.ticker,
                   avg(de.score) AS mean_score, count(*) AS documents
            FROM document_entities de
            JOIN entities e ON e.id = de.entity_id
            JOIN documents d ON d.id = de.document_id
            WHERE de.score IS NOT NULL
              AND {DOC_TIME} >= now() - make_interval(days => $1)
              AND ($2::text IS NULL OR e.kind = $2)
            GROUP BY e.id HAVING count(*) >= $5 ORDER BY mean_score {order}, entity_key
            OFFSET $3 LIMIT $4""",  # noqa: S608  (ASC or DESC only)
        *args,
    )
    return [dict(row) for row in rows]


async def document(conn: asyncpg.Connection, document_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        """SELECT id, source, external_id, url, title, body, language, kind, published_at,
                  collected_at, stored_at FROM documents WHERE id = $1""",
        document_id,
    )
    if row is None:
        return None
    analyses = await conn.fetch(
        """SELECT analysis_type, prompt_version, model, score, result, created_at
           FROM analyses WHERE document_id = $1 ORDER BY created_at, id""",
        document_id,
    )
    entities = await conn.fetch(
        """SELECT e.kind || ':' || e.normalized_name AS entity_key, e.kind, e.name, e.ticker,
                  de.score FROM document_entities de JOIN entities e ON e.id = de.entity_id
           WHERE de.document_id = $1 ORDER BY entity_key""",
        document_id,
    )
    chunks = await conn.fetchval(
        "SELECT count(*) FROM embeddings WHERE document_id = $1", document_id
    )
    return {
        **dict(row),
        "analyses": [dict(a) for a in analyses],
        "entities": [dict(e) for e in entities],
        "embedded_chunks": chunks,
    }


async def entity(conn: asyncpg.Connection, key: str, history: int) -> dict[str, Any] | None:
    found = await entity_id(conn, key)
    if found is None:
        return None
    row = await conn.fetchrow(
        """SELECT e.kind || ':' || e.normalized_name AS entity_key, e.kind, e.name, e.ticker,
                  e.created_at, (SELECT count(*) FROM document_entities WHERE entity_id = e.id)
                  AS documents FROM entities e WHERE e.id = $1""",
        found,
    )
    digests = await conn.fetch(
        """SELECT digest_type, summary, score, details, document_count, document_ids, model,
                  prompt_version, created_at FROM entity_digests
           WHERE entity_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2""",
        found,
        history,
    )
    history_rows = [dict(d) for d in digests]
    return {
        **dict(row or {}),
        "latest_digest": history_rows[0] if history_rows else None,
        "digests": history_rows,
    }


async def store_counts(conn: asyncpg.Connection) -> dict[str, int]:
    # Exact counts: the store is analyst-sized; estimates from pg_class would lag after bulk loads.
    row = await conn.fetchrow(
        """SELECT (SELECT count(*) FROM documents) AS documents,
                  (SELECT count(*) FROM analyses) AS analyses,
                  (SELECT count(*) FROM embeddings) AS embeddings,
                  (SELECT count(*) FROM entities) AS entities,
                  (SELECT count(*) FROM entity_digests) AS digests"""
    )
    return {key: int(value) for key, value in dict(row or {}).items()}
