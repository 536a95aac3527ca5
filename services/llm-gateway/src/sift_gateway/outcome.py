"""One request's measurements, turned into metrics and a request-log row when it ends."""

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web

from sift_gateway.metrics import GatewayMetrics
from sift_gateway.request_log import LogRow, RequestLogWriter


@dataclass
class Outcome:
    """What one request cost and how it went; the request keeps it under `OUTCOME_KEY`."""

    request_id: str
    endpoint: str
    model: str
    started: float = field(default_factory=time.monotonic)
    profile: str = "-"
    upstream: str | None = None
    status: int = 0
    queue_wait_s: float = 0.0
    retrying_s: float = 0.0
    upstream_s: float = 0.0
    ttft_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    ttft_target_s: float | None = None
    caller: str | None = None  # the API key's name, as the door found it
    split_alias: str | None = None  # the alias, when it was under an A/B split (`split.py`)

    def overhead_s(self, now: float) -> float:
        """Gateway time: the whole request minus upstream time (failed attempts and backoff
        included) and deliberate queueing."""
        waited = self.upstream_s + self.queue_wait_s + self.retrying_s
        return max(now - self.started - waited, 0.0)

    def record(self, metrics: GatewayMetrics, log: RequestLogWriter | None) -> None:
        now = time.monotonic()
        total = now - self.started
        metrics.requests.labels(self.profile, self.endpoint, str(self.status)).inc()
        metrics.latency.labels(self.profile, self.endpoint).observe(total)
        metrics.overhead.labels(self.endpoint).observe(self.overhead_s(now))
        if self.split_alias is not None:  # labels bounded: split aliases × their arms
            result = "ok" if self.status < 400 and self.error is None else "error"
            metrics.arm_requests.labels(self.split_alias, self.profile, result).inc()
            metrics.arm_latency.labels(self.split_alias, self.profile).observe(total)
        self._record_tokens(metrics, total)
        if log is not None:
            log.record(self._log_row(total))

    def _record_tokens(self, metrics: GatewayMetrics, total: float) -> None:
        if self.status != 200:
            return
        # No first token timed (embeddings; chat with `stream_upstream` off): the whole answer
        # stands in for it.
        first = self.ttft_s if self.ttft_s is not None else self.upstream_s
        if self.ttft_target_s is not None and first <= self.ttft_target_s:
            metrics.goodput.labels(self.profile).inc()
        if self.ttft_s is not None:
            metrics.ttft.labels(self.profile).observe(self.ttft_s)
            if self.completion_tokens and self.completion_tokens > 1:
                per_token = (self.upstream_s - self.ttft_s) / (self.completion_tokens - 1)
                metrics.tpot.labels(self.profile).observe(max(per_token, 0.0))
        if self.prompt_tokens:
            metrics.tokens.labels(self.profile, "prompt").inc(self.prompt_tokens)
        if self.completion_tokens:
            metrics.tokens.labels(self.profile, "completion").inc(self.completion_tokens)

    def _log_row(self, total: float) -> LogRow:
        return LogRow(
            request_id=self.request_id,
            profile=self.profile,
            model=self.model,
            upstream=self.upstream,
            status_code=self.status,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            latency_ms=total * 1000,
            ttft_ms=None if self.ttft_s is None else self.ttft_s * 1000,
            error=self.error,
            created_at=datetime.now(UTC),
            caller=self.caller,
            endpoint=self.endpoint,
        )


OUTCOME_KEY = web.RequestKey("sift_gateway_outcome", Outcome)
CALLER_KEY = web.RequestKey("sift_gateway_caller", str)
"""The name of the key the door let the request in with (absent on an open gateway)."""
