"""One row of the fault matrix: a fresh ledger and batch of documents, fed while a fault
strikes work in flight; then the store, the DLQs and the LLM calls judged against the ledger.

A scenario's result (a dict, also written to the matrix's JSON file) says: fed, stored, lost,
doubled, LLM calls ÷ unique documents at the FAKE upstream and at the gateway, what was
dead-lettered and why, recovery seconds (fault end → last document committed), the fault
window, what was in flight when it struck, and how the services saw it. `problems` lists every
broken promise; the test asserts it is empty.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sift_common.messaging.topology import Topology
from tests.faults import observe
from tests.faults.conditions import Probe, llm_calls_in_flight
from tests.faults.feeding import (
    FeedStats,
    collected_body,
    feed_api,
    intake_body,
    publish_amqp,
)
from tests.faults.rig import NAMESPACE, Rig
from tests.support.ledger import Ledger, StoredRow, Verdict

Evidence = dict[str, Any]
RECONNECTIONS = "_count_reconnections"  # a fault's counter of reconnections, read after settling
KILLED_AT = "_killed_at"  # when a kill -9 struck (time.monotonic(), the FAKE's clock)
KILL_GRACE_S = 0.5  # a call answered this shortly before a kill may not have been published
STRIKE_WAIT_S = 60.0
SETTLE_S = 2.0  # after the last document: a late double would show in the recount
DRAIN_WAIT_S = 15.0  # then every queue must be empty (nothing stuck in a retry loop)


@dataclass
class Fault:
    name: str
    description: str
    strike: Callable[[Rig, Evidence], Awaitable[None]]  # returns when the fault is over
    window_s: float = 0.0
    when: Callable[[Probe], bool] = llm_calls_in_flight
    transient: bool = True  # nothing may be dead-lettered
    expect_seen: bool = True  # a service logs a warning about it, or reconnects after it
    check: Callable[[Evidence], list[str]] | None = None  # the fault's own promises (exit 0)


@dataclass
class Feed:
    api: int = 20
    intake: int = 20
    collected: int = 0
    copies: int = 1  # of each `collected` document (a burst)
    poison: int = 0  # `collected` documents with a NUL in the body
    spread_s: float = 0.0  # pace the feeding over this long (work keeps arriving in a window)


@dataclass
class Outcome:
    result: dict[str, Any]
    problems: list[str] = field(default_factory=list)


async def feed_all(rig: Rig, ledger: Ledger, feed: Feed, stats: FeedStats) -> None:
    api = ledger.add(feed.api, "api")
    intake = ledger.add(feed.intake, "intake")
    collected = ledger.add(feed.collected, "collected")
    collected += ledger.add(feed.poison, "collected", poison=True)
    exchange = Topology(NAMESPACE).exchange
    jobs = []
    spread = feed.spread_s
    if api:
        url = rig.pipeline.services["collector"].url
        jobs.append(feed_api(url, ledger, api, stats, spread))
    if intake:
        bodies = [intake_body(ledger, doc) for doc in intake]
        key = "intake.document"
        jobs.append(publish_amqp(rig.rabbit.url, exchange, key, bodies, stats, spread))
    if collected:
        bodies = [collected_body(ledger, doc) for doc in collected] * feed.copies
        key = "document.collected"
        jobs.append(publish_amqp(rig.rabbit.url, exchange, key, bodies, stats, spread))
    try:
        await asyncio.gather(*jobs)
    finally:
        stats.done = True


async def _strike_when(condition: Callable[[Probe], bool], probe: Probe) -> bool:
    deadline = time.monotonic() + STRIKE_WAIT_S
    while not condition(probe):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def run_scenario(
    rig: Rig,
    fault: Fault,
    feed: Feed | None = None,
    *,
    chat_delay_s: float = 0.4,
    embed_delay_s: float = 0.1,
) -> Outcome:
    feed = feed or Feed()
    problems: list[str] = [f"{name} was dead before the scenario" for name in await rig.revive()]
    rig.set_llm(chat_delay_s, embed_delay_s)
    ledger = Ledger(fault.name)
    stats = FeedStats()
    probe = Probe(rig, stats, rig.chat.answered, rig.embed.answered)
    times = {"started": _now()}
    feeding = asyncio.create_task(feed_all(rig, ledger, feed, stats))
    evidence: Evidence = {}
    struck = await _strike_when(fault.when, probe)
    in_flight: dict[str, Any] = {
        "chat_calls_open": rig.chat.open_calls,
        "embedding_calls_open": rig.embed.open_calls,
        "feed_requests_open": stats.open_requests,
    }
    marks = observe.log_offsets(rig)
    queues = asyncio.create_task(asyncio.to_thread(rig.rabbit.queue_counts))
    fault_start, times["struck"], struck_at = time.time(), _now(), time.monotonic()
    await fault.strike(rig, evidence)
    fault_end, times["fault_ended"] = time.time(), _now()
    in_flight["unacked_messages"] = unacked(await queues)
    await feeding
    verdict, rows, skip, dead = await _settle(rig, ledger, fault_end, fault.window_s)
    times["settled"] = _now()
    if (count := evidence.pop(RECONNECTIONS, None)) is not None:
        evidence["reconnections"] = await count()
    result = _result(rig, fault, ledger, verdict, dead, stats)
    result.update(
        struck_on_cue=struck, in_flight=in_flight, evidence=evidence, times=times,
        fault_seconds=round(fault_end - fault_start, 2),
        recovery_s=recovery_seconds(verdict, fault_end),
        gateway=await observe.gateway_calls(rig, rows),
    )  # fmt: skip
    seen = observe.new_log_lines(rig, marks)
    result["seen"] = observe.seen_summary(seen)
    left = await queues_drained(rig, DRAIN_WAIT_S)
    if left:
        result["left_in_queues"] = left
        result["calls_open_then"] = {"chat": rig.chat.open_calls, "embedding": rig.embed.open_calls}
        result["diagnostics"] = await observe.diagnostics(rig)
        problems.append(f"messages still queued {DRAIN_WAIT_S:.0f} s after settling: {left}")
    problems += _llm_problems(rig, ledger, result)
    if problems and (over := _called_more_than_once(rig, ledger, rows, seen, struck_at)):
        result["called_more_than_once"] = over
    problems += _problems(fault, result, verdict, struck, in_flight, skip)
    died = await rig.revive()
    problems += [f"{name} died (exit {code}) and was not restarted" for name, code in died.items()]
    result["problems"] = problems
    result["passed"] = not problems
    return Outcome(result, problems)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


async def _settle(
    rig: Rig, ledger: Ledger, fault_end: float, window_s: float
) -> tuple[Verdict, list[Any], set[str], list[observe.DeadLetter]]:
    """Wait until the store holds the ledger (or the deadline), then recount and take the DLQs.
    A poison document dead-lettered alone is expected not to be stored."""
    deadline = fault_end + 45.0 + window_s
    poison = {m for m, d in ledger.documents.items() if d.body != d.stored_body}
    while True:
        try:
            verdict, rows = await observe.verdict(rig, ledger, set())
        except (OSError, ConnectionError, TimeoutError) as exc:  # the store still down
            verdict, rows = Verdict(fed=len(ledger.documents), lost=[repr(exc)]), []
        if verdict.complete or time.time() > deadline:
            break
        rest_stored = verdict.stored_once == len(ledger.documents) - len(poison)
        if poison and rest_stored and await observe.dead_letter_depth(rig) > 0:
            break  # the rest is stored and something was dead-lettered: judged below
        await asyncio.sleep(0.5)
    await asyncio.sleep(SETTLE_S)
    dead = await observe.take_dead_letters(rig, ledger)
    dead_poison = {m for letter in dead for m in letter.markers if m in poison}
    verdict, rows = await observe.verdict(rig, ledger, dead_poison)
    return verdict, rows, dead_poison, dead


def unacked(counts: dict[str, tuple[int, int]]) -> dict[str, int]:
    return {name: count for name, (_, count) in counts.items() if count}


QQ_TICK_S = 5.0  # RabbitMQ's default quorum_tick_interval


async def queues_drained(
    rig: Rig, wait_s: float, *, dead_letters: bool = True
) -> dict[str, list[int]]:
    """Wait until no queue holds a message (work, retry, intake; the DLQs were just emptied,
    or `dead_letters=False` leaves them out); what is still there after `wait_s`, as
    [ready, unacked] per queue.

    Empty for longer than a quorum queue's tick (5 s): `list_queues` gives a quorum queue's
    counts as of its last tick, so a message published and taken since reads as none. (A
    shorter tick is no way out: RabbitMQ 3.10 crashed a queue whose first tick came before
    its declaration finished.)"""
    deadline = time.monotonic() + wait_s
    empty_since: float | None = None
    while True:
        counts = await asyncio.to_thread(rig.rabbit.queue_counts)
        left = {
            name: [ready, unacked]
            for name, (ready, unacked) in counts.items()
            if (ready or unacked) and (dead_letters or not name.endswith(".dlq"))
        }
        now = time.monotonic()
        if left:
            empty_since = None
        elif empty_since is None:
            empty_since = now
        if (empty_since is not None and now - empty_since > QQ_TICK_S) or now > deadline:
            return left
        await asyncio.sleep(1.0)


def recovery_seconds(verdict: Verdict, fault_end: float) -> float | None:
    if verdict.last_stored_at is None:
        return None
    end = datetime.fromtimestamp(fault_end, UTC)
    return round(max((verdict.last_stored_at - end).total_seconds(), 0.0), 2)


def ledger_fields(verdict: Verdict, fed: int) -> dict[str, Any]:
    """The store judged against the ledger, as every scenario's result reports it."""
    return {
        "fed": fed,
        "stored": verdict.stored_once,
        "lost": len(verdict.lost),
        "doubled": len(verdict.doubled),
        "incomplete": len(verdict.incomplete),
        "wrong_body": len(verdict.wrong_body),
        "extra": len(verdict.extra),
        "store_problems": verdict.problems(),
    }


