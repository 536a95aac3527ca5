"""The three parts: overhead (with the store's write ceiling), storm, scaling. Each feeds a
ledger of its own, waits for the store, checks the effect, and only then computes a rate."""

import argparse
import asyncio
import os
import time
from typing import Any

from bench.archive import insert_ceiling
from bench.pipeline.bed import processes, set_replicas
from bench.pipeline.measure import (
    OTHER,
    STATS_FLUSH_S,
    Meter,
    checked_effect,
    latencies,
    transactions,
    wait_stored,
)
from bench.pipeline.profile import Profiler
from sift_archiver.pool import init_connection
from sift_common.messaging.topology import Topology
from tests.faults.feeding import FeedStats, collected_body, feed_api, publish_amqp
from tests.faults.rig import NAMESPACE, Rig
from tests.support.ledger import Ledger

STORM_COPIES = 3
STORM_ANALYZERS = 3


def _reset_fakes(rig: Rig) -> None:
    """Forget the FAKE upstreams' recorded requests (a part counts its own)."""
    rig.chat.requests.clear()
    rig.embed.requests.clear()


async def feed_and_measure(
    rig: Rig, args: argparse.Namespace, docs: int, what: str
) -> dict[str, Any]:
    """`docs` documents through the ingest API; the checked effect, then the rate, latency and
    per-process CPU and RSS."""
    _reset_fakes(rig)
    ledger = Ledger(what)
    fed = ledger.add(docs, "api")
    stats = FeedStats()
    spread = docs / args.rate if args.rate else 0.0
    collector = rig.pipeline.services["collector"].url
    profiler = Profiler(rig, args.profile / what) if args.profile else None
    xacts = await transactions(rig)
    with Meter(processes(rig)) as meter:
        started = time.time()
        await feed_api(collector, ledger, fed, stats, spread, batch=args.batch, workers=4)
        fed_s = time.time() - started
        await wait_stored(rig, ledger, args.timeout)
        usage = meter.result(docs)
    profile = profiler.stop() if profiler else None
    effect = await checked_effect(rig, ledger, what)
    await asyncio.sleep(STATS_FLUSH_S)
    xacts = await transactions(rig) - xacts
    timing = await latencies(rig, ledger)
    wall = timing.pop("last_commit") - started
    return {
        "docs": docs, "docs_per_s": round(docs / wall, 1), "wall_s": round(wall, 2),
        "feed_s": round(fed_s, 2), "ingest_to_commit": timing, "processes": usage,
        "feeding": {"requests": stats.requests, "resent": stats.resent}, "effect": effect,
        "postgres_transactions_per_doc": round(xacts / docs, 2),
        **({"profile": profile} if profile else {}),
    }  # fmt: skip


async def overhead(rig: Rig, args: argparse.Namespace) -> dict[str, Any]:
    await set_replicas(rig, "analyzer", 1)
    await set_replicas(rig, "archiver", 1)
    result = await feed_and_measure(rig, args, args.docs, "overhead")
    conn = await rig.connect()
    try:
        await init_connection(conn)
        ceiling = await insert_ceiling(conn, args.ceiling_rows)
    finally:
        await conn.close()
    result["store_insert_ceiling_rows_per_s"] = round(ceiling, 1)
    result["ceiling_rows"] = args.ceiling_rows
    # Embedding rows per document: the store writes that many HNSW entries per document.
    per_doc = result["effect"]["stored"]["embedding_rows"] / args.docs
    result["embedding_rows_per_doc"] = round(per_doc, 2)
    result["rate_over_ceiling"] = round(result["docs_per_s"] * per_doc / ceiling, 3)
    return result


async def storm(rig: Rig, args: argparse.Namespace) -> dict[str, Any]:
    """Each document published `STORM_COPIES` times at once, by as many publishers."""
    await set_replicas(rig, "analyzer", STORM_ANALYZERS)
    await set_replicas(rig, "archiver", 1)
    _reset_fakes(rig)
    ledger = Ledger("storm")
    bodies = [collected_body(ledger, doc) for doc in ledger.add(args.storm_docs, "collected")]
    stats = FeedStats()
    exchange = Topology(NAMESPACE).exchange
    started = time.time()
    await asyncio.gather(
        *(publish_amqp(rig.rabbit.url, exchange, "document.collected", bodies, stats)
          for _ in range(STORM_COPIES))
    )  # fmt: skip
    await wait_stored(rig, ledger, args.timeout)
    effect = await checked_effect(rig, ledger, "storm", calls_per_doc=None)
    if stats.accepted != STORM_COPIES * args.storm_docs:
        raise AssertionError(f"storm: {stats.accepted} messages published")
    return {
        "unique_docs": args.storm_docs, "copies": STORM_COPIES, "analyzers": STORM_ANALYZERS,
        "published": stats.accepted, "wall_s": round(time.time() - started, 2),
        "llm_calls_at_fake_per_unique": effect["chat_calls_per_unique"],
        "llm_calls_at_gateway_per_unique": effect["gateway"]["per_unique"],
        "lost": effect["lost"], "duplicate_rows": effect["doubled"], "effect": effect,
    }  # fmt: skip


async def scaling(rig: Rig, args: argparse.Namespace) -> dict[str, Any]:
    steps = []
    for count in args.replicas:
        await set_replicas(rig, "analyzer", count)
        await set_replicas(rig, "archiver", count)
        step = await feed_and_measure(rig, args, args.scale_docs, f"scale{count}")
        steps.append({"replicas": count, **step, "limit": limiting(step["processes"])})
        print(f"  {count} replica(s): {step['docs_per_s']} docs/s; {steps[-1]['limit']}")
    return {"docs_per_step": args.scale_docs, "steps": steps}


def limiting(usage: dict[str, dict[str, float]]) -> str:
    """The busiest process (a Python service near 1.0 is CPU-bound on its one thread) and the
    machine's cores in use, ours and other work's (near all cores: the CPU is the limit)."""
    ours = {name: row for name, row in usage.items() if name != OTHER}
    busiest = max(ours, key=lambda name: ours[name]["cores"])
    total = sum(row["cores"] for row in ours.values())
    other = usage.get(OTHER, {}).get("cores", 0.0)
    return (f"busiest {busiest} {ours[busiest]['cores']:.2f} cores; pipeline {total:.2f} + "
            f"other work {other:.2f} of {os.cpu_count()} cores")  # fmt: skip
