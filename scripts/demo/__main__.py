"""`python -m scripts.demo`: run Sift end to end on the bundled corpus and report.

Options: --report PATH (JSON, default .sift/demo/report.json), --timeout S (wait for the
store), --keep (or KEEP=1: keep the services up after the report, for the analyst page, until
Ctrl-C). The run's queues are deleted at the end (the report keeps what they held); the store
keeps its rows for querying."""

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from scripts.demo import feeding, report, run
from scripts.demo.pipeline import Pipeline
from scripts.processes import free_port
from sift_common.messaging.teardown import delete_topology
from sift_common.messaging.topology import (
    ANALYZER_DOCUMENTS,
    ARCHIVER_DOCUMENTS,
    COLLECTOR_INTAKE,
    Topology,
)

DATA = run.ROOT / "data"
WORK = run.ROOT / ".sift" / "demo"
console = Console()


def say(message: str) -> None:
    console.print(f"[bold cyan]==>[/] {message}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.demo")
    parser.add_argument("--report", type=Path, default=WORK / "report.json")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--keep", action="store_true", default=os.environ.get("KEEP") == "1")
    args = parser.parse_args(argv)
    started = time.monotonic()
    run.check_brokers()
    manifest = json.loads((DATA / "MANIFEST.json").read_text())
    database_url, started_pg = run.start_store(say)
    namespace = run.new_namespace()
    base_env = {
        "SIFT_NAMESPACE": namespace,
        "SIFT_DATABASE_URL": database_url,
        "SIFT_RABBIT_URL": run.RABBIT_URL,
        "SIFT_LOG_LEVEL": "INFO",
    }
    stack = run.Stack(Pipeline(base_env, WORK / "logs"), database_url, namespace, started_pg, [])
    feed_server = None
    try:
        stack.started_vllm = run.start_vllm(say)
        drop = feeding.prepare_drop(DATA, WORK / "work")
        port = free_port()
        feed_server = feeding.serve_directory(DATA, port)
        sources = feeding.sources_yaml(
            WORK / "sources.yaml", drop, f"http://127.0.0.1:{port}/feed.xml"
        )
        run.start_services(stack, sources, say)
        result = feed_and_report(stack, manifest, drop, args.timeout)
        result["timing_s"] = round(time.monotonic() - started, 1)
        run.write_json(args.report, result)
        print_report(result, stack, args.report)
        if args.keep:
            keep_up(stack.pipeline.services["archiver"].url)
        return 0 if result["complete"] else 1
    except Exception:
        console.print(stack.pipeline.log_tails(), markup=False, highlight=False)
        raise
    finally:
        say("stopping what the demo started")
        codes = stack.pipeline.stop_all()
        asyncio.run(delete_topology(run.RABBIT_URL, *run.topologies(namespace)))
        if feed_server is not None:
            feed_server.shutdown()
        if stack.started_postgres:
            run.stop_store()
        run.stop_vllm(stack.started_vllm)  # a warm pair (`make vllm-up`) is left running
        console.print(f"    exit codes: {codes}")


def keep_up(archiver_url: str) -> None:
    """Leave the services up for the analyst page until Ctrl-C (then the demo stops them)."""
    say(f"the services stay up: open {archiver_url}/ui/ (key dev-key); Ctrl-C to stop")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


