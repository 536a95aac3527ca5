"""`sift dlq`'s pure core: reading a dead letter's headers, selecting, replay headers."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sift_common.messaging.dlq import (
    BROKER_KIND,
    KINDS,
    REPLAYED_HEADER,
    DeadLetter,
    Selection,
    describe,
    format_age,
    parse_duration,
    plain,
    render_body,
    replay_headers,
    select_queues,
    top_reasons,
)
from sift_common.messaging.failures import DeadLetterKind
from sift_common.messaging.topology import (
    ANALYZER_DOCUMENTS,
    DEAD_LETTER_KIND_HEADER,
    DEAD_LETTER_REASON_HEADER,
    LAST_ERROR_HEADER,
    ORIGINAL_QUEUE_HEADER,
    RETRY_COUNT_HEADER,
    Topology,
)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
DLQ = "ns.analyzer.documents.dlq"
SIFT_HEADERS: dict[str, Any] = {
    "x-sift-schema-version": 1,
    RETRY_COUNT_HEADER: 5,
    LAST_ERROR_HEADER: "TransientError: gateway down",
    DEAD_LETTER_REASON_HEADER: "retries exhausted after 5 retries; last error: gateway down",
    DEAD_LETTER_KIND_HEADER: "retries_exhausted",
    ORIGINAL_QUEUE_HEADER: "ns.analyzer.documents",
    "x-sift-dead-lettered-at": (NOW - timedelta(hours=2)).isoformat(),
    "x-delivery-count": 3,
}
BROKER_HEADERS: dict[str, Any] = {
    "x-death": [
        {
            "count": 1,
            "reason": "delivery_limit",
            "queue": "ns.analyzer.documents",
            "time": NOW - timedelta(minutes=5),
            "exchange": "",
            "routing-keys": ["ns.analyzer.documents"],
        }
    ],
    "x-first-death-exchange": "",
    "x-first-death-queue": "ns.analyzer.documents",
    "x-first-death-reason": "delivery_limit",
    "x-delivery-count": 0,
}


def letter(headers: dict[str, Any], dlq: str = DLQ) -> DeadLetter:
    return describe(dlq, headers, message_id="m1", correlation_id="doc1", body_size=42)


def test_a_consumer_dead_letter_reads_its_sift_headers() -> None:
    read = letter(SIFT_HEADERS)
    assert read.kind == "retries_exhausted"
    assert read.reason.startswith("retries exhausted")
    assert read.original_queue == "ns.analyzer.documents"
    assert read.age(NOW) == timedelta(hours=2)
    assert (read.retry_count, read.replayed, read.body_size) == (5, 0, 42)
    assert read.as_json(NOW)["age_s"] == 7200.0


def test_a_broker_dead_letter_reads_x_death() -> None:
    read = letter(BROKER_HEADERS)
    assert read.kind == BROKER_KIND
    assert read.reason == "broker: delivery_limit"
    assert read.original_queue == "ns.analyzer.documents"
    assert read.age(NOW) == timedelta(minutes=5)
    assert read.retry_count == 0


def test_a_bare_message_falls_back_to_the_dlq_name() -> None:
    read = letter({}, dlq="ns.archiver.digests.dlq")
    assert (read.kind, read.reason) == ("unknown", "(no reason header)")
    assert read.original_queue == "ns.archiver.digests"
    assert read.dead_lettered_at is None
    assert read.age(NOW) is None


def test_unreadable_headers_do_not_break_reading() -> None:
    read = letter({"x-death": ["?"], RETRY_COUNT_HEADER: "x", "x-sift-dead-lettered-at": "soon"})
    assert (read.retry_count, read.dead_lettered_at, read.kind) == (0, None, "unknown")


def test_selection_by_reason_kind_id_and_age() -> None:
    sift, broker = letter(SIFT_HEADERS), letter(BROKER_HEADERS)
    assert Selection().matches(sift, NOW)
    assert Selection(reason="GATEWAY").matches(sift, NOW)
    assert not Selection(reason="gateway").matches(broker, NOW)
    assert Selection(kind=BROKER_KIND).matches(broker, NOW)
    assert not Selection(kind="invalid").matches(sift, NOW)
    assert Selection(ids=frozenset({"doc1"})).matches(sift, NOW)
    assert Selection(ids=frozenset({"m1"})).matches(sift, NOW)
    assert not Selection(ids=frozenset({"other"})).matches(sift, NOW)
    hour = Selection(older_than=timedelta(hours=1))
    assert hour.matches(sift, NOW)
    assert not hour.matches(broker, NOW)
    assert not hour.matches(letter({}), NOW)  # an undated letter is never "old enough"


def test_kinds_cover_the_failure_policy() -> None:
    assert set(KINDS) == {kind.value for kind in DeadLetterKind} | {BROKER_KIND}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", timedelta(seconds=90)), ("15m", timedelta(minutes=15)), ("1h", timedelta(hours=1)),
     ("1h30m", timedelta(minutes=90)), ("2d", timedelta(days=2)), ("1w", timedelta(weeks=1)),
     (" 1H ", timedelta(hours=1))],
)  # fmt: skip
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1", "h", "1y", "-1h", "1h x", "1.5h"])
def test_parse_duration_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_format_age() -> None:
    assert format_age(None) == "-"
    assert format_age(timedelta(seconds=45)) == "45s"
    assert format_age(timedelta(minutes=12, seconds=3)) == "12m"
    assert format_age(timedelta(hours=3, minutes=5)) == "3h05m"
    assert format_age(timedelta(days=2, hours=4)) == "2d04h"


def test_replay_headers_keep_the_originals_and_drop_the_dead_letter_record() -> None:
    assert replay_headers(SIFT_HEADERS) == {"x-sift-schema-version": 1, REPLAYED_HEADER: 1}
    assert replay_headers(BROKER_HEADERS) == {REPLAYED_HEADER: 1}
    again = replay_headers({**SIFT_HEADERS, REPLAYED_HEADER: 1})
    assert again[REPLAYED_HEADER] == 2


def test_top_reasons_counts_and_orders() -> None:
    letters = [letter(SIFT_HEADERS), letter(BROKER_HEADERS), letter(BROKER_HEADERS)]
    assert top_reasons(letters, 1) == [("broker: delivery_limit", 2)]


def test_select_queues_by_any_name() -> None:
    topology = Topology("ns.")
    assert select_queues(topology, []) == list(topology.consumer_queues)
    for name in ("analyzer.documents", "ns.analyzer.documents", "ns.analyzer.documents.dlq"):
        assert select_queues(topology, [name]) == [ANALYZER_DOCUMENTS]
    assert select_queues(topology, ["analyzer.documents"] * 2) == [ANALYZER_DOCUMENTS]
    with pytest.raises(ValueError, match=r"unknown queue 'nope'.*archiver\.digests"):
        select_queues(topology, ["nope"])


def test_plain_and_render_body() -> None:
    assert plain(BROKER_HEADERS)["x-death"][0]["time"] == (NOW - timedelta(minutes=5)).isoformat()
    assert plain({"b": b"\xffx", "t": (1, None)}) == {"b": "\ufffdx", "t": [1, None]}
    assert render_body(b'{"a": [1]}') == '{\n  "a": [\n    1\n  ]\n}'
    assert render_body(b"not json \xff") == "not json \ufffd"
