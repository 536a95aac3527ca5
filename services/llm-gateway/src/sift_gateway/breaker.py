"""Per-replica circuit breaker: a pure state machine, the clock passed in.

closed     → requests flow; `failure_threshold` consecutive failures open it
open       → requests are refused until `open_for_s` has passed
half-open  → one probe request at a time; `success_threshold` successes close it,
             a failure opens it again
"""

from dataclasses import dataclass, field
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    failure_threshold: int = 5
    success_threshold: int = 2
    open_for_s: float = 10.0
    state: BreakerState = BreakerState.CLOSED
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    opened_at: float = 0.0
    probe_in_flight: bool = field(default=False)

    def allows(self, now: float) -> bool:
        """Whether a request may be sent now; in half-open, admitting one marks the probe taken."""
        if self.state is BreakerState.OPEN:
            if now - self.opened_at < self.open_for_s:
                return False
            self.state = BreakerState.HALF_OPEN
            self.consecutive_successes = 0
            self.probe_in_flight = False
        if self.state is BreakerState.HALF_OPEN:
            if self.probe_in_flight:
                return False
            self.probe_in_flight = True
        return True

    def available(self, now: float) -> bool:
        """Like `allows` but without taking the half-open probe: for choosing a replica."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            return now - self.opened_at >= self.open_for_s
        return not self.probe_in_flight

    def record_success(self) -> None:
        self.consecutive_failures = 0
        if self.state is BreakerState.HALF_OPEN:
            self.probe_in_flight = False
            self.consecutive_successes += 1
            if self.consecutive_successes >= self.success_threshold:
                self.state = BreakerState.CLOSED

    def record_inconclusive(self) -> None:
        """An outcome that says nothing of the replica's health (a request's own deadline ran
        out): no count either way, but a half-open probe slot is free again."""
        self.probe_in_flight = False

    def record_failure(self, now: float) -> None:
        self.consecutive_successes = 0
        self.consecutive_failures += 1
        if self.state is BreakerState.HALF_OPEN or (
            self.consecutive_failures >= self.failure_threshold
        ):
            self.state = BreakerState.OPEN
            self.opened_at = now
            self.probe_in_flight = False