def feed_and_report(
    stack: run.Stack, manifest: dict[str, Any], drop: Path, timeout_s: float
) -> dict[str, Any]:
    services = stack.pipeline.services
    fed = feeding.Fed()
    say("feeding: directory drop and RSS feed are polled by the collector; now the API and AMQP")
    feeding.submit_api(services["collector"].url, json.loads((DATA / "api.json").read_text()), fed)
    topology = Topology(stack.namespace)
    amqp = json.loads((DATA / "amqp.json").read_text())
    asyncio.run(feeding.publish_amqp(run.RABBIT_URL, topology.exchange, amqp, fed))
    expected = manifest["total_valid_unique"]
    intake = topology.dead_letter_queue(COLLECTOR_INTAKE)

    def published() -> int:
        return report.collector_counts(services["collector"].url).get("published", 0)

    store = run.wait_archived(stack, expected, published, timeout_s)
    time.sleep(3)  # let any straggler (a duplicate effect would show here) land before counting
    store = run.status(services["archiver"].url)["store"]
    counts = report.collector_counts(services["collector"].url)
    dlq = asyncio.run(dead_lettered(topology))
    queues = run.status(services["archiver"].url)["queues"]
    return {
        "expected": {k: manifest[k] for k in manifest if k.startswith("total_")},
        "collected": counts.get("published", 0),
        "duplicates_dropped": counts.get("duplicate", 0),
        "rejected_by_sources": counts.get("rejected", 0),
        "store": store,
        "queues": queues,
        "dead_lettered": dlq,
        "refused": [vars(r) for r in fed.refused],
        "failed_files": report.failed_files(drop),
        "analysis_dead_lettered": sum(item["queue"] != intake for item in dlq),
        "complete": run.settled(queues, store, expected),
        "queries": report.queries(services["archiver"].url),
        "database_url": stack.database_url,
        "namespace": stack.namespace,
    }


async def dead_lettered(topology: Topology) -> list[dict[str, str]]:
    """Every dead-lettered message with its reason: intake (malformed) and analysis/archiving."""
    queues = [COLLECTOR_INTAKE, ANALYZER_DOCUMENTS, ARCHIVER_DOCUMENTS]
    found: list[dict[str, str]] = []
    for spec in queues:
        found += await report.dead_letters(run.RABBIT_URL, topology.dead_letter_queue(spec))
    return found


def print_report(result: dict[str, Any], stack: run.Stack, path: Path) -> None:
    store, q = result["store"], result["queries"]
    console.rule("Sift demo report")
    expected = result["expected"]["total_valid_unique"]
    console.print(f"documents collected    {result['collected']}  (expected {expected})")
    console.print(f"duplicates dropped     {result['duplicates_dropped']}")
    console.print(f"analysed / archived    {store['analyses']} / {store['documents']}")
    console.print(f"embeddings             {store['embeddings']}")
    console.print(f"dead-lettered          {len(result['dead_lettered'])}")
    for item in result["dead_lettered"]:
        console.print(f"    {item['queue']}: {item['reason'][:150]}")
    for item in result["refused"]:
        console.print(f"    API 422 {item['what']}: {item['reason'][:120]}")
    for item in result["failed_files"]:
        console.print(f"    drop failed/{item['file']}: {item['reason'][:150]}")
    for title, rows in (("top", q["top"]), ("bottom", q["bottom"])):
        console.print(f"{title} entities by score:")
        for row in rows:
            ticker = row.get("ticker") or ""
            console.print(
                f"    {row['mean_score']:6.1f}  {row['name']} {ticker} ({row['documents']} docs)"
            )
    console.print("semantic search 'chip maker revenue beats estimates':")
    for row in q["search"]:
        console.print(f"    {row['distance']:.3f}  {row['title']}")
    if q["entity"] is not None:
        digest = q["entity"].get("latest_digest")
        console.print(
            f"digest of {q['entity'].get('name')}: {json.dumps(digest, ensure_ascii=False)[:300]}"
        )
    console.print(f"took {result['timing_s']} s; JSON report: {path}")
    page = f"{stack.pipeline.services['archiver'].url}/ui/"
    console.print(f"analyst page: {page}  (key dev-key; make demo KEEP=1 keeps it up)")
    console.print("query further (start the services again, e.g. make archiver):")
    console.print(f"    export SIFT_DATABASE_URL={stack.database_url}")
    console.print("    uv run sift top;  uv run sift search 'text';  uv run sift status")
    console.print(
        "    curl -H 'X-API-Key: dev-key' 'http://127.0.0.1:8130/v1/rankings?direction=top'"
    )


if __name__ == "__main__":
    sys.exit(main())
