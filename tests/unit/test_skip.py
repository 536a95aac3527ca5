"""The skip-interval decision at and around its boundaries."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from sift_common.skip import WorkState, should_skip

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _state(last_success_at: datetime | None) -> WorkState:
    return WorkState(
        work_key="digest:company:acme",
        last_attempt_at=T0,
        last_success_at=last_success_at,
        fencing_token=1,
        result_ref="42" if last_success_at else None,
    )


def test_never_seen_work_is_done() -> None:
    assert should_skip(None, HOUR, T0) is False


def test_attempted_but_never_succeeded_is_done() -> None:
    assert should_skip(_state(None), HOUR, T0 + timedelta(seconds=1)) is False


@pytest.mark.parametrize(
    ("age", "skipped"),
    [
        (timedelta(0), True),
        (timedelta(minutes=59, seconds=59, microseconds=999_999), True),
        (HOUR, False),  # exactly the interval old: no longer "younger than" it
        (HOUR + timedelta(microseconds=1), False),
        (timedelta(days=30), False),
    ],
)
def test_boundary_is_exclusive(age: timedelta, skipped: bool) -> None:
    assert should_skip(_state(T0), HOUR, T0 + age) is skipped


def test_success_stamped_slightly_in_the_future_counts_as_fresh() -> None:
    # Another host's clock may run ahead by a little; its result is still fresh.
    assert should_skip(_state(T0 + timedelta(seconds=2)), HOUR, T0) is True


@pytest.mark.parametrize("interval", [timedelta(0), -HOUR])
def test_non_positive_interval_never_skips(interval: timedelta) -> None:
    assert should_skip(_state(T0), interval, T0) is False


def test_other_time_zones_compare_by_instant() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert should_skip(_state(T0), HOUR, datetime(2025, 1, 1, 14, 30, tzinfo=plus_two)) is True
    assert should_skip(_state(T0), HOUR, datetime(2025, 1, 1, 15, 0, tzinfo=plus_two)) is False


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        should_skip(_state(T0), HOUR, datetime(2025, 1, 1, 12, 30))
