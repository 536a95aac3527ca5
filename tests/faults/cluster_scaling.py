"""Documents/s with 1, 2 and 3 processes of collector, analyzer and archiver on the private
three-node RabbitMQ cluster (tests/faults/cluster_bed.py), against zero-delay FAKE upstreams
(two chat replicas, one embedding). One gateway throughout: the analyzers take one gateway URL.

Each scale feeds a fresh ledger all at once through the ingest APIs (split over the collectors
running), waits until the store holds it, checks the effect (every document stored once, with
its analysis and embeddings) and only then computes the rate: documents ÷ (last commit − first
request). The smoke test (tests/faults/test_cluster.py) checks the effect alone.

    uv run --frozen python -m tests.faults.cluster_scaling --docs 3000 \
        --out bench/results/cluster-scaling.json
"""

import argparse
import asyncio
import json
import tempfile
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.machine import describe
from tests.faults import observe
from tests.faults.cluster_bed import ClusterBed, set_chat_delay, set_scale, start_cluster_bed
from tests.faults.cluster_scenario import feed
from tests.faults.scenario import ledger_fields
from tests.support.ledger import Ledger

STORE_WAIT_S = 600.0
BATCH = 50  # documents per ingest request, as bench.pipeline feeds


async def measure_scale(
    bed: ClusterBed, replicas: int, docs: int, batch: int = BATCH
) -> dict[str, Any]:
    await set_scale(bed, replicas)
    set_chat_delay(bed, 0.0)
    ledger = Ledger(f"scale{replicas}")
    started = time.time()
    stats = await feed(bed, ledger, docs, 0.0, batch)
    deadline = time.time() + STORE_WAIT_S
    while True:
        verdict, rows = await observe.verdict(bed.rig, ledger, set())
        if verdict.complete or time.time() > deadline:
            break
        await asyncio.sleep(0.5)
    last = max((row.stored_at.timestamp() for row in rows), default=started)
    wall = max(last - started, 1e-3)
    return {
        "replicas_each": replicas,
        **ledger_fields(verdict, docs),
        "docs_per_s": round(verdict.stored_once / wall, 1),
        "wall_s": round(wall, 2),
        "feed_resent": stats.resent,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="sift-cluster-scaling-"))
    async with AsyncExitStack() as stack:
        bed = await start_cluster_bed(root, stack, replicas=1)
        await measure_scale(bed, 1, min(args.docs, 200))  # warm-up, not reported
        scales = [await measure_scale(bed, n, args.docs) for n in args.replicas]
        return {"startup_s": bed.startup_s, "scales": scales}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=3000, help="documents per scale")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", type=Path, default=Path("bench/results/cluster-scaling.json"))
    args = parser.parse_args()
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m tests.faults.cluster_scaling "
        f"--docs {args.docs} --replicas {' '.join(map(str, args.replicas))}",
        "machine": describe(),
        "bed": "3 RabbitMQ nodes (quorum queues on 3 members) behind the test-only front; "
        "FAKE chat x2 and embeddings at zero delay; one gateway",
    }
    report.update(asyncio.run(run(args)))
    args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(json.dumps(report["scales"], indent=1))


if __name__ == "__main__":
    main()
