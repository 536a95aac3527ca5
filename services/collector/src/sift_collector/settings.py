"""The collector's settings: shared fragments plus its own `SIFT_COLLECTOR_*` variables."""

from pathlib import Path

from pydantic import Field

from sift_common.security.keys import KeyTable, development_keys
from sift_common.settings import AuthSettings, RabbitSettings, RedisSettings

INGEST_SCOPE = "ingest"


class CollectorSettings(AuthSettings, RabbitSettings, RedisSettings):
    KEY_FIELD = "collector_api_keys"
    KEY_SCOPES = (INGEST_SCOPE,)

    collector_host: str = Field(
        default="127.0.0.1", description="Address the ingest API, health and metrics listen on."
    )
    collector_port: int = Field(
        default=8110, ge=1, le=65535, description="Port of the ingest API, health and metrics."
    )
    collector_sources: Path | None = Field(
        default=None,
        description="YAML of scheduled sources (docs/examples/sources.yaml); unset: none.",
    )
    collector_api_keys: KeyTable = Field(
        default_factory=development_keys,
        description=(
            "SIFT_COLLECTOR_API_KEYS: JSON object mapping API key (or `sha256:<hex>` of one) → "
            "publisher name, or → {name, scopes}; scope `ingest`, the default. The default "
            "`dev-key` is for a development machine only (production refuses it)."
        ),
    )
    collector_api_keys_file: Path | None = Field(
        default=None,
        description=(
            "SIFT_COLLECTOR_API_KEYS_FILE: a JSON file of the same shape, re-read when it "
            "changes (rotation without a restart); set alone, it replaces the default key."
        ),
    )
    collector_rate_limit: str = Field(
        default="100/second",
        description=(
            "Ingest requests per publisher (its API keys share it), in the `limits` syntax "
            "(`100/second`, `5000/hour`); over it: 429 with Retry-After."
        ),
    )
    collector_dedup_window_s: int = Field(
        default=7 * 24 * 3600,
        gt=0,
        description="A document whose content was published this recently is a duplicate.",
    )
    collector_max_body_chars: int = Field(
        default=100_000, gt=0, description="Longest body after normalisation; longer is refused."
    )
    collector_max_request_bytes: int = Field(
        default=10 * 1024**2, gt=0, description="Largest ingest request body; larger: 413."
    )
    collector_max_batch: int = Field(
        default=500, gt=0, description="Most documents in one ingest request; more: 422."
    )
    collector_confirm_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description=(
            "SIFT_COLLECTOR_CONFIRM_TIMEOUT_S: longest wait for the broker's confirm of one "
            "document; a dedup claim whose publish was never confirmed nor given back (a crash) "
            "lapses after twice this"
        ),
    )
