"""`KeyGuard`: the one check every door runs, whatever web framework serves it.

In order: a client address with too many failed attempts is throttled (before its key is even
looked at); then the key must be presented, known, and hold the route's scope; then the key's
own request rate and token budget (if it has them) apply; a door that counts tokens charges
them afterwards (`charge`), so a key over its budget waits until the budget refills. Each
failure is counted in
`sift_auth_failures_total{reason}` and spends one of the client address's tokens
(`SIFT_AUTH_FAILURES_PER_MINUTE`, the same number as a burst).
"""

from typing import Literal

from prometheus_client import CollectorRegistry, Counter

from sift_common.security.buckets import TokenBuckets, retry_after
from sift_common.security.keys import ApiKey, KeyRing

Reason = Literal["missing", "unknown", "forbidden", "throttled", "rate_limited", "token_limited"]


class Refused(Exception):
    """A request the guard refuses: `reason` says why, `retry_after_s` when to come back."""

    def __init__(
        self,
        reason: Reason,
        message: str,
        retry_after_s: int | None = None,
        key: ApiKey | None = None,
    ) -> None:
        super().__init__(message)
        self.reason, self.message, self.retry_after_s, self.key = (
            reason,
            message,
            retry_after_s,
            key,
        )


class KeyGuard:
    def __init__(
        self, ring: KeyRing, registry: CollectorRegistry, *, failures_per_minute: int = 10
    ) -> None:
        self.ring = ring
        self.failures = TokenBuckets(failures_per_minute, failures_per_minute / 60)
        self._rates: dict[str, TokenBuckets] = {}
        self._tokens: dict[str, TokenBuckets] = {}
        self.failed = Counter(
            "sift_auth_failures",
            "Requests refused by the API-key check, by reason",
            ["reason"],
            registry=registry,
        )

    @property
    def open(self) -> bool:
        return self.ring.open

    def check(self, presented: str | None, client: str, scope: str) -> ApiKey:
        """The caller's key, or `Refused`."""
        wait = self.failures.wait_s(client)
        if wait is not None:
            self.failed.labels("throttled").inc()
            message = "too many failed attempts from this address; retry later"
            raise Refused("throttled", message, retry_after(wait))
        if not presented:
            raise self._failure("missing", client, "missing API key")
        key = self.ring.identify(presented)
        if key is None:
            raise self._failure("unknown", client, "unknown API key")
        if scope not in key.scopes:
            refused = self._failure("forbidden", client, f"the key lacks the scope {scope!r}")
            refused.key = key
            raise refused
        self._within_rate(key)
        self._within_tokens(key)
        return key

    def charge(self, key: ApiKey, tokens: int) -> None:
        """Count the tokens a request of `key` used against its budget (if it has one)."""
        budget = self._token_budget(key)
        if budget is not None and tokens > 0:
            budget.spend(key.name, tokens)

    def _failure(self, reason: Reason, client: str, message: str) -> Refused:
        self.failed.labels(reason).inc()
        self.failures.take(client)
        return Refused(reason, message)

    def _within_rate(self, key: ApiKey) -> None:
        if key.rate_per_s is None:
            return
        buckets = self._rates.get(key.name)
        if buckets is None or buckets.per_s != key.rate_per_s:  # a rotated key may change it
            buckets = TokenBuckets(max(1.0, key.rate_per_s), key.rate_per_s, max_keys=1)
            self._rates[key.name] = buckets
        wait = buckets.take(key.name)
        if wait is not None:
            self.failed.labels("rate_limited").inc()
            message = f"{key.name} is over its rate of {key.rate_per_s:g} requests per second"
            raise Refused("rate_limited", message, retry_after(wait), key)

    def _token_budget(self, key: ApiKey) -> TokenBuckets | None:
        if key.tokens_per_minute is None:
            return None
        budget = self._tokens.get(key.name)
        if budget is None or budget.capacity != key.tokens_per_minute:
            budget = TokenBuckets(key.tokens_per_minute, key.tokens_per_minute / 60, max_keys=1)
            self._tokens[key.name] = budget
        return budget

    def _within_tokens(self, key: ApiKey) -> None:
        budget = self._token_budget(key)
        wait = None if budget is None else budget.wait_s(key.name)
        if wait is not None:
            self.failed.labels("token_limited").inc()
            message = f"{key.name} used its {key.tokens_per_minute} tokens per minute"
            raise Refused("token_limited", message, retry_after(wait), key)
