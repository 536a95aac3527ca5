"""Settings fragments shared by every service, read from `SIFT_*` environment variables.

A service composes the fragments it needs into one `Settings` class and calls `load_settings`
at start-up, so a wrong value stops the process with a message naming the variable. With
`SIFT_ENV=production`, each fragment also says what it refuses there (`production_refusals`:
development keys, short keys, default passwords, doors without keys), and `load_settings`
refuses to start on any of them.
"""

import logging
from typing import ClassVar, Literal, Self, TypeVar

from pydantic import (
    AmqpDsn,
    Field,
    HttpUrl,
    RedisDsn,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from sift_common.errors import ConfigError
from sift_common.security.key_settings import KeySettings
from sift_common.security.keys import DEV_KEY, METRICS_SCOPE, MIN_KEY_LENGTH, parse_keys
from sift_common.security.production import default_password, redis_without_password

logger = logging.getLogger(__name__)

ENV_PREFIX = "SIFT_"


class SiftSettings(BaseSettings):
    """Base of every settings class: `SIFT_` prefix, unknown variables ignored."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    def production_refusals(self) -> list[str]:
        """What `SIFT_ENV=production` refuses in these settings, each naming its variable.
        Fragments extend it (calling `super()`), so a service's class collects them all."""
        return []

    def production_warnings(self) -> list[str]:
        """What production allows but an operator should hear about at start-up."""
        return []


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


Environment = Literal["development", "production"]


class ServiceSettings(SiftSettings):
    """What every long-running service reads, whatever else it needs."""

    env: Environment = Field(
        default="development",
        description=(
            "SIFT_ENV: `development` (the default, for a laptop) or `production` (compose, "
            "the images): production refuses to start with a development key, a key under "
            f"{MIN_KEY_LENGTH} characters, a default password or an unguarded admin door."
        ),
    )

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
    rabbit_declare: Literal["all", "own"] = Field(
        default="all",
        description=(
            "What a service declares on the broker at start-up (SIFT_RABBIT_DECLARE): `all` "
            "the whole topology (a user that may configure everything, as in development); "
            "`own` only its work queues, checking the rest exists (a least-privilege user "
            "made by `sift broker provision`, docs/security.md)."
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

    def production_refusals(self) -> list[str]:
        return [
            *super().production_refusals(),
            *default_password("SIFT_RABBIT_URL", str(self.rabbit_url)),
        ]


class RedisSettings(SiftSettings):
    redis_url: RedisDsn = Field(
        default=RedisDsn("redis://127.0.0.1:6379/0"),
        description="Redis connection URL (SIFT_REDIS_URL).",
    )

    def production_refusals(self) -> list[str]:
        return [
            *super().production_refusals(),
            *default_password("SIFT_REDIS_URL", str(self.redis_url)),
        ]

    def production_warnings(self) -> list[str]:
        warnings = super().production_warnings()
        if redis_without_password(str(self.redis_url)):
            warnings.append("SIFT_REDIS_URL has no password: give each service a Redis ACL user")
        return warnings


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

    def production_refusals(self) -> list[str]:
        refusals = super().production_refusals()
        if self.database_url is not None:
            refusals += default_password("SIFT_DATABASE_URL", self.database_url)
        return refusals

    def production_warnings(self) -> list[str]:
        warnings = super().production_warnings()
        if self.database_url is None:
            warnings.append("SIFT_DATABASE_URL is not set: the embedded PostgreSQL is used")
        return warnings


class GatewaySettings(SiftSettings):
    gateway_url: HttpUrl = Field(
        default=HttpUrl("http://127.0.0.1:8100"),
        description="Base URL of the LLM gateway (SIFT_GATEWAY_URL).",
    )
    gateway_api_key: SecretStr | None = Field(
        default=None,
        description=(
            "SIFT_GATEWAY_API_KEY: this service's key for the LLM gateway, sent as "
            "`Authorization: Bearer`; required in production."
        ),
    )

    def production_refusals(self) -> list[str]:
        refusals = super().production_refusals()
        key = None if self.gateway_api_key is None else self.gateway_api_key.get_secret_value()
        if not key:
            refusals.append("SIFT_GATEWAY_API_KEY: no key for the LLM gateway")
        elif key == DEV_KEY or len(key) < MIN_KEY_LENGTH:
            refusals.append(
                f"SIFT_GATEWAY_API_KEY: a development or short key (< {MIN_KEY_LENGTH})"
            )
        return refusals


class AuthSettings(ServiceSettings):
    """A service with an API-key door: its key table is the field `KEY_FIELD` (a `KeyTable`),
    its key file the field `<KEY_FIELD>_file`, and plain entries get `KEY_SCOPES`."""

    KEY_FIELD: ClassVar[str]
    KEY_SCOPES: ClassVar[tuple[str, ...]]

    auth_failures_per_minute: int = Field(
        default=10,
        ge=1,
        description=(
            "SIFT_AUTH_FAILURES_PER_MINUTE: failed API-key attempts one client address may make "
            "per minute (and at once); beyond them it gets 429 with Retry-After."
        ),
    )

    open_metrics: bool | None = Field(
        default=None,
        description=(
            "SIFT_OPEN_METRICS: whether `/metrics` answers without a key. Unset: open in "
            "development, closed in production, where the scraper needs a key with the "
            f"`{METRICS_SCOPE}` scope (sent as `Authorization: Bearer` or the door's own header)."
        ),
    )

    @property
    def metrics_need_key(self) -> bool:
        return self.env == "production" if self.open_metrics is None else not self.open_metrics

    def production_warnings(self) -> list[str]:
        warnings = super().production_warnings()
        if not self.metrics_need_key:
            warnings.append(
                "SIFT_OPEN_METRICS=true: /metrics answers anyone who reaches this port; "
                "keep the port on an internal interface"
            )
        return warnings

    @model_validator(mode="after")
    def _keys_parse(self) -> Self:
        try:
            parse_keys(getattr(self, self.KEY_FIELD), self.KEY_SCOPES)
        except ValueError as exc:
            raise ValueError(f"{self.api_keys.variable}: {exc}") from None
        return self

    @property
    def api_keys(self) -> KeySettings:
        field = self.KEY_FIELD
        return KeySettings(
            variable=f"{ENV_PREFIX}{field.upper()}",
            table=getattr(self, field),
            path=getattr(self, f"{field}_file"),
            table_given=field in self.model_fields_set,
            default_scopes=frozenset(self.KEY_SCOPES),
            production=self.env == "production",
            failures_per_minute=self.auth_failures_per_minute,
        )

    def production_refusals(self) -> list[str]:
        return [*super().production_refusals(), *self.api_keys.refusals()]


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
    """Read settings from the environment; a bad value, or (`SIFT_ENV=production`) a value
    production refuses, raises `ConfigError` naming the variable."""

    try:
        settings = settings_class()
    except ValidationError as exc:
        problems = [
            f"{ENV_PREFIX}{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            if error["loc"]
            else error["msg"].removeprefix("Value error, ")  # a check of several variables
            for error in exc.errors()
        ]
        raise ConfigError("invalid settings: " + "; ".join(problems)) from exc
    if isinstance(settings, ServiceSettings) and settings.env == "production":
        refusals = settings.production_refusals()
        if refusals:
            raise ConfigError("SIFT_ENV=production refuses: " + "; ".join(refusals))
        for warning in settings.production_warnings():
            logger.warning("SIFT_ENV=production: %s", warning)
    return settings


def load_or_exit(name: str, settings_class: type[SettingsT]) -> SettingsT:
    """The settings, or `SystemExit("sift-<name>: ...")` naming what is wrong."""
    try:
        return load_settings(settings_class)
    except ConfigError as exc:
        raise SystemExit(f"sift-{name}: {exc}") from None
