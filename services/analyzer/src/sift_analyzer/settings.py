"""The analyzer's settings: shared fragments plus its own `SIFT_ANALYZER_*` variables."""

from datetime import timedelta
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from sift_analyzer.entities import BUNDLED_KNOWN_ENTITIES
from sift_analyzer.refresh_policy import RefreshPolicy
from sift_common.messaging.topology import DEFAULT_RETRY_DELAYS_MS
from sift_common.settings import (
    DatabaseSettings,
    GatewaySettings,
    RabbitSettings,
    RedisSettings,
    ServiceSettings,
    parse_retry_delays,
)

BUNDLED_PROFILES = Path(__file__).resolve().parent / "profiles.yaml"


class AnalyzerSettings(
    ServiceSettings, RabbitSettings, RedisSettings, DatabaseSettings, GatewaySettings
):
    analyzer_host: str = Field(
        default="127.0.0.1", description="Address the health and metrics listener binds."
    )
    analyzer_port: int = Field(
        default=8120, ge=1, le=65535, description="Port of the health and metrics listener."
    )
    analyzer_profiles: Path = Field(
        default=BUNDLED_PROFILES, description="SIFT_ANALYZER_PROFILES: analysis profiles YAML"
    )
    analyzer_known_entities: Path = Field(
        default=BUNDLED_KNOWN_ENTITIES,
        description="SIFT_ANALYZER_KNOWN_ENTITIES: canonical names, tickers and aliases YAML",
    )
    # vLLM's batch is 32 sequences on the local CPU profile: one delivery in flight per slot.
    analyzer_prefetch: int = Field(
        default=24, ge=1, le=1000, description="Documents in flight per process."
    )
    analyzer_digest_prefetch: int = Field(
        default=4, ge=1, le=1000, description="Entity refreshes in flight per process."
    )
    analyzer_lock_lease_ms: int = Field(
        default=30_000,
        ge=100,
        description="Lease of the per-work-key lock; a watchdog renews it during LLM calls.",
    )
    analyzer_lock_wait_s: float = Field(
        default=2.0, ge=0, description="Wait for a busy lock before going to the retry ladder."
    )
    analyzer_result_ttl_s: int = Field(
        default=7 * 24 * 3600, gt=0, description="Lifetime of cached results in Redis."
    )
    # Digest refresh policy (refresh_policy.py; docs/analyzer.md has the bench behind them).
    analyzer_digest_novelty_threshold: float = Field(
        default=3.0, gt=0, description="accumulated novelty of new documents that earns a digest"
    )
    analyzer_digest_sla_s: float = Field(
        default=6 * 3600.0, gt=0, description="longest a new document waits for a digest"
    )
    analyzer_digest_min_interval_s: float = Field(
        default=900.0, ge=0, description="digests of one entity never come closer than this"
    )
    analyzer_digest_max_score_distance: float = Field(
        default=15.0, ge=0, le=100, description="digest score at most this far from its docs' mean"
    )
    analyzer_digest_top_k: int = Field(
        default=8,
        ge=1,
        le=100,
        description="Documents in a digest's context: half nearest the entity's mean, half latest.",
    )
    analyzer_stale_after_s: float = Field(
        default=7 * 24 * 3600.0, gt=0, description="documents older than this go at backfill"
    )
    analyzer_retry_delays_ms: str = Field(
        default=",".join(map(str, DEFAULT_RETRY_DELAYS_MS)),
        description="SIFT_ANALYZER_RETRY_DELAYS_MS: retry ladder of both queues, comma-separated "
        "ms; the last rung repeats",
    )
    analyzer_max_retries: int = Field(
        default=5, ge=0, le=100, description="Retries before a transient failure is dead-lettered."
    )
    analyzer_gateway_timeout_s: float = Field(
        default=300.0, gt=0, description="Timeout of one LLM request through the gateway."
    )

    @field_validator("analyzer_retry_delays_ms")
    @classmethod
    def _delays(cls, value: str) -> str:
        parse_retry_delays(value)
        return value

    @model_validator(mode="after")
    def _digest_times(self) -> "AnalyzerSettings":
        if self.analyzer_digest_sla_s < self.analyzer_digest_min_interval_s:
            raise ValueError(
                "SIFT_ANALYZER_DIGEST_SLA_S must not be shorter than "
                "SIFT_ANALYZER_DIGEST_MIN_INTERVAL_S"
            )
        return self

    @property
    def refresh_policy(self) -> RefreshPolicy:
        return RefreshPolicy(
            threshold=self.analyzer_digest_novelty_threshold,
            sla=timedelta(seconds=self.analyzer_digest_sla_s),
            min_interval=timedelta(seconds=self.analyzer_digest_min_interval_s),
        )

    @property
    def retry_delays(self) -> tuple[int, ...]:
        return parse_retry_delays(self.analyzer_retry_delays_ms)
