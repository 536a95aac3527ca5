"""The gateway's settings: its own `SIFT_GATEWAY_*` variables plus the shared database URL."""

from pathlib import Path

from pydantic import Field, field_validator

from sift_common.security.keys import KeyEntry, KeyTable
from sift_common.settings import AuthSettings, DatabaseSettings
from sift_gateway.admission import PriorityClass
from sift_gateway.validation import RequestLimits

DEFAULT_PROFILES = Path(__file__).with_name("profiles.local.yaml")
INFERENCE_SCOPE = "inference"


class GatewayServiceSettings(AuthSettings, DatabaseSettings):
    KEY_FIELD = "gateway_api_keys"
    KEY_SCOPES = (INFERENCE_SCOPE,)

    gateway_host: str = Field(
        default="127.0.0.1", description="Address the OpenAI-compatible API listens on."
    )
    gateway_port: int = Field(
        default=8100, ge=1, le=65535, description="Port of the API, health and metrics."
    )
    gateway_profiles: Path = Field(
        default=DEFAULT_PROFILES, description="SIFT_GATEWAY_PROFILES: the model profiles YAML"
    )
    gateway_request_log: bool = Field(
        default=True, description="SIFT_GATEWAY_REQUEST_LOG: write request logs to PostgreSQL"
    )
    gateway_probe_interval_s: float = Field(
        default=10.0, gt=0, description="Every this long each replica gets a real 1-token probe."
    )
    gateway_probe_timeout_s: float = Field(
        default=30.0, gt=0, description="A probe slower than this marks its replica unhealthy."
    )
    gateway_engine_stall_s: float = Field(
        default=60.0, gt=0, description="Running requests but no new token this long: hung."
    )
    gateway_drain_grace_s: float = Field(
        default=2.0, ge=0, description="Readiness is 503 this long before the listener closes."
    )
    gateway_shutdown_timeout_s: float = Field(
        default=60.0, gt=0, description="On SIGTERM, how long requests in flight may finish."
    )
    gateway_max_request_bytes: int = Field(
        default=32 * 1024**2, ge=1024, description="A larger request body is refused (413)."
    )
    gateway_max_messages: int = Field(
        default=RequestLimits.max_messages, ge=1, description="Most `messages` in one chat request."
    )
    gateway_max_n: int = Field(
        default=RequestLimits.max_n, ge=1, description="Most choices (`n`) in one chat request."
    )
    gateway_max_tokens: int = Field(
        default=RequestLimits.max_tokens,
        ge=1,
        description="Most output tokens (`max_tokens`, `max_completion_tokens`) one request asks.",
    )
    gateway_replay_ttl_s: float = Field(
        default=600.0,
        ge=0,
        description=(
            "A non-streamed chat answer whose request named its own x-request-id is kept this "
            "long: a retry with the same id and body is answered from it, or waits for the "
            "call still open, instead of paying for a second call. 0 turns this off."
        ),
    )
    gateway_replay_max_answers: int = Field(
        default=4096, ge=0, description="Most answers kept for retries (the oldest go first)."
    )
    gateway_api_keys: KeyTable = Field(
        default_factory=dict,
        description=(
            "SIFT_GATEWAY_API_KEYS: JSON object mapping each `Authorization: Bearer` key (or "
            "`sha256:<hex>` of one) → caller name, or → {name, scopes, priority, rate_per_s, "
            "tokens_per_minute}: scopes `inference` (the default) and `admin`; `priority` the "
            "most urgent x-sift-priority class allowed (interactive, normal, backfill; unset: "
            "any); `rate_per_s` and `tokens_per_minute` optional limits. None (and no file): "
            "the gateway is open, which production refuses."
        ),
    )
    gateway_api_keys_file: Path | None = Field(
        default=None,
        description=(
            "SIFT_GATEWAY_API_KEYS_FILE: a JSON file of the same shape, re-read when it changes "
            "(rotation without a restart)."
        ),
    )

    @field_validator("gateway_api_keys")
    @classmethod
    def _known_priorities(cls, keys: KeyTable) -> KeyTable:
        asked = {e.priority for e in keys.values() if isinstance(e, KeyEntry) and e.priority}
        unknown = {p for p in asked if p.strip().upper() not in PriorityClass.__members__}
        if unknown:
            names = ", ".join(m.name.lower() for m in PriorityClass)
            raise ValueError(f"unknown priority {sorted(unknown)}; one of {names}")
        return keys

    @property
    def request_limits(self) -> RequestLimits:
        return RequestLimits(self.gateway_max_messages, self.gateway_max_n, self.gateway_max_tokens)
