"""Clustered synthetic 384-d unit vectors and a binary COPY loader for search tests and the
bench. Real embeddings of 100k texts take most of an hour on 2 cores (notes), so large
searches use clusters: a random centre per cluster plus noise, normalised."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np
from numpy.typing import NDArray

DIM = 384
MODEL = "all-minilm-l6-v2"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def clustered_vectors(
    count: int, *, clusters: int = 200, noise: float = 0.6, seed: int = 384
) -> NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    which = rng.integers(0, clusters, count)
    vectors: NDArray[np.float32] = centres[which] + noise * rng.standard_normal(
        (count, DIM)
    ).astype(np.float32) / np.sqrt(DIM)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def doc_id(n: int) -> str:
    return f"{n:064x}"


@dataclass(frozen=True)
class Corpus:
    vectors: NDArray[np.float32]
    sources: list[str]  # one per vector; `source_for` decides the mix
    kinds: list[str]


def source_for(n: int, rare_every: int) -> str:
    """One row in `rare_every` comes from the 'rare' source; row 7 alone from 'unique'."""
    if n == 7:
        return "unique"
    return "rare" if n % rare_every == 0 else "common"


def corpus(count: int, *, rare_every: int = 50, seed: int = 384) -> Corpus:
    vectors = clustered_vectors(count, seed=seed)
    sources = [source_for(n, rare_every) for n in range(count)]
    kinds = [("news", "review", "generic")[n % 3] for n in range(count)]
    return Corpus(vectors, sources, kinds)


async def bulk_load(conn: asyncpg.Connection, data: Corpus) -> None:
    """Documents and one embedding each via binary COPY, the HNSW index built after the load
    (building once is far cheaper than keeping the graph up to date row by row)."""
    count = len(data.vectors)
    await conn.execute("DROP INDEX IF EXISTS ix_embeddings_embedding_hnsw")
    await conn.copy_records_to_table(
        "documents",
        columns=["id", "content_hash", "source", "body", "kind", "collected_at", "published_at"],
        records=[
            (doc_id(n), doc_id(n), data.sources[n], f"body {n}", data.kinds[n], T0,
             T0 + timedelta(minutes=n))
            for n in range(count)
        ],
    )  # fmt: skip
    await conn.copy_records_to_table(
        "embeddings",
        columns=["document_id", "chunk_index", "char_start", "char_end", "model", "dim",
                 "embedding", "source", "kind", "published_at"],
        records=[
            (doc_id(n), 0, 0, 10, MODEL, DIM, data.vectors[n], data.sources[n], data.kinds[n],
             T0 + timedelta(minutes=n))
            for n in range(count)
        ],
    )  # fmt: skip
    await conn.execute("SET maintenance_work_mem = '1GB'")
    await conn.execute(
        "CREATE INDEX ix_embeddings_embedding_hnsw ON embeddings "
        "USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
    )
    await conn.execute("ANALYZE documents; ANALYZE embeddings")


def exact_neighbours(
    vectors: NDArray[np.float32],
    query: NDArray[np.float32],
    k: int,
    mask: NDArray[np.bool_] | None = None,
) -> list[int]:
    """Row numbers of the k nearest by cosine (vectors are unit length), optionally masked."""
    similarity = vectors @ query
    if mask is not None:
        similarity = np.where(mask, similarity, -np.inf)
    top = np.argpartition(-similarity, k)[:k]
    return [int(n) for n in top[np.argsort(-similarity[top])] if np.isfinite(similarity[n])]
