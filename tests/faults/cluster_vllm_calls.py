"""LLM calls per document at the gateway, for the cluster scenario with real vLLM replicas
(tests/faults/cluster_vllm.py), as pure functions over the gateway's request log
(tests/faults/engine.py: `LoggedCall`, one row per chat request, its request id
`<document id[:16]>:<type>[:repair]`).

Two kills touch the calls. The analyzer's: its calls run on in the gateway, the message goes
back to the queue, and a replica of the analyzer calls again, so a document open then may be
answered twice. The vLLM replica's: the gateway retries a cut-off call on the survivor inside
the same request (one row, answered once), or gives up after its attempts and the analyzer's
retry sends a new request (a failed row, then an answered one): no second answer either.

The rule, per document and turn (answer, repair): answered (200) at most once, twice for a
document with a call open when the analyzer died. The total: first turns that reached an engine
(answered, or failed while open at a kill) at most one per document plus the calls open at the
two kills. Requests that failed without being open at a kill (refused while the gateway still
tried the dead replica) are counted apart.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tests.faults.engine import DOCUMENT_PREFIX, LoggedCall

KILL_GRACE_S = 0.5  # a call answered this shortly before a kill may not have been acted on


def open_at(calls: list[LoggedCall], moment: datetime) -> list[LoggedCall]:
    """The documents' calls open at `moment`, or answered within `KILL_GRACE_S` before it."""
    grace = timedelta(seconds=KILL_GRACE_S)
    return [
        call
        for call in calls
        if DOCUMENT_PREFIX.fullmatch(call.prefix) and call.started <= moment <= call.ended + grace
    ]


@dataclass(frozen=True)
class Kills:
    analyzer: datetime
    replica: datetime


def count_calls(
    calls: list[LoggedCall], kills: Kills, fed: int, names: dict[str, str]
) -> tuple[dict[str, Any], list[str]]:
    """The summary of the documents' calls, and the rule's breaches (module docstring)."""
    ours = [call for call in calls if DOCUMENT_PREFIX.fullmatch(call.prefix)]
    at_analyzer, at_replica = open_at(ours, kills.analyzer), open_at(ours, kills.replica)
    twice = {call.prefix for call in at_analyzer}
    cut = {call for call in at_replica + at_analyzer if call.status != 200}
    answered = [call for call in ours if call.status == 200]
    per_turn = Counter((call.prefix, call.repair) for call in answered)
    over = [
        f"{names.get(prefix, prefix)}{' (repair)' if repair else ''}×{count}"
        for (prefix, repair), count in sorted(per_turn.items())
        if count > 1 + (prefix in twice)
    ]
    first_turns = sum(not c.repair for c in answered) + sum(not c.repair for c in cut)
    allowed = fed + len(at_analyzer) + len(at_replica)
    if first_turns > allowed:
        over.append(f"{first_turns} first turns reached an engine, {allowed} allowed")
    summary = {
        "first_turns": first_turns,
        "first_turns_allowed": allowed,
        "answered": sum(not c.repair for c in answered),
        "repairs_answered": sum(c.repair for c in answered),
        "open_at_analyzer_kill": len(at_analyzer),
        "open_at_replica_kill": len(at_replica),
        "failed_while_open_at_a_kill": len(cut),
        "refused_requests": dict(
            Counter(str(c.status) for c in ours if c.status != 200 and c not in cut)
        ),
        "documents_answered_twice": sum(n > 1 for (_, repair), n in per_turn.items() if not repair),
        "digest_calls_answered": sum(
            c.status == 200 for c in calls if not DOCUMENT_PREFIX.fullmatch(c.prefix)
        ),
    }
    return summary, over


def failures_after(calls: list[LoggedCall], moment: datetime) -> float | None:
    """Seconds from `moment` to the end of the last document request that failed after it (how
    long the gateway's clients felt the dead replica), None when none failed."""
    ends = [c.ended for c in calls if c.status != 200 and c.ended >= moment]
    return round((max(ends) - moment).total_seconds(), 1) if ends else None
