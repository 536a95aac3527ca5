"""The circuit breaker as a state machine, driven by an explicit clock."""

from sift_gateway.breaker import BreakerState, CircuitBreaker


def opened_breaker(now: float = 100.0) -> CircuitBreaker:
    breaker = CircuitBreaker(failure_threshold=3, success_threshold=2, open_for_s=10.0)
    for _ in range(3):
        breaker.record_failure(now)
    return breaker


def test_opens_after_threshold_consecutive_failures() -> None:
    breaker = CircuitBreaker(failure_threshold=3, success_threshold=2, open_for_s=10.0)
    breaker.record_failure(1.0)
    breaker.record_failure(1.0)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allows(1.0)
    breaker.record_failure(1.0)
    assert breaker.state is BreakerState.OPEN


def test_a_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(failure_threshold=3)
    breaker.record_failure(1.0)
    breaker.record_failure(1.0)
    breaker.record_success()
    breaker.record_failure(1.0)
    breaker.record_failure(1.0)
    assert breaker.state is BreakerState.CLOSED


def test_refuses_while_open() -> None:
    breaker = opened_breaker(now=100.0)
    assert not breaker.available(100.0)
    assert not breaker.allows(100.0)
    assert not breaker.allows(109.9)
    assert breaker.state is BreakerState.OPEN


def test_half_open_after_the_window_allows_exactly_one_probe() -> None:
    breaker = opened_breaker(now=100.0)
    assert breaker.available(110.0)  # choosing a replica does not take the probe
    assert breaker.available(110.0)
    assert breaker.allows(110.0)
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.available(110.0)
    assert not breaker.allows(110.0)
    assert not breaker.allows(111.0)


def test_half_open_closes_after_enough_successes() -> None:
    breaker = opened_breaker(now=100.0)
    assert breaker.allows(110.0)
    breaker.record_success()
    assert breaker.state is BreakerState.HALF_OPEN  # success_threshold is 2
    assert breaker.allows(110.5)  # the next probe may go once the first came back
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allows(110.5)
    assert breaker.allows(110.5)  # closed: no probe limit


def test_half_open_failure_reopens_for_a_full_window() -> None:
    breaker = opened_breaker(now=100.0)
    assert breaker.allows(110.0)
    breaker.record_failure(110.0)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allows(119.0)
    assert breaker.allows(120.0)
    assert breaker.state is BreakerState.HALF_OPEN


def test_a_success_in_half_open_then_a_failure_reopens() -> None:
    breaker = opened_breaker(now=100.0)
    assert breaker.allows(110.0)
    breaker.record_success()
    assert breaker.allows(110.1)
    breaker.record_failure(110.2)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.available(110.3)


def test_an_inconclusive_probe_frees_the_half_open_slot_without_closing() -> None:
    breaker = CircuitBreaker(failure_threshold=1, success_threshold=1, open_for_s=1.0)
    breaker.record_failure(now=0.0)
    assert breaker.allows(now=2.0)  # half-open: this request is the probe
    assert not breaker.allows(now=2.0)
    breaker.record_inconclusive()
    assert breaker.state == "half_open"
    assert breaker.allows(now=2.1)
