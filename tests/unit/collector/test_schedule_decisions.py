"""Pure scheduling decisions: intervals from tiers, jitter, backoff, and what a cursor lets in."""

from datetime import UTC, datetime, timedelta

import pytest

from sift_collector.sources.base import MAX_SEEN_KEYS, Cursor, item_key, select_new
from sift_collector.sources.config import DEFAULT_TIERS, DirectorySourceConfig
from sift_collector.sources.state import (
    SourceState,
    after_failure,
    after_success,
    failure_delay,
    interval_for,
    is_due,
    jittered,
)
from sift_common.contracts import IncomingDocument

T0 = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)


def _doc(
    external_id: str | None, minutes: int | None = None, url: str | None = None
) -> IncomingDocument:
    published = None if minutes is None else T0 + timedelta(minutes=minutes)
    return IncomingDocument(
        source="s",
        body=f"body of {external_id}",
        external_id=external_id,
        url=url,
        published_at=published,
    )


def test_interval_is_explicit_or_from_the_tier() -> None:
    base = {"name": "d", "type": "directory", "path": "/x"}
    assert interval_for(DirectorySourceConfig.model_validate({**base, "tier": "hot"})) == 60.0
    assert interval_for(DirectorySourceConfig.model_validate(base)) == DEFAULT_TIERS["normal"]
    custom = DirectorySourceConfig.model_validate({**base, "tier": "cold"})
    assert interval_for(custom, {"hot": 1, "normal": 2, "cold": 3}) == 3
    explicit = DirectorySourceConfig.model_validate({**base, "tier": "cold", "interval_s": 7})
    assert interval_for(explicit) == 7


@pytest.mark.parametrize(("draw", "expected"), [(-1.0, 90.0), (0.0, 100.0), (1.0, 110.0)])
def test_jitter_stays_within_the_fraction(draw: float, expected: float) -> None:
    assert jittered(100.0, 0.1, draw) == pytest.approx(expected)


def test_failure_backoff_doubles_from_the_interval_up_to_the_cap() -> None:
    delays = [failure_delay(60.0, failures, cap_s=900.0) for failures in range(1, 8)]
    assert delays == [60.0, 120.0, 240.0, 480.0, 900.0, 900.0, 900.0]
    assert failure_delay(60.0, 10_000, cap_s=900.0) == 900.0  # no overflow
    # A cold source's interval is above the cap: failing never makes it poll more often.
    assert failure_delay(21_600.0, 3, cap_s=3600.0) == 21_600.0


def test_success_resets_failures_and_failure_counts_them() -> None:
    state = SourceState()
    assert is_due(state, 0.0)
    failed = after_failure(state, started=100.0, finished=101.0, delay_s=60.0, error="boom" * 500)
    assert (failed.consecutive_failures, failed.next_due_at) == (1, 161.0)
    assert failed.last_error is not None
    assert len(failed.last_error) == 500
    assert failed.last_success_at is None
    assert not is_due(failed, 160.9)
    assert is_due(failed, 161.0)
    again = after_failure(failed, 161.0, 162.0, 120.0, "boom")
    assert again.consecutive_failures == 2
    ok = after_success(again, started=300.0, finished=302.0, delay_s=60.0)
    assert (ok.consecutive_failures, ok.last_error, ok.next_due_at) == (0, None, 362.0)
    assert (ok.last_run_at, ok.last_success_at) == (300.0, 302.0)


def test_first_poll_takes_everything_and_remembers_it() -> None:
    documents = [_doc("a", 1), _doc("b", 2), _doc(None, url="https://x.example/c")]
    fresh, cursor = select_new(Cursor(), documents)
    assert fresh == documents
    assert cursor.seen_keys == ("id:a", "id:b", "url:https://x.example/c")
    assert cursor.latest_published_at == T0 + timedelta(minutes=2)


def test_next_poll_takes_only_unseen_items_within_the_watermark_grace() -> None:
    _, cursor = select_new(Cursor(), [_doc("a", 1), _doc("b", 5)])
    two_days_back = -2 * 24 * 60
    fresh, after = select_new(
        cursor,
        [_doc("c", 6), _doc("a", 1), _doc("late", 2), _doc("old", two_days_back), _doc("undated")],
    )
    assert [d.external_id for d in fresh] == ["c", "late", "undated"]
    assert after.seen_keys[:5] == ("id:c", "id:a", "id:late", "id:old", "id:undated")
    assert "id:b" in after.seen_keys
    assert after.latest_published_at == T0 + timedelta(minutes=6)


def test_a_date_in_the_future_does_not_move_the_watermark() -> None:
    _, cursor = select_new(Cursor(), [_doc("a", 1), _doc("future", 60)], now=T0 + timedelta(2))
    assert cursor.latest_published_at == T0 + timedelta(minutes=60)
    _, cursor = select_new(Cursor(), [_doc("a", 1), _doc("future", 60)], now=T0 + timedelta(0, 600))
    assert cursor.latest_published_at == T0 + timedelta(minutes=1)


def test_an_item_twice_in_one_response_is_taken_once() -> None:
    fresh, _ = select_new(Cursor(), [_doc("a"), _doc("a")])
    assert len(fresh) == 1


def test_seen_keys_are_bounded_forgetting_the_oldest() -> None:
    _, cursor = select_new(Cursor(), [_doc(f"old{i}") for i in range(MAX_SEEN_KEYS)])
    _, cursor = select_new(cursor, [_doc("new")])
    assert len(cursor.seen_keys) == MAX_SEEN_KEYS
    assert cursor.seen_keys[0] == "id:new"
    assert "id:old999" not in cursor.seen_keys


def test_item_key_falls_back_to_the_content() -> None:
    plain = IncomingDocument(source="s", body="just text")
    assert item_key(plain).startswith("sha:")
    assert item_key(plain) == item_key(IncomingDocument(source="other", body="just text"))


def test_cursor_round_trips_through_json() -> None:
    _, cursor = select_new(Cursor(etag='"v1"'), [_doc("a", 1)])
    assert Cursor.model_validate_json(cursor.model_dump_json()) == cursor
