"""What `sift doctor` looks at, from the environment: the same variables the services and the
`sift` command line read, with the services' development defaults.

A malformed value is a `ConfigError` naming the variable (the command exits 2); a missing
optional one (an admin key, the profiles file, the database URL) turns its check into a skip.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sift_common.errors import ConfigError
from sift_common.settings import DatabaseSettings, RabbitSettings, load_settings

HTTP_TIMEOUT_S = 3.0
"""Each HTTP probe (readiness, /metrics, /admin/upstreams) gives up after this."""
BROKER_TIMEOUT_S = 20.0
"""The broker probe (connect, depths, the DLQ scans) gives up after this, all together."""
DATABASE_TIMEOUT_S = 10.0
"""The request-log query gives up after this (connecting included)."""


@dataclass(frozen=True)
class ServiceTarget:
    service: str  # its docker compose name
    variable: str
    url: str


# The services' own ports (their settings.py defaults) on this machine.
SERVICE_DEFAULTS: tuple[tuple[str, str, str], ...] = (
    ("collector", "SIFT_COLLECTOR_URL", "http://127.0.0.1:8110"),
    ("analyzer", "SIFT_ANALYZER_URL", "http://127.0.0.1:8120"),
    ("archiver", "SIFT_ARCHIVER_URL", "http://127.0.0.1:8130"),
    ("gateway", "SIFT_GATEWAY_URL", "http://127.0.0.1:8100"),
)


@dataclass(frozen=True)
class DoctorConfig:
    services: tuple[ServiceTarget, ...]
    admin_key: str | None  # SIFT_GATEWAY_ADMIN_KEY: reads /admin/upstreams
    metrics_key: str | None  # SIFT_METRICS_KEY: reads /metrics where it is closed
    profiles_path: Path | None  # SIFT_GATEWAY_PROFILES: the engines' URLs
    rabbit_url: str
    namespace: str
    database_url: str | None

    @property
    def gateway_url(self) -> str:
        return next(t.url for t in self.services if t.service == "gateway")


def load_config(environ: Mapping[str, str] | None = None) -> DoctorConfig:
    env = os.environ if environ is None else environ
    services = tuple(
        ServiceTarget(service, variable, _http_url(variable, env.get(variable) or default))
        for service, variable, default in SERVICE_DEFAULTS
    )
    rabbit = load_settings(RabbitSettings)
    database = load_settings(DatabaseSettings)
    profiles = env.get("SIFT_GATEWAY_PROFILES")
    return DoctorConfig(
        services=services,
        admin_key=env.get("SIFT_GATEWAY_ADMIN_KEY") or None,
        metrics_key=env.get("SIFT_METRICS_KEY") or None,
        profiles_path=Path(profiles) if profiles else None,
        rabbit_url=str(rabbit.rabbit_url),
        namespace=rabbit.namespace,
        database_url=database.database_url,
    )


def _http_url(variable: str, value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"{variable}: expected an http:// or https:// URL, got {value!r}")
    return value.rstrip("/")
