"""When to retry an upstream call: exponential backoff with full jitter, `Retry-After` honoured,
everything inside one total deadline. Pure: the random source and the clock are passed in."""

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    base_delay_s: float = 0.1
    max_delay_s: float = 5.0

    def delay_s(self, attempt: int, retry_after_s: float | None, rng: random.Random) -> float:
        """Delay before attempt number `attempt + 1` (attempt counts from 1)."""
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.max_delay_s * 4)
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return rng.uniform(0, ceiling)

    def next_delay_s(
        self,
        attempt: int,
        retry_after_s: float | None,
        remaining_s: float,
        rng: random.Random,
    ) -> float | None:
        """The delay before the next attempt, or None when no attempt may follow (attempts spent
        or the deadline would pass before the upstream could even answer)."""
        if attempt >= self.max_attempts:
            return None
        delay = self.delay_s(attempt, retry_after_s, rng)
        return delay if delay < remaining_s else None


def parse_retry_after(value: str | None, now_epoch_s: float) -> float | None:
    """Seconds from a `Retry-After` header: delta-seconds or an HTTP date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(parsedate_to_datetime(value).timestamp() - now_epoch_s, 0.0)
    except (TypeError, ValueError):
        return None
