"""The cluster must-show: documents flow steadily through the ingest API (split over the
collectors) while, a few seconds apart, the RabbitMQ node leading `analyzer.documents` gets
kill -9, one analyzer replica gets kill -9, and one FAKE chat replica dies on the wire (its
connections reset, new ones refused for `CHAT_DOWN_S`); the node, the analyzer and the chat
replica are then brought back. Judged by the ledger (every document stored exactly once, nothing
dead-lettered), by chat calls per document at the gateway (its request log) and at the FAKE
replicas, by throughput (tests/faults/cluster_measures.py), and by the queues' membership (the
restarted node back in every quorum queue).
"""

import asyncio
import json
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from sift_common.messaging.topology import ANALYZER_DOCUMENTS, Topology
from tests.faults import cluster_measures as measures
from tests.faults import observe
from tests.faults.cluster_bed import ClusterBed, collector_urls, set_chat_delay
from tests.faults.feeding import FeedStats, feed_api
from tests.faults.rig import FAKE_CHAT, NAMESPACE
from tests.faults.scenario import SETTLE_S, ledger_fields, queues_drained
from tests.support.ledger import Ledger, calls_per_document
from tests.support.rabbit_cluster import QueueMembers

NODE_DOWN_S = 5.0  # the killed node stays down this long before it is started again
CHAT_DOWN_S = 5.0
GAP_S = 1.0  # between the kills
KILL_GRACE_S = 0.5
SETTLE_WAIT_S = 90.0
ANALYZER = "analyzer-2"
LEADING = Topology(NAMESPACE).work_queue(ANALYZER_DOCUMENTS)


async def strike(bed: ClusterBed, evidence: dict[str, Any]) -> float:
    """The three faults, a second apart, then everything brought back; when the last struck
    (epoch seconds)."""
    cluster, rig = bed.cluster, bed.rig
    leader = await asyncio.to_thread(cluster.leader_of, LEADING)
    evidence["killed_node"] = cluster.nodes[leader].node
    evidence["node_exit_code"] = await asyncio.to_thread(cluster.kill, leader)
    node_killed = time.monotonic()
    await asyncio.sleep(GAP_S)
    at = time.monotonic()
    rig.pipeline.kill9(ANALYZER)
    evidence["analyzer_exit_code"] = rig.pipeline.services[ANALYZER].returncode()
    evidence["_analyzer_open"] = measures.open_at(bed.chat_requests(), at, KILL_GRACE_S)
    restart_analyzer = asyncio.create_task(asyncio.to_thread(rig.pipeline.restart, ANALYZER))
    await asyncio.sleep(GAP_S)
    at, last_kill = time.monotonic(), time.time()
    evidence["chat_connections_cut"] = await rig.background.call(
        bed.chat_fronts[0].cut(CHAT_DOWN_S)
    )
    evidence["_chat_open"] = measures.open_at(bed.chats[0].chat_requests(), at, KILL_GRACE_S)
    await asyncio.sleep(max(NODE_DOWN_S - (time.monotonic() - node_killed), 0.0))
    evidence["node_restart_s"] = round(await asyncio.to_thread(cluster.restart, leader), 1)
    await restart_analyzer
    await asyncio.sleep(max(at + CHAT_DOWN_S - time.monotonic(), 0.0))
    await rig.background.call(bed.chat_fronts[0].heal())
    evidence["new_leader"] = (await asyncio.to_thread(cluster.queues))[LEADING].leader
    return last_kill


async def feed(bed: ClusterBed, ledger: Ledger, docs: int, spread_s: float) -> FeedStats:
    """`docs` documents over `spread_s`, split over the collectors' ingest APIs."""
    stats = FeedStats()
    urls = collector_urls(bed.rig)
    fed = ledger.add(docs, "api")
    parts = [fed[i :: len(urls)] for i in range(len(urls))]
    jobs = (
        feed_api(url, ledger, part, stats, spread_s) for url, part in zip(urls, parts, strict=True)
    )
    await asyncio.gather(*jobs)
    stats.done = True
    return stats


async def settle(bed: ClusterBed, ledger: Ledger, deadline: float) -> None:
    while time.time() < deadline:
        verdict, _ = await observe.verdict(bed.rig, ledger, set())
        if verdict.complete:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(SETTLE_S)


GATEWAY_ANSWERS = """
SELECT request_id FROM gateway.request_logs
WHERE profile = $1 AND status_code = 200 AND created_at >= $2"""


async def gateway_answered(bed: ClusterBed, since: datetime) -> list[str]:
    conn = await bed.rig.connect()
    try:
        return [str(r["request_id"]) for r in await conn.fetch(GATEWAY_ANSWERS, FAKE_CHAT, since)]
    finally:
        await conn.close()


