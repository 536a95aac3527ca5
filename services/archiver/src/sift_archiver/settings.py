"""The archiver's settings: shared fragments plus its own `SIFT_ARCHIVER_*` variables."""

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from sift_common.messaging.topology import DEFAULT_RETRY_DELAYS_MS
from sift_common.security.keys import KeyTable, development_keys
from sift_common.settings import (
    AuthSettings,
    DatabaseSettings,
    GatewaySettings,
    RabbitSettings,
    parse_retry_delays,
)

QUERY_SCOPE = "query"


class ArchiverSettings(AuthSettings, RabbitSettings, DatabaseSettings, GatewaySettings):
    KEY_FIELD = "archiver_api_keys"
    KEY_SCOPES = (QUERY_SCOPE,)

    archiver_host: str = Field(
        default="127.0.0.1", description="Address the query API, health and metrics listen on."
    )
    archiver_port: int = Field(
        default=8130, ge=1, le=65535, description="Port of the query API, health and metrics."
    )
    archiver_api_keys: KeyTable = Field(
        default_factory=development_keys,
        description=(
            "SIFT_ARCHIVER_API_KEYS: JSON API key (or `sha256:<hex>`) → analyst name, or → "
            "{name, scopes}; scope `query`, the default (dev-key: development only)"
        ),
    )
    archiver_api_keys_file: Path | None = Field(
        default=None,
        description=(
            "SIFT_ARCHIVER_API_KEYS_FILE: a JSON file of the same shape, re-read when it changes; "
            "set alone, it replaces the default key"
        ),
    )
    archiver_batch_size: int = Field(default=32, ge=1, le=1024, description="documents per batch")
    archiver_batch_wait_s: float = Field(
        default=0.5, gt=0, description="longest a partial batch waits before it is written"
    )
    archiver_prefetch: int = Field(
        default=0,
        ge=0,
        description="unacked deliveries per consumer, above the batch size; 0: twice the batch",
    )
    archiver_embed_model: str = Field(default="embed", description="gateway model or alias")
    archiver_embedding_model_name: str | None = Field(
        default=None,
        description="name recorded per vector row; unset: the model the gateway reports",
    )
    archiver_chunk_words: int = Field(default=160, ge=16, description="words per chunk")
    archiver_chunk_overlap_words: int = Field(default=32, ge=0, description="overlap of chunks")
    archiver_ef_search: int = Field(
        default=200, ge=10, le=1000, description="`hnsw.ef_search` of searches"
    )
    archiver_max_scan_tuples: int = Field(
        default=20_000, ge=100, description="`hnsw.max_scan_tuples` for iterative scans"
    )
    archiver_refresh_every_s: float = Field(
        default=3600.0,
        ge=0,
        description="every this long, entity.refresh for recent entities; 0: off",
    )
    archiver_refresh_window_days: float = Field(
        default=30.0,
        gt=0,
        description="entities with documents this recent get scheduled refreshes",
    )
    archiver_migrate: bool = Field(default=True, description="migrate the store at start-up")
    archiver_retry_delays_ms: str = Field(
        default=",".join(map(str, DEFAULT_RETRY_DELAYS_MS)),
        description="SIFT_ARCHIVER_RETRY_DELAYS_MS: retry ladder of both queues, comma-separated "
        "ms; the last rung repeats",
    )
    archiver_max_retries: int = Field(
        default=5, ge=0, le=100, description="Retries before a transient failure is dead-lettered."
    )
    archiver_drain_grace_s: float = Field(
        default=3.0, ge=0, description="on SIGTERM, readiness is 503 this long before closing"
    )

    @model_validator(mode="after")
    def _some_key(self) -> "ArchiverSettings":
        if not self.archiver_api_keys and self.archiver_api_keys_file is None:
            raise ValueError("SIFT_ARCHIVER_API_KEYS or SIFT_ARCHIVER_API_KEYS_FILE: no API key")
        return self

    @field_validator("archiver_retry_delays_ms")
    @classmethod
    def _delays(cls, value: str) -> str:
        parse_retry_delays(value)
        return value

    @model_validator(mode="after")
    def _overlap_below_chunk(self) -> "ArchiverSettings":
        if self.archiver_chunk_overlap_words >= self.archiver_chunk_words:
            raise ValueError("SIFT_ARCHIVER_CHUNK_OVERLAP_WORDS must be below CHUNK_WORDS")
        return self

    @property
    def retry_delays(self) -> tuple[int, ...]:
        return parse_retry_delays(self.archiver_retry_delays_ms)

    @property
    def prefetch(self) -> int:
        # Every handler of a batch holds its message until commit: prefetch must exceed a batch.
        return self.archiver_prefetch or 2 * self.archiver_batch_size
