"""The analyzer's settings: shared fragments plus its own `SIFT_ANALYZER_*` variables."""

from pathlib import Path

from pydantic import Field, field_validator

from sift_common.messaging.topology import DEFAULT_RETRY_DELAYS_MS
from sift_common.settings import DatabaseSettings, GatewaySettings, RabbitSettings, RedisSettings

BUNDLED_PROFILES = Path(__file__).resolve().parent / "profiles.yaml"


class AnalyzerSettings(RabbitSettings, RedisSettings, DatabaseSettings, GatewaySettings):
    analyzer_host: str = Field(default="127.0.0.1", description="SIFT_ANALYZER_HOST")
    analyzer_port: int = Field(default=8120, ge=1, le=65535, description="SIFT_ANALYZER_PORT")
    analyzer_profiles: Path = Field(
        default=BUNDLED_PROFILES, description="SIFT_ANALYZER_PROFILES: analysis profiles YAML"
    )
    # vLLM's batch is 32 sequences on the local CPU profile: one delivery in flight per slot.
    analyzer_prefetch: int = Field(default=24, ge=1, le=1000)
    analyzer_digest_prefetch: int = Field(default=4, ge=1, le=1000)
    analyzer_lock_lease_ms: int = Field(default=30_000, ge=100)
    analyzer_lock_wait_s: float = Field(default=2.0, ge=0)
    analyzer_result_ttl_s: int = Field(default=7 * 24 * 3600, gt=0)
    analyzer_digest_interval_s: float = Field(default=3600.0, ge=0)
    analyzer_digest_top_k: int = Field(default=8, ge=1, le=100)
    analyzer_stale_after_s: float = Field(
        default=7 * 24 * 3600.0, gt=0, description="documents older than this go at backfill"
    )
    analyzer_retry_delays_ms: str = Field(
        default=",".join(map(str, DEFAULT_RETRY_DELAYS_MS)),
        description="SIFT_ANALYZER_RETRY_DELAYS_MS: comma-separated retry ladder",
    )
    analyzer_max_retries: int = Field(default=5, ge=0, le=100)
    analyzer_gateway_timeout_s: float = Field(default=300.0, gt=0)

    @field_validator("analyzer_retry_delays_ms")
    @classmethod
    def _delays(cls, value: str) -> str:
        try:
            delays = [int(part) for part in value.split(",")]
        except ValueError:
            raise ValueError("expected comma-separated integers (milliseconds)") from None
        if not delays or min(delays) <= 0:
            raise ValueError("retry delays must be positive and not empty")
        return value

    @property
    def retry_delays(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.analyzer_retry_delays_ms.split(","))
