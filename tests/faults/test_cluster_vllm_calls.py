"""The real-replica cluster scenario's count of LLM calls at the gateway, on made-up request-log
rows (no services)."""

from datetime import UTC, datetime, timedelta

from tests.faults.cluster_vllm_calls import Kills, count_calls, failures_after, open_at
from tests.faults.engine import LoggedCall

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KILLS = Kills(analyzer=T0 + timedelta(seconds=10), replica=T0 + timedelta(seconds=20))


def call(
    prefix: str, start_s: float, end_s: float, status: int = 200, repair: bool = False
) -> LoggedCall:
    started, ended = T0 + timedelta(seconds=start_s), T0 + timedelta(seconds=end_s)
    return LoggedCall(prefix, repair, status, started, ended)


DOC = "0123456789abcdef"
OTHER = "fedcba9876543210"


def test_a_call_answered_just_before_a_kill_counts_as_open() -> None:
    calls = [call(DOC, 5, 9.8), call(OTHER, 5, 9.0), call("entity-acme", 8, 12)]
    assert open_at(calls, KILLS.analyzer) == [calls[0]]


def test_a_second_answer_is_allowed_only_for_a_document_open_at_the_analyzer_kill() -> None:
    calls = [call(DOC, 8, 12), call(DOC, 13, 15), call(OTHER, 1, 2), call(OTHER, 30, 31)]
    summary, over = count_calls(calls, KILLS, fed=2, names={OTHER: "doc-2"})
    assert over == ["doc-2×2", "4 first turns reached an engine, 3 allowed"]
    assert summary["documents_answered_twice"] == 2
    assert summary["open_at_analyzer_kill"] == 1


def test_a_call_cut_at_the_replica_kill_and_answered_again_is_within_the_rule() -> None:
    calls = [call(DOC, 18, 20.1, status=502), call(DOC, 21, 24), call(DOC, 25, 26, repair=True)]
    summary, over = count_calls(calls, KILLS, fed=1, names={})
    assert over == []
    assert summary["first_turns"] == 2
    assert summary["first_turns_allowed"] == 2
    assert summary["repairs_answered"] == 1
    assert summary["refused_requests"] == {}


def test_requests_refused_after_the_kill_are_counted_apart() -> None:
    calls = [call(DOC, 20.5, 20.6, status=502), call(DOC, 21, 24)]
    summary, over = count_calls(calls, KILLS, fed=1, names={})
    assert (summary["first_turns"], summary["refused_requests"], over) == (1, {"502": 1}, [])
    assert failures_after(calls, KILLS.replica) == 0.6
