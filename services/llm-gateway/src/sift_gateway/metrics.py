"""Prometheus metrics of the gateway, in their own registry (no process-global state)."""

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.1)


def _registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)


@dataclass
class GatewayMetrics:
    registry: CollectorRegistry = field(default_factory=_registry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "sift_gateway_requests",
            "Requests answered",
            ["profile", "endpoint", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "sift_gateway_request_seconds",
            "Whole request latency",
            ["profile", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "sift_gateway_ttft_seconds",
            "Time to first token (streams, and non-streamed chat timed through a stream)",
            ["profile"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tpot = Histogram(
            "sift_gateway_time_per_output_token_seconds",
            "Time per output token after the first",
            ["profile"],
            buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1),
            registry=r,
        )
        self.queue_wait = Histogram(
            "sift_gateway_queue_wait_seconds",
            "Wait of the requests that had to queue",
            ["profile"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "sift_gateway_overhead_seconds",
            "Gateway time: total minus upstream and queue wait",
            ["endpoint"],
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "sift_gateway_in_flight", "Requests being served upstream", ["profile"], registry=r
        )
        self.queued = Gauge(
            "sift_gateway_queued", "Requests waiting for a slot", ["profile"], registry=r
        )
        self.goodput = Counter(
            "sift_gateway_goodput",
            "Requests that met the profile's TTFT target",
            ["profile"],
            registry=r,
        )
        self.retries = Counter(
            "sift_gateway_upstream_retries",
            "Upstream attempts retried",
            ["profile", "reason"],
            registry=r,
        )
        self.fallbacks = Counter(
            "sift_gateway_fallbacks", "Requests sent to a fallback profile", ["profile"], registry=r
        )
        self.clamped = Counter(
            "sift_gateway_max_tokens_clamped",
            "Requests whose max_tokens was reduced",
            ["profile"],
            registry=r,
        )
        self.breaker_state = Gauge(
            "sift_gateway_breaker_open",
            "1 when a replica's breaker is not closed",
            ["upstream"],
            registry=r,
        )
        self.tokens = Counter(
            "sift_gateway_tokens", "Tokens by direction", ["profile", "direction"], registry=r
        )
        self.request_logs_dropped = Counter(
            "sift_gateway_request_logs_dropped",
            "Request log rows dropped (buffer full)",
            registry=r,
        )
        self.request_logs_written = Counter(
            "sift_gateway_request_logs_written", "Request log rows written", registry=r
        )
