"""`run_service`: what every FastAPI service's `main()` does, in one place.

Settings from the environment (a bad value exits with `sift-<name>: ...` naming the variable),
JSON logs at `SIFT_LOG_LEVEL`, the composition root built, then uvicorn serving it with the
draining behaviour of `sift_common.service.draining`. A start-up that fails exits non-zero.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import uvicorn
from fastapi import FastAPI

from sift_common.errors import ConfigError
from sift_common.logs import configure_logging
from sift_common.service.draining import DrainingServer
from sift_common.service.readiness import Readiness
from sift_common.settings import ServiceSettings, load_or_exit

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


@dataclass(frozen=True)
class Listener:
    host: str
    port: int
    drain_grace_s: float = 3.0  # readiness 503 this long before the listener closes
    request_timeout_s: float = 30.0  # in-flight requests get this long to finish


class Service(Protocol):
    """A composition root: its app, its readiness, where it listens."""

    @property
    def api(self) -> FastAPI: ...

    @property
    def readiness(self) -> Readiness: ...

    @property
    def listener(self) -> Listener: ...


def run_service(
    name: str, settings_class: type[SettingsT], build: Callable[[SettingsT], Service]
) -> None:
    """The whole `main()` of a service: settings, logging, composition root, serving."""
    settings = load_or_exit(name, settings_class)
    configure_logging(name, settings.log_level)
    try:
        service = build(settings)
    except ConfigError as exc:
        raise SystemExit(f"sift-{name}: {exc}") from None
    serve(name, service)


def serve(name: str, service: Service) -> None:
    listener = service.listener
    config = uvicorn.Config(
        service.api,
        host=listener.host,
        port=listener.port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=max(1, round(listener.request_timeout_s)),
    )
    server = DrainingServer(config, service.readiness, listener.drain_grace_s)
    server.run()
    if not server.started:
        raise SystemExit(f"sift-{name}: start-up failed (see the log above)")
