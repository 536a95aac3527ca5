"""Filtered k-NN in pgvector as the query API runs it, checked with EXPLAIN: the HNSW index
with an iterative scan when the filter keeps many rows, a B-tree and an exact sort when it
keeps few; k results whenever k rows match, and the exact neighbours under the filter."""

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import numpy as np
import pytest

from sift_archiver.pool import asyncpg_dsn, init_connection
from sift_archiver.queries import DocFilters
from sift_archiver.search import SearchSettings, configure, nearest_documents, nearest_sql
from sift_common.store import migrate
from tests.support.archiver_vectors import (
    MODEL,
    Corpus,
    bulk_load,
    corpus,
    doc_id,
    exact_neighbours,
)

pytestmark = pytest.mark.integration

ROWS = 20_000
SETTINGS = SearchSettings(ef_search=100, max_scan_tuples=20_000)


@pytest.fixture(scope="module")
async def loaded(database_url: str) -> AsyncIterator[tuple[asyncpg.Connection, Corpus]]:
    import uuid

    from sqlalchemy.engine import make_url

    name = f"sift_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(asyncpg_dsn(database_url))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    await migrate.upgrade(url)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    await init_connection(conn)
    data = corpus(ROWS)
    await bulk_load(conn, data)
    try:
        yield conn, data
    finally:
        await conn.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def plan(conn: asyncpg.Connection, query: np.ndarray, filters: DocFilters) -> str:  # type: ignore[type-arg]
    args: list[Any] = [query, MODEL]
    sql = nearest_sql(filters, args)
    args[-1] = 30
    async with conn.transaction():
        await configure(conn, SETTINGS)
        rows = await conn.fetch(f"EXPLAIN {sql}", *args)
    return "\n".join(row[0] for row in rows)


def mask(data: Corpus, source: str | None = None, kind: str | None = None) -> np.ndarray:  # type: ignore[type-arg]
    return np.array([
        (source is None or s == source) and (kind is None or k == kind)
        for s, k in zip(data.sources, data.kinds, strict=True)
    ])  # fmt: skip


async def recall(
    conn: asyncpg.Connection, data: Corpus, filters: DocFilters, queries: int
) -> tuple[float, int]:
    """(mean recall@10 against exact search under the same filter, fewest results returned)."""
    rng = np.random.default_rng(7)
    keep = mask(data, filters.source, filters.kind)
    recalls, fewest = [], 10
    for n in rng.integers(0, ROWS, queries):
        query = data.vectors[n]
        truth = {doc_id(i) for i in exact_neighbours(data.vectors, query, 10, keep)}
        found = await nearest_documents(conn, query, MODEL, filters, 10, SETTINGS)
        fewest = min(fewest, len(found))
        recalls.append(len(truth & {doc for doc, _ in found}) / len(truth))
    return float(np.mean(recalls)), fewest


async def test_unfiltered_and_broad_filters_walk_the_hnsw_graph(
    loaded: tuple[asyncpg.Connection, Corpus],
) -> None:
    conn, data = loaded
    for filters in (DocFilters(), DocFilters(kind="review")):
        explained = await plan(conn, data.vectors[0], filters)
        assert "Index Scan using ix_embeddings_embedding_hnsw" in explained, explained
        score, fewest = await recall(conn, data, filters, 20)
        assert fewest == 10
        assert score >= 0.95


async def test_one_row_in_fifty_returns_k_with_high_recall(
    loaded: tuple[asyncpg.Connection, Corpus],
) -> None:
    conn, data = loaded
    filters = DocFilters(source="rare")
    explained = await plan(conn, data.vectors[0], filters)
    # Either plan is intended: the graph with an iterative scan, or the exact B-tree path.
    assert "ix_embeddings_embedding_hnsw" in explained or "ix_embeddings_source" in explained
    assert "Seq Scan" not in explained, explained
    score, fewest = await recall(conn, data, filters, 20)
    assert fewest == 10
    assert score >= 0.95


async def test_a_selective_filter_is_an_exact_scan_over_a_btree(
    loaded: tuple[asyncpg.Connection, Corpus],
) -> None:
    conn, data = loaded
    filters = DocFilters(source="unique")  # one row of 20,000
    explained = await plan(conn, data.vectors[0], filters)
    assert "ix_embeddings_source" in explained, explained
    assert "hnsw" not in explained, explained
    found = await nearest_documents(conn, data.vectors[0], MODEL, filters, 10, SETTINGS)
    assert [doc for doc, _ in found] == [doc_id(7)]


async def test_iterative_scan_is_what_keeps_filtered_results_complete(
    loaded: tuple[asyncpg.Connection, Corpus],
) -> None:
    conn, data = loaded
    args: list[Any] = [data.vectors[3], MODEL]
    sql = nearest_sql(DocFilters(source="rare"), args)
    args[-1] = 10
    # Steer the planner onto the graph for both runs (no B-tree path without a sort).
    steer = "SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off"

    async def run(iterative: str) -> tuple[int, str]:
        async with conn.transaction():
            await configure(conn, SearchSettings(ef_search=40))
            await conn.execute(f"{steer}; SET LOCAL hnsw.iterative_scan = {iterative}")
            explained = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {sql}", *args))
            return len(await conn.fetch(sql, *args)), explained

    without, plan_without = await run("off")
    with_scan, plan_with = await run("relaxed_order")
    assert "ix_embeddings_embedding_hnsw" in plan_without, plan_without
    assert "ix_embeddings_embedding_hnsw" in plan_with, plan_with
    assert without < 10  # the graph alone yields ~ef_search candidates, ~1 in 50 of them 'rare'
    assert with_scan == 10
