"""The fault matrix's real-engine row: the rig's gateway sends chat to a PRIVATE vLLM-CPU server
(tests/support/private_vllm.py) whose whole process group is killed with SIGKILL while chat
calls are open, then restarted on the same port; judged by the ledger like every other row.

There is no FAKE chat upstream to count calls here, so the gateway does: its `/metrics` says
how many calls were open when the engine died (`sift_gateway_in_flight`), and its request log
(one row per chat request, the analyzer's request id `<document id[:16]>:<type>[:repair]`)
says which calls completed and which the kill cut off (started before it, failed after).
A document may have one completed call per turn (answer, repair), plus one more for each of
its calls the kill cut off; the row's LLM calls are the first turns that reached the engine
(completed or cut off), at most one per document plus the calls cut off. Repair turns are
counted apart: the 135M model often runs out of tokens and needs one, and a document whose
output is still invalid after it is dead-lettered `invalid` naming the output, by design. That
is the only dead letter allowed, and such a document is not expected in the store.

The store is awaited for longer than the analyzer's own gateway timeout (300 s): a document
held by a call that never returns then shows as stored late, and a row whose last document is
stored more than `RECOVERY_LIMIT_S` after the restart fails (the model's pace is ~30 s).
"""

import asyncio
import contextlib
import re
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from sift_common.messaging.topology import (
    ANALYZER_DOCUMENTS,
    ARCHIVER_DOCUMENTS,
    COLLECTOR_INTAKE,
)
from tests.faults import observe
from tests.faults.feeding import FeedStats
from tests.faults.rig import FAST_PROFILE, REAL_CHAT, Rig
from tests.faults.scenario import (
    DRAIN_WAIT_S,
    SETTLE_S,
    Feed,
    Outcome,
    feed_all,
    ledger_fields,
    queues_drained,
    recovery_seconds,
    unacked,
)
from tests.support.ledger import Ledger, StoredRow, Verdict
from tests.support.private_vllm import PrivateVllmChat

NAME = "kill9-vllm-engine"
DESCRIPTION = (
    "kill -9 of the real vLLM-CPU chat server (API server and engine core) with calls open, "
    "restarted on its port; LLM calls counted at the gateway, repair turns apart; only "
    "`invalid` dead letters of the 135M model's output are allowed"
)
REAL_TIMEOUTS = {"connect_s": 2, "ttft_s": 120, "stall_s": 60, "total_s": 300}
# The analyzer's ladder here: its 100 retries, 3 s apart, ride out a restart of ~5 minutes.
ENGINE_ENV = {"SIFT_ANALYZER_RETRY_DELAYS_MS": "1000,3000"}
ANSWERED_FIRST = 3  # strike once this many chat calls completed and more are open
STRIKE_WAIT_S = 120.0
# After the restart: longer than the analyzer's own gateway timeout (300 s), so a document held
# by a hung call shows as a slow recovery (a problem of its own), not as lost.
SETTLE_WAIT_S = 330.0
RECOVERY_LIMIT_S = 120.0  # the ladder's 3 s, the probes' 2 s, then the model's pace: ~30 s seen
KILL_GRACE_S = 0.5
INVALID_OUTPUT = "model output invalid"
DOCUMENT_QUEUES = (COLLECTOR_INTAKE, ANALYZER_DOCUMENTS, ARCHIVER_DOCUMENTS)
DOCUMENT_PREFIX = re.compile(r"[0-9a-f]{16}")  # a request id's first part for a document
SAMPLE = re.compile(r"^([^\s{]+)(?:\{(.*)\})?\s+(\S+)")
LABEL = re.compile(r'(\w+)="([^"]*)"')


def engine_profile(server: PrivateVllmChat) -> dict[str, Any]:
    """The gateway's chat profile for the private server, with production-like timeouts."""
    return {
        **FAST_PROFILE,
        "kind": "chat",
        "served_model": server.model,
        "replicas": [server.url],
        "priority_scheduling": True,  # the runtime starts vLLM with --scheduling-policy priority
        "timeouts": REAL_TIMEOUTS,
    }


