import pytest

from sift_common.contracts import DocumentCollected
from sift_common.errors import InvalidMessageError, LeaseLostError, TransientError
from sift_common.messaging.failures import (
    Action,
    DeadLetterKind,
    decide,
    decode_event,
    retries_so_far,
)
from sift_common.messaging.topology import RETRY_COUNT_HEADER, ConsumerQueue, Topology

SPEC = ConsumerQueue("q", DocumentCollected, retry_delays_ms=(5_000, 30_000), max_retries=3)


def test_success_is_acked() -> None:
    assert decide(None, 0, SPEC).action is Action.ACK


def test_transient_errors_climb_the_ladder_then_dead_letter() -> None:
    dispositions = [decide(TransientError("down"), n, SPEC) for n in range(4)]
    assert [d.action for d in dispositions] == [Action.RETRY] * 3 + [Action.DEAD_LETTER]
    assert [d.retry_number for d in dispositions[:3]] == [1, 2, 3]
    assert dispositions[3].kind is DeadLetterKind.RETRIES_EXHAUSTED
    assert "down" in (dispositions[3].reason or "")


def test_lost_lease_counts_as_transient() -> None:
    assert decide(LeaseLostError("lease expired"), 0, SPEC).action is Action.RETRY


def test_invalid_and_unknown_errors_dead_letter_at_once() -> None:
    invalid = decide(InvalidMessageError("bad field"), 0, SPEC)
    assert (invalid.action, invalid.kind) == (Action.DEAD_LETTER, DeadLetterKind.INVALID)
    bug = decide(ZeroDivisionError("division by zero"), 0, SPEC)
    assert (bug.action, bug.kind) == (Action.DEAD_LETTER, DeadLetterKind.BUG)
    assert "ZeroDivisionError" in (bug.reason or "")


def test_retry_delays_grow_and_the_last_rung_repeats() -> None:
    assert [SPEC.retry_delay_ms(n) for n in (1, 2, 3)] == [5_000, 30_000, 30_000]
    assert [SPEC.retry_rung(n) for n in (1, 2, 3)] == [0, 1, 1]


@pytest.mark.parametrize(
    ("headers", "expected"), [({}, 0), ({RETRY_COUNT_HEADER: 2}, 2), ({RETRY_COUNT_HEADER: "x"}, 0)]
)
def test_retry_count_header(headers: dict[str, object], expected: int) -> None:
    assert retries_so_far(headers) == expected


def test_decode_event_reasons_name_the_problem() -> None:
    with pytest.raises(InvalidMessageError, match="not valid JSON"):
        decode_event(DocumentCollected, b"{oops")
    with pytest.raises(InvalidMessageError, match=r"document: Field required"):
        decode_event(DocumentCollected, b'{"correlation_id": "c"}')


def test_topology_names_are_namespaced_and_retry_queues_return_to_the_work_queue() -> None:
    topology = Topology("t1.", (SPEC,))
    names = [declaration.name for declaration in topology.declarations(SPEC)]
    assert names == ["t1.q.dlq", "t1.q.retry.5000ms", "t1.q.retry.30000ms", "t1.q"]
    retry = topology.declarations(SPEC)[1]
    assert retry.arguments["x-message-ttl"] == 5_000
    assert retry.arguments["x-dead-letter-routing-key"] == "t1.q"
    work = topology.work_queue_arguments(SPEC)
    assert work["x-dead-letter-exchange"] == "t1.sift.dlx"
    assert work["x-queue-type"] == "quorum"


def test_consumer_queue_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="retry delays"):
        ConsumerQueue("q", DocumentCollected, retry_delays_ms=())
