"""The gateway's settings: its own `SIFT_GATEWAY_*` variables plus the shared database URL."""

from pathlib import Path

from pydantic import Field

from sift_common.settings import DatabaseSettings, ServiceSettings

DEFAULT_PROFILES = Path(__file__).with_name("profiles.local.yaml")


class GatewayServiceSettings(ServiceSettings, DatabaseSettings):
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