def sample_sum(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels` (Prometheus text)."""
    total = 0.0
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match is None or match[1] != name:
            continue
        found = dict(LABEL.findall(match[2] or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            total += float(match[3])
    return total


@dataclass(frozen=True)
class CallsNow:
    gateway_open: int  # chat calls the gateway holds open at the engine
    gateway_answered: int  # chat requests the gateway answered 200
    engine_running: int
    engine_waiting: int


async def calls_now(http: httpx.AsyncClient, rig: Rig, server: PrivateVllmChat) -> CallsNow:
    gateway = (await http.get(f"{rig.pipeline.services['gateway'].url}/metrics")).text
    engine = (await http.get(f"{server.url}/metrics")).text
    answered = {"profile": REAL_CHAT, "endpoint": "chat", "status": "200"}
    return CallsNow(
        int(sample_sum(gateway, "sift_gateway_in_flight", profile=REAL_CHAT)),
        int(sample_sum(gateway, "sift_gateway_requests_total", **answered)),
        int(sample_sum(engine, "vllm:num_requests_running")),
        int(sample_sum(engine, "vllm:num_requests_waiting")),
    )


async def strike_when_calls_open(rig: Rig, server: PrivateVllmChat) -> tuple[bool, CallsNow]:
    """Wait until some calls completed and more are open at the gateway and in the engine (a
    gateway probe alone never counts: probes hold no gateway slot); the counts then."""
    deadline = time.monotonic() + STRIKE_WAIT_S
    async with httpx.AsyncClient(timeout=5) as http:
        base = (await calls_now(http, rig, server)).gateway_answered
        now = CallsNow(0, base, 0, 0)
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):  # a scrape too slow: poll again
                now = await calls_now(http, rig, server)
            answered = now.gateway_answered - base
            if answered >= ANSWERED_FIRST and now.gateway_open >= 1 and now.engine_running >= 1:
                return True, now
            await asyncio.sleep(0.05)
        return False, now


async def kill_and_restart(rig: Rig, server: PrivateVllmChat, evidence: dict[str, Any]) -> datetime:
    """SIGKILL the server's process group, start it again on its port; when it died."""
    killed_at = datetime.now(UTC)
    evidence.update(await asyncio.to_thread(server.kill9))
    evidence["kill_s"] = round((datetime.now(UTC) - killed_at).total_seconds(), 2)
    started = time.monotonic()
    await asyncio.to_thread(server.start)
    evidence["restart_s"] = round(time.monotonic() - started, 1)
    return killed_at


@dataclass(frozen=True)
class LoggedCall:
    prefix: str  # the document id's first 16 characters
    repair: bool
    status: int
    started: datetime
    ended: datetime

    def open_at(self, moment: datetime) -> bool:
        return self.status != 200 and self.started <= moment <= self.ended


LOGGED_CALLS = f"""
SELECT request_id, status_code, created_at, latency_ms FROM gateway.request_logs
WHERE profile = $1 AND created_at >= $2 AND {observe.UPSTREAM_CALL}"""


async def logged_calls(rig: Rig, since: datetime) -> list[LoggedCall]:
    conn = await rig.connect()
    try:
        records = await conn.fetch(LOGGED_CALLS, REAL_CHAT, since)
    finally:
        await conn.close()
    calls = []
    for record in records:
        request_id, ended = str(record["request_id"]), record["created_at"]
        started = ended - timedelta(milliseconds=float(record["latency_ms"]))
        calls.append(
            LoggedCall(
                request_id.split(":", 1)[0], request_id.endswith(":repair"),
                int(record["status_code"]), started, ended,
            )
        )  # fmt: skip
    return calls


def call_counts(
    calls: list[LoggedCall], killed_at: datetime, names: dict[str, str]
) -> tuple[dict[str, Any], list[str]]:
    """The documents' chat calls, and those called more often than allowed: one completed
    call per turn (answer, repair), plus one per call of the document the kill cut off.
    `calls`: first turns that reached the engine (completed or cut off); repairs apart."""
    grace = timedelta(seconds=KILL_GRACE_S)
    moments = (killed_at - grace, killed_at, killed_at + grace)
    ours = [c for c in calls if DOCUMENT_PREFIX.fullmatch(c.prefix)]  # not entity digests
    killed = [c for c in ours if any(c.open_at(moment) for moment in moments)]
    completed = [c for c in ours if c.status == 200]
    cut: Counter[str] = Counter(c.prefix for c in killed)
    per_turn: Counter[tuple[str, bool]] = Counter((c.prefix, c.repair) for c in completed)
    over = [
        f"{names.get(prefix, prefix)}{' (repair)' if repair else ''}×{count}"
        for (prefix, repair), count in sorted(per_turn.items())
        if count > 1 + cut[prefix]
    ]
    summary = {
        "calls": sum(not c.repair for c in completed + killed),
        "cut_off_by_the_kill": len(killed),
        "answers_completed": sum(not c.repair for c in completed),
        "repairs_completed": sum(c.repair for c in completed),
        "repairs_cut_off": sum(c.repair for c in killed),
        "cut_off_statuses": Counter(str(c.status) for c in killed),
        "refused_requests": Counter(
            str(c.status) for c in ours if c not in killed and c.status != 200
        ),
        "documents": len({c.prefix for c in ours}),
        "documents_called_more_than_once": sum(1 for n in per_turn.values() if n > 1),
        "other_calls_completed": sum(c.status == 200 for c in calls if c not in ours),
    }
    return summary, over


def calls_of_unstored(calls: list[LoggedCall], stored: set[str]) -> dict[str, list[str]]:
    """The gateway's record of each document that is not in the store (dead-lettered, lost or
    stuck): `<status> <start>+<seconds>[ repair]` per request."""
    found: dict[str, list[str]] = {}
    for call in sorted(calls, key=lambda c: c.started):
        if DOCUMENT_PREFIX.fullmatch(call.prefix) and call.prefix not in stored:
            seconds = (call.ended - call.started).total_seconds()
            started = call.started.isoformat(timespec="milliseconds")[11:23]  # HH:MM:SS.mmm
            line = f"{call.status} {started}+{seconds:.1f}s"
            found.setdefault(call.prefix, []).append(line + (" repair" if call.repair else ""))
    return found


async def analyzer_calls_open(rig: Rig) -> float:
    """LLM calls the analyzer started and has not seen end (its call counter minus its latency
    histogram's count): whether a document it holds waits on the gateway."""
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(f"{rig.pipeline.services['analyzer'].url}/metrics")).text
    started = sample_sum(text, "sift_analyzer_llm_calls_total")
    return started - sample_sum(text, "sift_analyzer_llm_seconds_count")


@dataclass(frozen=True)
class Settled:
    verdict: Verdict
    rows: list[StoredRow]
    dead: list[observe.DeadLetter]
    invalid_output: set[str]  # markers dead-lettered alone as the model's invalid output


async def settle(
    rig: Rig, ledger: Ledger, fault_end: float, wait_s: float = SETTLE_WAIT_S
) -> Settled:
    """Wait until every document is stored or dead-lettered (or `wait_s` past `fault_end`),
    then recount with the documents dead-lettered for the model's invalid output left out."""
    deadline = fault_end + wait_s
    while time.time() < deadline:
        verdict, _ = await observe.verdict(rig, ledger, set())
        waiting = await observe.dead_letter_depth(rig, DOCUMENT_QUEUES)  # not entity digests
        if verdict.stored_once + waiting >= verdict.fed:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(SETTLE_S)
    dead = await observe.take_dead_letters(rig, ledger)
    invalid = {letter.markers[0] for letter in dead if invalid_document(letter)}
    verdict, rows = await observe.verdict(rig, ledger, invalid)
    return Settled(verdict, rows, dead, invalid)


def allowed_letter(letter: observe.DeadLetter) -> bool:
    return letter.kind == "invalid" and INVALID_OUTPUT in letter.reason


def invalid_document(letter: observe.DeadLetter) -> bool:
    """One document dead-lettered for the model's invalid output. Only the documents queue's
    letters are documents: a digest's message names its entity, which the model may have made
    of a document's marker (that document is stored all the same)."""
    documents = letter.queue == ANALYZER_DOCUMENTS.name
    return documents and allowed_letter(letter) and len(letter.markers) == 1


async def run_engine_kill(rig: Rig, server: PrivateVllmChat, feed: Feed) -> Outcome:
    problems = [f"{name} was dead before the scenario" for name in await rig.revive()]
    rig.set_llm(0.0, 0.1)  # the embeddings stay on the FAKE upstream
    ledger, stats = Ledger(NAME), FeedStats()
    began = datetime.now(UTC)
    times = {"started": _now()}
    feeding = asyncio.create_task(feed_all(rig, ledger, feed, stats))
    struck, at_strike = await strike_when_calls_open(rig, server)
    marks = observe.log_offsets(rig)
    queues = asyncio.create_task(asyncio.to_thread(rig.rabbit.queue_counts))
    evidence: dict[str, Any] = {
        "chat_calls_open": at_strike.gateway_open,
        "engine_requests_running": at_strike.engine_running,
        "engine_requests_waiting": at_strike.engine_waiting,
        "chat_calls_answered_before": at_strike.gateway_answered,
    }
    fault_start, times["struck"] = time.time(), _now()
    killed_at = await kill_and_restart(rig, server, evidence)
    fault_end, times["fault_ended"] = time.time(), _now()
    in_flight: dict[str, Any] = {
        "chat_calls_open": at_strike.gateway_open,
        "feed_requests_open": stats.open_requests,
        "unacked_messages": unacked(await queues),
    }
    await feeding
    settled = await settle(rig, ledger, fault_end)
    times["settled"] = _now()
    names = {row.document_id[:16]: row.external_id or row.document_id for row in settled.rows}
    logged = await logged_calls(rig, began)
    calls, over = call_counts(logged, killed_at, names)
    result = _result(rig, ledger, settled, stats, calls)
    if unstored := calls_of_unstored(logged, set(names)):
        result["calls_of_unstored_documents"] = unstored
    result.update(
        struck_on_cue=struck, in_flight=in_flight, evidence=evidence, times=times,
        fault_seconds=round(fault_end - fault_start, 2),
        recovery_s=recovery_seconds(settled.verdict, fault_end),
        seen=observe.seen_summary(observe.new_log_lines(rig, marks)),
    )  # fmt: skip
    # Entity digests are outside the documents' ledger, and with the real 135M model on CPU
    # they run for minutes after the documents are stored: their queue is not waited for.
    drained = await queues_drained(rig, DRAIN_WAIT_S)
    if left := {q: n for q, n in drained.items() if ".entity-refresh" not in q}:
        result["left_in_queues"] = left
        result["diagnostics"] = await observe.diagnostics(rig)
        result["diagnostics"]["analyzer_llm_calls_open"] = await analyzer_calls_open(rig)
        problems.append(f"messages still queued {DRAIN_WAIT_S:.0f} s after settling: {left}")
    if over:
        problems.append(f"called more often than allowed: {', '.join(over)[:300]}")
    problems += _problems(result, settled, struck)
    died = await rig.revive()
    problems += [f"{name} died (exit {code}) and was not restarted" for name, code in died.items()]
    result.update(problems=problems, passed=not problems)
    return Outcome(result, problems)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _result(
    rig: Rig, ledger: Ledger, settled: Settled, stats: FeedStats, calls: dict[str, Any]
) -> dict[str, Any]:
    verdict, unique = settled.verdict, len(ledger.documents)
    embedded = sum(observe.embedded_inputs(rig, ledger).values())
    return {
        "scenario": NAME,
        "fault": DESCRIPTION,
        "fault_window_s": 0.0,
        "chat_upstream": "vLLM-CPU, a private server (scripts/local_vllm's command line)",
        **ledger_fields(verdict, unique),
        "invalid_output_dead_lettered": len(settled.invalid_output),
        "llm_calls": calls["calls"],  # first turns at the engine: completed or cut off
        "llm_calls_per_unique": round(calls["calls"] / unique, 3),
        "chat_calls": calls,
        "documents_called_more_than_once": calls["documents_called_more_than_once"],
        "dead_lettered": [letter.as_dict() for letter in settled.dead],
        "feeding": {"resent": stats.resent, "duplicates": stats.duplicates,
                    "failures": stats.failures},
        "embedded_inputs_per_unique": round(embedded / unique, 3),
    }  # fmt: skip


def _problems(result: dict[str, Any], settled: Settled, struck: bool) -> list[str]:
    problems = list(settled.verdict.problems())
    evidence = result["evidence"]
    if not struck:
        problems.append("the kill never found chat calls open at the gateway and the engine")
    if not result["in_flight"]["chat_calls_open"]:
        problems.append(f"no chat call was open when the engine was killed: {evidence}")
    ours = [d for d in settled.dead if d.markers]
    others = [d.as_dict() for d in ours if not (allowed_letter(d) and len(d.markers) == 1)]
    if others:
        problems.append(f"{len(others)} dead-lettered on a transient fault: {others[:3]}")
    if not result["seen"]:
        problems.append("no service logged the engine's death")
    if evidence.get("exit_code") != -9:
        problems.append(f"the server's exit code was {evidence.get('exit_code')}, expected -9")
    if evidence.get("processes_killed", 0) < 2:  # the API server and the engine core at least
        problems.append(f"the group killed held {evidence.get('processes_killed')} process(es)")
    calls, cut = result["chat_calls"], result["chat_calls"]["cut_off_by_the_kill"]
    if calls["calls"] > result["fed"] + max(cut, evidence["chat_calls_open"]):
        problems.append(f"{calls['calls']} LLM calls for {result['fed']} documents, {cut} cut off")
    if (result["recovery_s"] or 0) > RECOVERY_LIMIT_S:
        problems.append(f"the last document was stored {result['recovery_s']} s after the restart")
    return problems
