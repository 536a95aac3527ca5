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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sift_common.messaging.topology import ANALYZER_DOCUMENTS, Topology
from tests.faults import cluster_measures as measures
from tests.faults import observe
from tests.faults.cluster_bed import ClusterBed, collector_urls, quorum_queues, set_chat_delay
from tests.faults.feeding import FeedStats, feed_api
from tests.faults.rig import FAKE_CHAT, NAMESPACE
from tests.faults.scenario import SETTLE_S, ledger_fields, queues_drained
from tests.support.ledger import Ledger, StoredRow, Verdict, calls_per_document

NODE_DOWN_S = 5.0  # the killed node stays down this long before it is started again
CHAT_DOWN_S = 5.0
GAP_S = 1.0  # between the kills
KILL_GRACE_S = 0.5
SETTLE_WAIT_S = 90.0
ANALYZER = "analyzer-2"
LEADING = Topology(NAMESPACE).work_queue(ANALYZER_DOCUMENTS)
DESCRIPTION = (
    "3-node RabbitMQ cluster, 2 replicas of each service, documents flowing: kill -9 of the node "
    "leading analyzer.documents, of an analyzer replica, and of a FAKE chat replica (on the "
    "wire), each restarted; LLM calls counted at the gateway"
)


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


async def feed(
    bed: ClusterBed, ledger: Ledger, docs: int, spread_s: float, batch: int = 5
) -> FeedStats:
    """`docs` documents over `spread_s`, split over the collectors' ingest APIs, `batch` per
    request."""
    stats = FeedStats()
    urls = collector_urls(bed.rig)
    fed = ledger.add(docs, "api")
    parts = [fed[i :: len(urls)] for i in range(len(urls))]
    jobs = (
        feed_api(url, ledger, part, stats, spread_s, batch=batch)
        for url, part in zip(urls, parts, strict=True)
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


GATEWAY_ANSWERS = f"""
SELECT request_id FROM gateway.request_logs
WHERE profile = $1 AND status_code = 200 AND created_at >= $2 AND {observe.UPSTREAM_CALL}"""


async def gateway_answered(bed: ClusterBed, since: datetime) -> list[str]:
    conn = await bed.rig.connect()
    try:
        return [str(r["request_id"]) for r in await conn.fetch(GATEWAY_ANSWERS, FAKE_CHAT, since)]
    finally:
        await conn.close()


@dataclass(frozen=True)
class Allowed:
    analyzer: set[str]  # markers with a chat call open in the killed analyzer
    chat: set[str]  # markers with a call open at the killed chat replica


@dataclass(frozen=True)
class Calls:
    """Chat calls per document at the gateway (answered 200) and at the FAKE replicas, and the
    documents called more often than allowed at each."""

    at_gateway: dict[str, int]  # by document id prefix
    at_fakes: Counter[str]  # by ledger marker
    gateway_over: dict[str, int]
    fakes_over: dict[str, int]


async def count_calls(
    bed: ClusterBed, ledger: Ledger, rows: list[StoredRow], since: datetime, allowed: Allowed
) -> Calls:
    """A second answer at the gateway only for a document whose call was open in the killed
    analyzer; a second request at the FAKEs also for one open at the killed chat replica (the
    gateway retried it on the other)."""
    markers = {row.document_id[:16]: ledger.ours(row.body)[0] for row in rows}
    answered = measures.gateway_answers(await gateway_answered(bed, since))
    at_gateway = {key: n for key, n in answered.items() if key in markers}
    at_fakes = calls_per_document(ledger, _prompts(bed))
    twice = {key for key, marker in markers.items() if marker in allowed.analyzer}
    return Calls(
        at_gateway,
        at_fakes,
        measures.over_allowed(Counter(at_gateway), twice),
        measures.over_allowed(at_fakes, allowed.analyzer | allowed.chat),
    )


@dataclass(frozen=True)
class Moments:
    """Epoch seconds: the feed's start and end, the first and last kill, all restored."""

    feed_start: float
    first_fault: float
    last_kill: float
    restored: float
    feed_end: float


async def run_cluster_faults(
    bed: ClusterBed, rate: float, before_s: float, after_s: float
) -> tuple[dict[str, Any], list[str]]:
    """Feed `rate` documents/s; strike after `before_s`; keep feeding `after_s` past the strike's
    start. The result and its problems."""
    set_chat_delay(bed, 0.05, 0.02)
    ledger = Ledger("cluster")
    evidence: dict[str, Any] = {}
    spread = before_s + after_s
    began, feed_start = datetime.now(UTC), time.time()
    feeding = asyncio.create_task(feed(bed, ledger, round(rate * spread), spread))
    await asyncio.sleep(before_s)
    first_fault = time.time()
    last_kill = await strike(bed, evidence)
    restored = time.time()
    stats = await feeding
    at = Moments(feed_start, first_fault, last_kill, restored, time.time())
    await settle(bed, ledger, restored + SETTLE_WAIT_S)
    dead = await observe.take_dead_letters(bed.rig, ledger)
    verdict, rows = await observe.verdict(bed.rig, ledger, set())
    allowed = Allowed(evidence.pop("_analyzer_open"), evidence.pop("_chat_open"))
    calls = await count_calls(bed, ledger, rows, began, allowed)
    queue_count, short = await quorum_queues(bed.cluster)
    result = _result(ledger, verdict, rows, at, calls, allowed)
    result.update(
        times={"started": began.isoformat(timespec="milliseconds")},
        feed={"docs_per_s": rate, "seconds": round(at.feed_end - at.feed_start, 1),
              "resent": stats.resent, "failures": stats.failures},
        faults=evidence, quorum_queues=queue_count,
        dead_lettered=[letter.as_dict() for letter in dead],
        left_in_queues=await queues_drained(bed.rig, 15.0),
    )  # fmt: skip
    names = {row.document_id[:16]: row.external_id or row.document_id for row in rows}
    problems = _problems(result, verdict.problems(), calls, names, short)
    problems += [f"{n} died (exit {c})" for n, c in (await bed.rig.revive()).items()]
    result.update(problems=problems, passed=not problems)
    return result, problems


def _result(
    ledger: Ledger,
    verdict: Verdict,
    rows: list[StoredRow],
    at: Moments,
    calls: Calls,
    allowed: Allowed,
) -> dict[str, Any]:
    stored = [row.stored_at.timestamp() for row in rows]
    flow = measures.throughput(stored, at.feed_start, at.first_fault, at.last_kill, at.feed_end)
    answered = sum(calls.at_gateway.values())
    return {
        "scenario": "cluster-node-analyzer-chat-killed",
        "fault": DESCRIPTION,
        "fault_window_s": round(at.restored - at.first_fault, 1),
        **ledger_fields(verdict, len(ledger.documents)),
        "llm_calls_per_unique": round(answered / len(ledger.documents), 3),
        # The matrix's column: for documents that keep flowing, when throughput was back.
        "recovery_s": flow.back_after_s,
        "evidence": {"chat_calls_open": len(allowed.analyzer)},
        "kills_after_first_s": {"last_kill": round(at.last_kill - at.first_fault, 1),
                                "all_restored": round(at.restored - at.first_fault, 1)},
        "chat_calls_open_at_analyzer_kill": len(allowed.analyzer),
        "chat_calls_open_at_chat_kill": len(allowed.chat),
        "throughput": flow.as_dict(),
        "chat_calls_at_gateway": answered,
        "chat_calls_at_fakes": sum(calls.at_fakes.values()),
        "documents_answered_twice_at_gateway": sum(n > 1 for n in calls.at_gateway.values()),
    }  # fmt: skip


def _prompts(bed: ClusterBed) -> list[str]:
    return [json.dumps(r["body"].get("messages", [])) for r in bed.chat_requests()]


def _problems(
    result: dict[str, Any],
    store: list[str],
    calls: Calls,
    names: dict[str, str],
    short: dict[str, list[int]],
) -> list[str]:
    problems = list(store)
    if result["dead_lettered"]:
        problems.append(f"dead-lettered on transient faults: {result['dead_lettered'][:3]}")
    if calls.gateway_over:
        twice = [f"{names.get(k, k)}×{n}" for k, n in sorted(calls.gateway_over.items())]
        problems.append(f"answered more often than allowed at the gateway: {twice[:5]}")
    if calls.fakes_over:
        over = dict(list(calls.fakes_over.items())[:5])
        problems.append(f"called more often than allowed at the FAKE replicas: {over}")
    back = result["throughput"]["back_to_80_percent_after_s"]
    if back is None or back > measures.BACK_WITHIN_S:
        problems.append(f"throughput not back within 30 s: {result['throughput']}")
    faults = result["faults"]
    if faults.get("node_exit_code") != -9 or faults.get("analyzer_exit_code") != -9:
        problems.append(f"a kill did not end its process with SIGKILL: {faults}")
    if not faults.get("chat_connections_cut"):
        problems.append("the chat replica had no connection open when it was killed")
    if not result["quorum_queues"] or short:
        problems.append(f"quorum queues not on 3 members, all online: {short or 'none found'}")
    if result["left_in_queues"]:
        problems.append(f"messages still queued after settling: {result['left_in_queues']}")
    return problems
