"""The passwords a provisioning command gives each service's user (broker, Redis): from a
JSON file `{"collector": "...", ...}` when one is named, else from one environment variable
per service (`SIFT_RABBIT_PASSWORD_COLLECTOR`, ...)."""

import json
import os
from pathlib import Path

from sift_common.errors import ConfigError


def read_passwords(services: list[str], variable: str, path: Path | None) -> dict[str, str]:
    """`variable` has a `{}` for the service's name in capitals; unset or empty ones are left
    out (the caller says which are required)."""
    if path is not None:
        try:
            loaded = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
            raise ConfigError(f"{path}: expected a JSON object of strings")
        return {str(k): v for k, v in loaded.items() if str(k) in services}
    found = {s: os.environ.get(variable.format(s.upper().replace("-", "_"))) for s in services}
    return {service: value for service, value in found.items() if value}
