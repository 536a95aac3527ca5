"""The archiver's store: documents/s stored with embeddings, k-NN recall and latency in pgvector.

Parts (each flag-sized; the JSON records what ran):

* **ingest**: the archiver's own path (every event through its batcher with the service's
  prefetch of two batches; per batch: chunk, one gateway embeddings call, one transaction)
  over `--docs` generated news texts at batch sizes `--batch-sizes` (new texts for every batch
  size: the store keeps a body once, so reused texts would be stored as duplicates, i.e. not
  at all), against the raw vLLM
  `/v1/embeddings` on the same texts, same batch size and two requests in flight, measured
  before and after in the same run (the faster of the two is the bar). The gateway runs
  in-process in front of the running vLLM embeddings server (`SIFT_VLLM_EMBED_URL`, default
  http://127.0.0.1:8202).
* **knn**: `--vectors` clustered synthetic 384-d unit vectors (real embeddings of 100k texts
  take most of an hour on 2 cores), binary COPY, HNSW (m=16, ef_construction=64) built after
  the load; `--queries` held-out queries through the API's own search function: recall@10
  against exact search (numpy) and p50/p95 latency at each `--ef-search`; then a filter keeping
  1 row in 50: results per query, recall against exact search under the filter (queries whose
  10th and 11th true neighbours are near-ties, gap < 1e-3, are left out and counted), latency,
  and the plan PostgreSQL chose.
* **insert ceiling**: executemany of 100-row transactions into `embeddings` with the HNSW
  index present (on the k-NN table): the store's real write limit on this machine.

Every part counts the rows it wrote before it reports a rate, and stops with `BenchInvalid`
when they are not what it fed: a rate over an empty store is not a rate.

Run: `.venv/bin/python bench/archive.py` (or `make bench-archive`); results go to
`bench/results/archive.json`. The database is the embedded PostgreSQL under
`.sift/pgdata-bench` unless `SIFT_DATABASE_URL` is set; a fresh database per run, dropped after.
"""

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import describe  # noqa: E402
from sift_archiver.embedder import Embedder  # noqa: E402
from sift_archiver.ingest import DocumentArchive  # noqa: E402
from sift_archiver.metrics import ArchiverMetrics  # noqa: E402
from sift_archiver.pool import asyncpg_dsn, init_connection  # noqa: E402
from sift_archiver.queries import DocFilters  # noqa: E402
from sift_archiver.search import SearchSettings, nearest_documents, nearest_sql  # noqa: E402
from sift_common.gateway_client import GatewayClient  # noqa: E402
from sift_common.store import migrate  # noqa: E402
from sift_common.store.embedded import start_embedded_postgres, to_asyncpg_url  # noqa: E402
from tests.support.archiver import analyzed  # noqa: E402
from tests.support.archiver_vectors import (  # noqa: E402
    MODEL,
    clustered_vectors,
    doc_id,
    exact_neighbours,
)
from tests.support.gateway import embed_profile, running_gateway  # noqa: E402

WORDS = [
    "market", "shares", "profit", "revenue", "merger", "storm", "harbour", "bank", "chip",
    "factory", "review", "pasta", "service", "price", "growth", "quarter", "forecast",
    "regulator", "recall", "supply", "energy", "retail",
]  # fmt: skip


class BenchInvalid(RuntimeError):
    """The bench did not have the effect it measures (rows missing): no rate is reported."""


def news_texts(count: int, tag: str) -> list[tuple[str, str]]:
    """`count` (title, body) pairs, 40-90 words each; `tag` makes every body new to the store."""
    rng = np.random.default_rng(1)  # the same lengths and words for every tag
    texts = []
    for n in range(count):
        words = rng.choice(WORDS, size=int(rng.integers(40, 90)))
        texts.append((f"Report {n}", f"Report {tag}-{n}: " + " ".join(map(str, words)) + "."))
    return texts


async def stored_rows(conn: asyncpg.Connection, source: str) -> dict[str, int]:
    """What the archive holds for `source`: documents, those with an analysis and with at
    least one embedding, and embedding rows."""
    row = await conn.fetchrow(
        """
        SELECT count(*) AS documents,
               count(*) FILTER (WHERE EXISTS (
                   SELECT 1 FROM analyses a WHERE a.document_id = d.id)) AS analysed,
               count(*) FILTER (WHERE EXISTS (
                   SELECT 1 FROM embeddings e WHERE e.document_id = d.id)) AS embedded,
               (SELECT count(*) FROM embeddings e JOIN documents x ON x.id = e.document_id
                 WHERE x.source = $1) AS embedding_rows
          FROM documents d WHERE d.source = $1
        """,
        source,
    )
    assert row is not None
    return {key: int(row[key]) for key in ("documents", "analysed", "embedded", "embedding_rows")}


