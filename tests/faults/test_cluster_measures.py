"""The cluster must-show's rules, on made-up commit times (no services)."""

from collections import Counter
from typing import Any

import pytest

from tests.faults.cluster_measures import (
    bucket_rates,
    gateway_answers,
    open_at,
    over_allowed,
    throughput,
)


def steady(start: float, end: float, per_s: float) -> list[float]:
    step = 1 / per_s
    return [start + i * step for i in range(int((end - start) * per_s))]


def test_a_dip_that_recovers_in_the_third_bucket_is_back_after_15_s() -> None:
    stored = steady(0, 30, 10) + steady(30, 40, 2) + steady(40, 90, 10)
    flow = throughput(stored, feed_start=0, first_fault=30, last_fault=30, feed_end=90)
    assert flow.baseline_per_s == pytest.approx(10)
    assert flow.buckets_after[:3] == [2, 2, 10]
    assert flow.back_after_s == 15


def test_throughput_that_never_recovers_is_not_back() -> None:
    stored = steady(0, 30, 10) + steady(30, 90, 7)  # 70 % of the baseline
    flow = throughput(stored, feed_start=0, first_fault=30, last_fault=30, feed_end=90)
    assert flow.back_after_s is None


def test_buckets_after_the_feed_ends_do_not_count() -> None:
    assert bucket_rates([1, 2, 6, 12], start=0, end=10) == [0.4, 0.2]


def test_no_baseline_bucket_is_an_error() -> None:
    with pytest.raises(ValueError, match="no whole bucket"):
        throughput([1.0], feed_start=0, first_fault=8, last_fault=8, feed_end=20)


def test_gateway_answers_count_documents_not_repairs_or_digests() -> None:
    ids = ["0123456789abcdef:analysis", "0123456789abcdef:analysis:repair",
           "0123456789abcdef:analysis", "entity-acme:digest"]  # fmt: skip
    assert gateway_answers(ids) == Counter({"0123456789abcdef": 2})


def test_a_second_call_is_allowed_only_for_a_document_open_at_a_kill() -> None:
    requests: list[dict[str, Any]] = [
        {"at": 1.0, "done": 2.0, "body": {"messages": [{"content": "LGRdeadbeefx0001 a"}]}},
        {"at": 4.0, "done": None, "body": {"messages": [{"content": "LGRdeadbeefx0002 b"}]}},
    ]
    assert open_at(requests, at=5.0, grace_s=0.5) == {"LGRdeadbeefx0002"}
    calls = Counter({"LGRdeadbeefx0001": 2, "LGRdeadbeefx0002": 2})
    assert over_allowed(calls, {"LGRdeadbeefx0002"}) == {"LGRdeadbeefx0001": 2}


def test_ten_second_buckets_judge_a_one_document_per_second_flow() -> None:
    stored = steady(0, 40, 1) + steady(40, 60, 0.3) + steady(60, 90, 1.2)
    flow = throughput(stored, feed_start=0, first_fault=40, last_fault=40, feed_end=90,
                      bucket_s=10)  # fmt: skip
    assert flow.buckets_before == [1, 1, 1]
    assert flow.back_after_s == 30
    assert flow.as_dict()["bucket_s"] == 10