def _result(
    rig: Rig,
    fault: Fault,
    ledger: Ledger,
    verdict: Verdict,
    dead: list[observe.DeadLetter],
    stats: FeedStats,
) -> dict[str, Any]:
    calls = observe.chat_calls(rig, ledger)
    embedded = observe.embedded_inputs(rig, ledger)
    unique = len(ledger.documents)
    result: dict[str, Any] = {
        "scenario": fault.name,
        "fault": fault.description,
        "fault_window_s": fault.window_s,
        **ledger_fields(verdict, unique),
        "llm_calls": sum(calls.values()),
        "llm_calls_per_unique": round(sum(calls.values()) / unique, 3) if unique else None,
        "documents_called_more_than_once": sum(1 for n in calls.values() if n > 1),
        "embedded_inputs_per_unique": round(sum(embedded.values()) / unique, 3),
        "dead_lettered": [letter.as_dict() for letter in dead],
        "feeding": {"resent": stats.resent, "duplicates": stats.duplicates,
                    "failures": stats.failures},
    }  # fmt: skip
    poison = [m for m, d in ledger.documents.items() if d.body != d.stored_body]
    if poison:
        result["poison_shared_embedding_request_with"] = observe.shared_embedding_requests(
            rig, ledger, poison[0]
        )
    return result