def check_stored(what: str, fed: int, rows: dict[str, int]) -> None:
    if not rows["documents"] == rows["analysed"] == rows["embedded"] == fed:
        raise BenchInvalid(f"{what}: fed {fed} documents, the store holds {rows}")


async def fresh_database(admin_url: str) -> str:
    name = f"sift_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    await migrate.upgrade(url)
    return url


async def drop_database(admin_url: str, url: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    await conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    await conn.close()


IN_FLIGHT_BATCHES = 2  # the archiver's prefetch is twice its batch size: two batches at once


async def raw_vllm(embed_url: str, model: str, texts: list[str], batch: int) -> float:
    """Texts/s straight to vLLM, one request per `batch` texts, two requests in flight."""
    gate = asyncio.Semaphore(IN_FLIGHT_BATCHES)
    async with httpx.AsyncClient(timeout=300) as http:

        async def send(first: int) -> None:
            async with gate:
                await _post_batch(http, embed_url, model, texts[first : first + batch])

        started = time.perf_counter()
        await asyncio.gather(*(send(first) for first in range(0, len(texts), batch)))
        return len(texts) / (time.perf_counter() - started)


async def _post_batch(
    http: httpx.AsyncClient, embed_url: str, model: str, texts: list[str]
) -> None:
    body = {"model": model, "input": texts, "truncate_prompt_tokens": 256}
    (await http.post(f"{embed_url}/v1/embeddings", json=body)).raise_for_status()


async def bench_ingest(args: argparse.Namespace, url: str, embed_url: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as http:
        model = (await http.get(f"{embed_url}/v1/models")).json()["data"][0]["id"]
    pool = await asyncpg.create_pool(asyncpg_dsn(url), min_size=1, max_size=4, init=init_connection)
    timeouts = {"connect_s": 2, "ttft_s": 120, "stall_s": 60, "total_s": 300}
    profiles = {"e": embed_profile(embed_url, served_model=model, timeouts=timeouts)}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        async with running_gateway(Path(tmp), profiles, {"embed": "e"}) as gateway:
            client = GatewayClient(gateway.url)
            for batch in args.batch_sizes:
                metrics = ArchiverMetrics.create(CollectorRegistry())
                archive = DocumentArchive(
                    pool, Embedder(client, "embed", None), metrics, _no_refresh,
                    batch_size=batch, batch_wait_s=1, chunk_words=160, chunk_overlap=32,
                )  # fmt: skip
                # New texts per batch size (same lengths and words): nothing is a duplicate.
                source = f"bench-{batch}"
                texts = news_texts(args.docs, source)
                events = [analyzed(t, b, source=source) for t, b in texts]
                plain = [f"{t}\n\n{b}" for t, b in texts]
                raw_before = await raw_vllm(embed_url, model, plain, batch)
                # As the service runs: every event through the batcher, prefetch = 2 × batch.
                gate = asyncio.Semaphore(IN_FLIGHT_BATCHES * batch)
                started = time.perf_counter()
                await asyncio.gather(*(_through(archive, gate, event) for event in events))
                stored = len(events) / (time.perf_counter() - started)
                async with pool.acquire() as conn:
                    rows = await stored_rows(conn, source)
                check_stored(f"batch size {batch}", len(events), rows)
                # Raw measured before and after; the faster one is the bar (conservative).
                raw = max(raw_before, await raw_vllm(embed_url, model, plain, batch))
                results.append({"batch_size": batch, "fed": len(events), "stored": rows,
                                "stored_docs_per_s": stored, "raw_vllm_texts_per_s": raw,
                                "ratio": stored / raw})  # fmt: skip
                print(f"  batch {batch:>4}: stored {stored:7.1f} docs/s, raw vLLM {raw:7.1f}/s")
            await client.aclose()
    await pool.close()
    return results


async def _through(archive: DocumentArchive, gate: asyncio.Semaphore, event: Any) -> None:
    async with gate:
        await archive.handle(event)


async def _no_refresh(event: object) -> None:
    return None


async def load_knn(conn: asyncpg.Connection, vectors: np.ndarray, rare_every: int) -> float:
    count = len(vectors)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    sources = ["rare" if n % rare_every == 0 else "common" for n in range(count)]
    await conn.execute("DROP INDEX IF EXISTS ix_embeddings_embedding_hnsw")
    await conn.copy_records_to_table(
        "documents", columns=["id", "content_hash", "source", "body", "kind", "collected_at"],
        records=[(doc_id(n), doc_id(n), sources[n], "b", "news", t0) for n in range(count)],
    )  # fmt: skip
    await conn.copy_records_to_table(
        "embeddings",
        columns=["document_id", "chunk_index", "char_start", "char_end", "model", "dim",
                 "embedding", "source", "kind", "published_at"],
        records=[(doc_id(n), 0, 0, 1, MODEL, 384, vectors[n], sources[n], "news",
                  t0 + timedelta(seconds=n)) for n in range(count)],
    )  # fmt: skip
    await conn.execute("SET maintenance_work_mem = '1GB'")
    started = time.perf_counter()
    await conn.execute(
        "CREATE INDEX ix_embeddings_embedding_hnsw ON embeddings "
        "USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
    )
    build_s = time.perf_counter() - started
    await conn.execute("ANALYZE documents; ANALYZE embeddings")
    loaded = await conn.fetchval("SELECT count(*) FROM embeddings")
    if loaded != count:
        raise BenchInvalid(f"k-NN load: {count} vectors fed, {loaded} embedding rows")
    return build_s


GRAPH_ONLY = "SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off"


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


async def run_queries(
    conn: asyncpg.Connection, vectors: np.ndarray, queries: np.ndarray,
    filters: DocFilters, mask: np.ndarray | None, ef: int,
    steer: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    settings = SearchSettings(ef_search=ef, max_scan_tuples=20_000)
    recalls, latencies, returned, ties = [], [], [], 0
    for query in queries:
        similarity = vectors @ query if mask is None else np.where(mask, vectors @ query, -np.inf)
        top11 = np.sort(similarity[np.argpartition(-similarity, 11)[:11]])[::-1]
        if mask is not None and top11[9] - top11[10] < 1e-3:
            ties += 1
            continue
        truth = {doc_id(i) for i in exact_neighbours(vectors, query, 10, mask)}
        started = time.perf_counter()
        async with conn.transaction():  # the search's own transaction nests as a savepoint
            if steer:
                await conn.execute(steer)
            found = await nearest_documents(conn, query, MODEL, filters, 10, settings)
        latencies.append((time.perf_counter() - started) * 1000)
        returned.append(len(found))
        recalls.append(len(truth & {doc for doc, _ in found}) / 10)
    return {"ef_search": ef, "queries": len(latencies), "near_ties_left_out": ties,
            "recall_at_10": statistics.fmean(recalls), "p50_ms": _pct(latencies, 50),
            "p95_ms": _pct(latencies, 95), "min_results": min(returned),
            "mean_results": statistics.fmean(returned)}  # fmt: skip


async def explain(conn: asyncpg.Connection, query: np.ndarray, filters: DocFilters, ef: int) -> str:
    args: list[Any] = [query, MODEL]
    sql = nearest_sql(filters, args)
    args[-1] = 30
    async with conn.transaction():
        await conn.execute(
            f"SET LOCAL hnsw.ef_search = {ef}; SET LOCAL hnsw.iterative_scan = relaxed_order"
        )
        rows = await conn.fetch(f"EXPLAIN {sql}", *args)
    # The query vector's literal would fill the screen.
    return re.sub(r"'\[[^']*\]'::vector", "$1", "\n".join(row[0] for row in rows))


async def insert_ceiling(conn: asyncpg.Connection, rows: int) -> float:
    vectors = clustered_vectors(rows, seed=99)
    base = 10_000_000
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    await conn.copy_records_to_table(
        "documents", columns=["id", "content_hash", "source", "body", "kind", "collected_at"],
        records=[(doc_id(base + n), doc_id(base + n), "ins", "b", "news", t0) for n in range(rows)],
    )  # fmt: skip
    sql = ("INSERT INTO embeddings (document_id, chunk_index, char_start, char_end, model, dim, "
           "embedding) VALUES ($1, 0, 0, 1, $2, 384, $3)")  # fmt: skip
    before = await conn.fetchval("SELECT count(*) FROM embeddings")
    started = time.perf_counter()
    for first in range(0, rows, 100):
        async with conn.transaction():
            chunk = range(first, min(first + 100, rows))
            await conn.executemany(sql, [(doc_id(base + n), MODEL, vectors[n]) for n in chunk])
    rate = rows / (time.perf_counter() - started)
    inserted = await conn.fetchval("SELECT count(*) FROM embeddings") - before
    if inserted != rows:
        raise BenchInvalid(f"insert ceiling: {rows} rows sent, {inserted} inserted")
    return float(rate)


async def bench_knn(args: argparse.Namespace, url: str) -> dict[str, Any]:
    everything = clustered_vectors(args.vectors + args.queries, seed=384)
    vectors, queries = everything[: args.vectors], everything[args.vectors :]
    conn = await asyncpg.connect(asyncpg_dsn(url))
    await init_connection(conn)
    build_s = await load_knn(conn, vectors, 50)
    print(f"  loaded {args.vectors} vectors, HNSW built in {build_s:.1f} s")
    unfiltered = []
    for ef in args.ef_search:
        unfiltered.append(await run_queries(conn, vectors, queries, DocFilters(), None, ef))
        print(f"  ef_search {ef}: {unfiltered[-1]}")
    mask = np.array([n % 50 == 0 for n in range(args.vectors)])
    rare = DocFilters(source="rare")
    filtered = await run_queries(conn, vectors, queries, rare, mask, args.filter_ef)
    plan = await explain(conn, queries[0], rare, args.filter_ef)
    print(f"  filter 1 in 50: {filtered}\n{plan}")
    # The same filter forced onto the graph (no B-tree + sort path): the iterative scan's own
    # recall and latency, for the record and for filters without a B-tree.
    graph = await run_queries(conn, vectors, queries, rare, mask, args.filter_ef, steer=GRAPH_ONLY)
    print(f"  filter 1 in 50, HNSW + iterative scan: {graph}")
    ceiling = await insert_ceiling(conn, args.insert_rows)
    print(f"  insert with HNSW present: {ceiling:.0f} rows/s")
    await conn.close()
    return {"vectors": args.vectors, "hnsw_build_s": build_s, "unfiltered": unfiltered,
            "filtered_1_in_50": {**filtered, "plan": plan},
            "filtered_1_in_50_hnsw_iterative": graph,
            "insert_with_hnsw_rows_per_s": ceiling}  # fmt: skip


def print_tables(result: dict[str, Any]) -> None:
    print("\nstore with embeddings (documents/s) vs raw vLLM /v1/embeddings (texts/s)")
    print(f"{'batch':>6} {'stored/s':>10} {'raw/s':>10} {'ratio':>7}")
    for row in result.get("ingest", []):
        print(f"{row['batch_size']:>6} {row['stored_docs_per_s']:>10.1f} "
              f"{row['raw_vllm_texts_per_s']:>10.1f} {row['ratio']:>7.2f}")  # fmt: skip
    knn = result.get("knn")
    if knn:
        print(f"\nk-NN, {knn['vectors']} vectors, k=10")
        print(f"{'case':>14} {'ef':>5} {'recall':>7} {'p50 ms':>7} {'p95 ms':>7} {'min k':>6}")
        rows = [("unfiltered", r) for r in knn["unfiltered"]]
        rows.append(("1 in 50", knn["filtered_1_in_50"]))
        rows.append(("1 in 50 hnsw", knn["filtered_1_in_50_hnsw_iterative"]))
        for name, r in rows:
            print(f"{name:>14} {r['ef_search']:>5} {r['recall_at_10']:>7.3f} {r['p50_ms']:>7.2f} "
                  f"{r['p95_ms']:>7.2f} {r['min_results']:>6}")  # fmt: skip
        print(
            f"\ninsert with the HNSW index present: {knn['insert_with_hnsw_rows_per_s']:.0f} rows/s"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ints = lambda text: [int(x) for x in text.split(",")]  # noqa: E731
    parser.add_argument("--docs", type=int, default=256, help="documents per batch size")
    parser.add_argument("--batch-sizes", type=ints, default=[1, 8, 32, 128])
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--ef-search", type=ints, default=[40, 100, 200])
    parser.add_argument("--filter-ef", type=int, default=100)
    parser.add_argument("--insert-rows", type=int, default=3_000)
    parser.add_argument("--parts", default="ingest,knn")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "archive.json")
    return parser.parse_args(argv)


async def main() -> None:
    args = parse_args()
    configured = os.environ.get("SIFT_DATABASE_URL")
    admin = (
        to_asyncpg_url(configured)
        if configured
        else start_embedded_postgres(ROOT / ".sift" / "pgdata-bench")
    )
    embed_url = os.environ.get("SIFT_VLLM_EMBED_URL", "http://127.0.0.1:8202").rstrip("/")
    result = await run(args, admin, embed_url)
    print_tables(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.out}")


async def run(args: argparse.Namespace, admin: str, embed_url: str) -> dict[str, Any]:
    """Every part asked for, each on a fresh database (dropped after); the JSON to write."""
    result: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(),
        "command": "python bench/archive.py " + " ".join(sys.argv[1:]),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": describe(),
    }
    url = await fresh_database(admin)
    try:
        if "ingest" in args.parts:
            result["ingest"] = await bench_ingest(args, url, embed_url)
        if "knn" in args.parts:
            await drop_database(admin, url)
            url = await fresh_database(admin)
            result["knn"] = await bench_knn(args, url)
    finally:
        await drop_database(admin, url)
    return result


if __name__ == "__main__":
    asyncio.run(main())
