"""The analyzer's Prometheus metrics, in their own registry (served at /metrics)."""

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram

LLM_BUCKETS = (0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)


@dataclass
class AnalyzerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.analyses = Counter(
            "sift_analyzer_analyses",
            "Analyses and digests finished, by profile and outcome",
            ["profile", "outcome"],
            registry=r,
        )
        self.llm_latency = Histogram(
            "sift_analyzer_llm_seconds",
            "LLM call latency through the gateway",
            ["profile"],
            buckets=LLM_BUCKETS,
            registry=r,
        )
        self.llm_calls = Counter(
            "sift_analyzer_llm_calls",
            "LLM calls, by profile and attempt",
            ["profile", "attempt"],
            registry=r,
        )
        self.mentions_refused = Counter(
            "sift_analyzer_entity_mentions_refused",
            "Entity mentions from a model that the checks refused (never stored), by reason",
            ["profile", "reason"],
            registry=r,
        )
        self.skips = Counter(
            "sift_analyzer_skips",
            "Work skipped without an LLM call",
            ["work", "reason"],
            registry=r,
        )
        self.digest_refreshes = Counter(
            "sift_analyzer_digest_refreshes",
            "Digests the refresh policy asked for, by reason (first, novelty, sla)",
            ["reason"],
            registry=r,
        )
        self.digest_score_clamps = Counter(
            "sift_analyzer_digest_score_clamps",
            "Digest scores moved back within the set distance of their documents' mean",
            registry=r,
        )
        self.lock_contention = Counter(
            "sift_analyzer_lock_contention",
            "Locks found held by another worker",
            ["work"],
            registry=r,
        )
        self.retries = Counter(
            "sift_analyzer_retries", "Messages sent to the retry ladder", ["queue"], registry=r
        )
        self.dead_letters = Counter(
            "sift_analyzer_dead_letters", "Messages dead-lettered", ["queue", "kind"], registry=r
        )
