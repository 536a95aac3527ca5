"""Settings fragments shared by every service, read from `SIFT_*` environment variables.

A service composes the fragments it needs into one `Settings` class and calls `load_settings`
at start-up, so a wrong value stops the process with a message naming the variable.
"""

from typing import Literal, TypeVar

from pydantic import AmqpDsn, Field, HttpUrl, RedisDsn, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from sift_common.errors import ConfigError

ENV_PREFIX = "SIFT_"


class SiftSettings(BaseSettings):
    """Base of every settings class: `SIFT_` prefix, unknown variables ignored."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class ServiceSettings(SiftSettings):
    """What every long-running service reads, whatever else it needs."""

    log_level: LogLevel = Field(
        default="INFO",
        description="Lowest level logged (SIFT_LOG_LEVEL): DEBUG, INFO, WARNING, ERROR, CRITICAL.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_name(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value


class RabbitSettings(SiftSettings):
    rabbit_url: AmqpDsn = Field(
        default=AmqpDsn("amqp://guest:guest@127.0.0.1:5672/"),
        description="RabbitMQ connection URL (SIFT_RABBIT_URL).",
    )
    namespace: str = Field(
        default="",
        pattern=r"^[a-z0-9_.-]*$",
        description=(
            "Prefix of every exchange and queue name (SIFT_NAMESPACE); empty in production."
        ),
    )
    handler_budget_s: float = Field(
        default=900.0,
        gt=0,
        description=(
            "Longest a consumer may work on one message before it is retried as a transient "
            "failure (SIFT_HANDLER_BUDGET_S); keep it under RabbitMQ's consumer timeout."
        ),
    )
    drain_timeout_s: float = Field(
        default=60.0,
        ge=0,
        description=(
            "On SIGTERM, how long messages in flight may finish before they are handed back to "
            "the broker (SIFT_DRAIN_TIMEOUT_S); keep the orchestrator's grace period above it."
        ),
    )


class RedisSettings(SiftSettings):
    redis_url: RedisDsn = Field(
        default=RedisDsn("redis://127.0.0.1:6379/0"),
        description="Redis connection URL (SIFT_REDIS_URL).",
    )


class DatabaseSettings(SiftSettings):
    database_url: str | None = Field(
        default=None,
        description=(
            "PostgreSQL URL (SIFT_DATABASE_URL), any driver prefix. Unset: the embedded "
            "PostgreSQL + pgvector under .sift/pgdata is started and used."
        ),
    )

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        # Unix-socket URLs (`postgresql://user@/db?host=/dir`) have no host, which
        # pydantic's PostgresDsn rejects, so SQLAlchemy's own parser decides.
        if value is None:
            return None
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"not a database URL: {exc}") from exc
        if url.get_backend_name() != "postgresql":
            raise ValueError(f"expected a postgresql:// URL, got {url.drivername}://")
        return value


class GatewaySettings(SiftSettings):
    gateway_url: HttpUrl = Field(
        default=HttpUrl("http://127.0.0.1:8100"),
        description="Base URL of the LLM gateway (SIFT_GATEWAY_URL).",
    )


def parse_retry_delays(value: str) -> tuple[int, ...]:
    """A retry ladder from `SIFT_*_RETRY_DELAYS_MS`: comma-separated positive milliseconds."""
    try:
        delays = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise ValueError("expected comma-separated integers (milliseconds)") from None
    if not delays or min(delays) <= 0:
        raise ValueError("retry delays must be positive and not empty")
    return delays


SettingsT = TypeVar("SettingsT", bound=SiftSettings)


def load_settings(settings_class: type[SettingsT]) -> SettingsT:
    """Read settings from the environment; a bad value raises `ConfigError` naming the variable."""

    try:
        return settings_class()
    except ValidationError as exc:
        problems = [
            f"{ENV_PREFIX}{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors()
        ]
        raise ConfigError("invalid settings: " + "; ".join(problems)) from exc


def load_or_exit(name: str, settings_class: type[SettingsT]) -> SettingsT:
    """The settings, or `SystemExit("sift-<name>: ...")` naming what is wrong."""
    try:
        return load_settings(settings_class)
    except ConfigError as exc:
        raise SystemExit(f"sift-{name}: {exc}") from None
