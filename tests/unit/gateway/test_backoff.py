"""Retry delays: exponential with full jitter, bounded, Retry-After honoured, deadline kept."""

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from sift_gateway.backoff import RetryPolicy, parse_retry_after


class TopOfRange(random.Random):
    """A random source that always draws the upper bound, to expose the jitter ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_ceiling_grows_exponentially_and_is_bounded() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay_s=0.1, max_delay_s=1.0)
    ceilings = [policy.delay_s(attempt, None, TopOfRange()) for attempt in range(1, 8)]
    assert ceilings == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])


def test_jitter_stays_within_zero_and_the_ceiling() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay_s=0.1, max_delay_s=1.0)
    rng = random.Random(1234)
    for attempt, ceiling in [(1, 0.1), (3, 0.4), (8, 1.0)]:
        delays = [policy.delay_s(attempt, None, rng) for _ in range(200)]
        assert all(0.0 <= delay <= ceiling for delay in delays)
        assert len(set(delays)) > 100  # really jittered, not a constant
        assert max(delays) > ceiling * 0.8
        assert min(delays) < ceiling * 0.2


def test_seeded_random_gives_reproducible_delays() -> None:
    policy = RetryPolicy()
    first = [policy.delay_s(a, None, random.Random(7)) for a in range(1, 5)]
    again = [policy.delay_s(a, None, random.Random(7)) for a in range(1, 5)]
    assert first == again


def test_retry_after_replaces_the_backoff_but_is_capped() -> None:
    policy = RetryPolicy(base_delay_s=0.1, max_delay_s=2.0)
    rng = random.Random(0)
    assert policy.delay_s(1, 3.0, rng) == 3.0
    assert policy.delay_s(1, 0.0, rng) == 0.0
    assert policy.delay_s(1, 3600.0, rng) == 8.0  # 4 × max_delay_s at most


def test_parse_retry_after_seconds() -> None:
    assert parse_retry_after("7", 0.0) == 7.0
    assert parse_retry_after(" 0 ", 0.0) == 0.0


def test_parse_retry_after_http_date() -> None:
    now = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert later.endswith("GMT")
    assert parse_retry_after(later, now.timestamp()) == pytest.approx(30.0)
    earlier = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(earlier, now.timestamp()) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5"])
def test_parse_retry_after_absent_or_bad(value: str | None) -> None:
    assert parse_retry_after(value, 0.0) is None


def test_no_retry_after_the_last_attempt() -> None:
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.1, max_delay_s=1.0)
    rng = random.Random(0)
    assert policy.next_delay_s(1, None, 100.0, rng) is not None
    assert policy.next_delay_s(2, None, 100.0, rng) is not None
    assert policy.next_delay_s(3, None, 100.0, rng) is None


def test_the_deadline_stops_retries() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay_s=0.1, max_delay_s=1.0)
    rng = random.Random(0)
    assert policy.next_delay_s(1, 2.0, remaining_s=5.0, rng=rng) == 2.0
    assert policy.next_delay_s(1, 2.0, remaining_s=2.0, rng=rng) is None
    assert policy.next_delay_s(1, 2.0, remaining_s=1.0, rng=rng) is None
    assert policy.next_delay_s(5, None, remaining_s=0.0, rng=rng) is None