def _llm_problems(rig: Rig, ledger: Ledger, result: dict[str, Any]) -> list[str]:
    """At most one chat call per document, after a kill -9 of the analyzer too: the gateway
    answers the restarted analyzer's retry of a call left open from that very call
    (`sift_gateway.replay`). The documents whose call was open at a kill are counted."""
    calls = observe.chat_calls(rig, ledger)
    killed_at = result["evidence"].pop(KILLED_AT, None)
    if killed_at is not None:
        in_flight = observe.markers_in_flight(rig, ledger, killed_at, KILL_GRACE_S)
        result["evidence"]["documents_in_flight_at_kill"] = len(in_flight)
    over = {m: n for m, n in calls.items() if n > 1}
    if not over:
        return []
    called = ", ".join(f"{ledger.documents[m].external_id}×{n}" for m, n in sorted(over.items()))
    return [
        f"{result['llm_calls']} LLM calls for {result['fed']} documents; "
        f"{len(over)} called more often than allowed: {called[:300]}"
    ]


def _called_more_than_once(
    rig: Rig,
    ledger: Ledger,
    rows: list[StoredRow],
    seen: dict[str, list[dict[str, Any]]],
    struck_at: float,
) -> dict[str, Any]:
    """For each document called more than once: its calls' times from the strike, and what the
    analyzer warned about it (its log's correlation id is the document id)."""
    ids = {row.external_id: row.document_id for row in rows}
    found: dict[str, Any] = {}
    for marker, count in observe.chat_calls(rig, ledger).items():
        if count < 2:
            continue
        document = ledger.documents[marker]
        document_id = ids.get(document.external_id)
        warned = [
            str(entry.get("message", ""))[:200]
            for entry in seen.get("analyzer", [])
            if document_id is not None and entry.get("correlation_id") == document_id
        ]
        found[document.external_id] = {
            "calls_s": observe.calls_of(rig, ledger, marker, struck_at),
            "analyzer_warned": warned[:6],
        }
    return found


def _problems(
    fault: Fault,
    result: dict[str, Any],
    verdict: Verdict,
    struck: bool,
    in_flight: dict[str, Any],
    skip: set[str],
) -> list[str]:
    problems = list(verdict.problems())
    if not struck:
        problems.append(f"the fault never found work in flight ({fault.when.__name__})")
    if not any(in_flight[key] for key in in_flight):
        problems.append(f"nothing was in flight when the fault struck: {in_flight}")
    ours = [d for d in result["dead_lettered"] if d["documents"]]
    if fault.transient and ours:
        problems.append(f"{len(ours)} dead-lettered on a transient fault: {ours[:3]}")
    if not fault.transient:
        others = [d for d in ours if not set(d["documents"]) <= skip]
        if others or any(len(d["documents"]) != 1 for d in ours):
            problems.append(f"the poison took others with it: {ours[:3]}")
    noticed = bool(result["seen"]) or result["evidence"].get("reconnections", 0) > 0
    if fault.expect_seen and not noticed:
        problems.append("no service logged the fault or reconnected after it")
    if fault.check is not None:
        problems += fault.check(result["evidence"])
    return problems
