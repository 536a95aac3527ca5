"""Prometheus metrics of the gateway, in their own registry (no process-global state)."""

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
WAKE_BUCKETS = (1, 5, 10, 20, 30, 60, 120, 180, 300, 600, 900)
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
        # Scale to zero (sift_gateway.demand, sift_gateway.wake): what an autoscaler reads.
        self.idle = Gauge(
            "sift_gateway_idle_seconds",
            "Seconds since the profile's last request finished; 0 while it has demand",
            ["profile"],
            registry=r,
        )
        self.demand = Gauge(
            "sift_gateway_demand",
            "Requests queued, in flight or waiting for the engine to wake",
            ["profile"],
            registry=r,
        )
        self.wakes = Counter(
            "sift_gateway_wakes",
            "Wakes of a stopped engine, by outcome (woken, timed_out, hook_failed)",
            ["profile", "outcome"],
            registry=r,
        )
        self.wake_seconds = Histogram(
            "sift_gateway_wake_seconds",
            "From the wake's start to the first replica passing a probe",
            ["profile"],
            buckets=WAKE_BUCKETS,
            registry=r,
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
        self.replays = Counter(
            "sift_gateway_replays",
            "Retries answered from an earlier call's kept answer (kept), or after waiting for "
            "that call (joined): no upstream call",
            ["profile", "how"],
            registry=r,
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
        # A/B splits (`split.py`): only requests to a split alias, so few series.
        self.arm_requests = Counter(
            "sift_gateway_arm_requests",
            "Requests to an alias under an A/B split, by the arm (profile) that served them",
            ["alias", "arm", "result"],
            registry=r,
        )
        self.arm_latency = Histogram(
            "sift_gateway_arm_request_seconds",
            "Whole request latency of an alias under an A/B split, by arm",
            ["alias", "arm"],
            buckets=LATENCY_BUCKETS,
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