async def run_cluster_faults(
    bed: ClusterBed, rate: float, before_s: float, after_s: float
) -> tuple[dict[str, Any], list[str]]:
    """Feed `rate` documents/s; strike after `before_s`; keep feeding `after_s` past the strike's
    start. The result and its problems."""
    rig = bed.rig
    set_chat_delay(bed, 0.05, 0.02)
    ledger, evidence = Ledger("cluster"), {}
    spread = before_s + after_s
    began, feed_start = datetime.now(UTC), time.time()
    feeding = asyncio.create_task(feed(bed, ledger, round(rate * spread), spread))
    await asyncio.sleep(before_s)
    first_fault = time.time()
    last_kill = await strike(bed, evidence)
    restored = time.time()
    stats = await feeding
    feed_end = time.time()
    await settle(bed, ledger, restored + SETTLE_WAIT_S)
    dead = await observe.take_dead_letters(rig, ledger)
    verdict, rows = await observe.verdict(rig, ledger, set())
    stored = [row.stored_at.timestamp() for row in rows]
    flow = measures.throughput(stored, feed_start, first_fault, last_kill, feed_end)
    names = {row.document_id[:16]: row.external_id or row.document_id for row in rows}
    ids = {row.document_id[:16]: ledger.ours(row.body)[0] for row in rows}
    at_gateway = measures.gateway_answers(await gateway_answered(bed, began))
    at_fakes = calls_per_document(ledger, _prompts(bed))
    killed_calls = evidence.pop("_analyzer_open")
    cut_calls = evidence.pop("_chat_open")
    by_id = {key: n for key, n in at_gateway.items() if key in names}
    gateway_over = measures.over_allowed(
        Counter(by_id), {k for k, m in ids.items() if m in killed_calls}
    )
    fakes_over = measures.over_allowed(at_fakes, killed_calls | cut_calls)
    members = await asyncio.to_thread(bed.cluster.queues)
    ours = {name: q for name, q in members.items() if name.startswith(NAMESPACE)}
    left = await queues_drained(rig, 15.0)
    result: dict[str, Any] = {
        "scenario": "cluster-node-analyzer-chat-killed",
        **ledger_fields(verdict, len(ledger.documents)),
        "feed": {"docs_per_s": rate, "seconds": round(feed_end - feed_start, 1),
                 "resent": stats.resent, "failures": stats.failures},
        "faults": {**evidence, "last_kill_after_s": round(last_kill - first_fault, 1),
                   "all_restored_after_s": round(restored - first_fault, 1),
                   "chat_calls_open_at_analyzer_kill": len(killed_calls),
                   "chat_calls_open_at_chat_kill": len(cut_calls)},
        "throughput": flow.as_dict(),
        "chat_calls_at_gateway": sum(by_id.values()),
        "chat_calls_at_fakes": sum(at_fakes.values()),
        "documents_answered_twice_at_gateway": sum(n > 1 for n in by_id.values()),
        "quorum_queues": len(ours),
        "dead_lettered": [letter.as_dict() for letter in dead],
        "left_in_queues": left,
    }  # fmt: skip
    problems = _problems(result, verdict.problems(), gateway_over, fakes_over, names, ours)
    problems += [f"{n} died (exit {c})" for n, c in (await rig.revive()).items()]
    result.update(problems=problems, passed=not problems)
    return result, problems


def _prompts(bed: ClusterBed) -> list[str]:
    return [json.dumps(r["body"].get("messages", [])) for r in bed.chat_requests()]


def _problems(
    result: dict[str, Any],
    store: list[str],
    gateway_over: dict[str, int],
    fakes_over: dict[str, int],
    names: dict[str, str],
    queues: dict[str, QueueMembers],
) -> list[str]:
    problems = list(store)
    if result["dead_lettered"]:
        problems.append(f"dead-lettered on transient faults: {result['dead_lettered'][:3]}")
    if gateway_over:
        twice = [f"{names.get(k, k)}×{n}" for k, n in sorted(gateway_over.items())]
        problems.append(f"answered more often than allowed at the gateway: {twice[:5]}")
    if fakes_over:
        problems.append(f"called more often than allowed at the FAKE replicas: {fakes_over}")
    back = result["throughput"]["back_to_80_percent_after_s"]
    if back is None or back > measures.BACK_WITHIN_S:
        problems.append(f"throughput not back within 30 s: {result['throughput']}")
    faults = result["faults"]
    if faults.get("node_exit_code") != -9 or faults.get("analyzer_exit_code") != -9:
        problems.append(f"a kill did not end its process with SIGKILL: {faults}")
    if not faults.get("chat_connections_cut"):
        problems.append("the chat replica had no connection open when it was killed")
    short = {n: (len(q.members), len(q.online)) for n, q in queues.items()
             if len(q.members) != 3 or len(q.online) != 3}  # fmt: skip
    if not queues or short:
        problems.append(f"quorum queues not on 3 members, all online: {short or 'none found'}")
    if result["left_in_queues"]:
        problems.append(f"messages still queued after settling: {result['left_in_queues']}")
    return problems
