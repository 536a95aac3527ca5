"""A service's API-key settings, as its settings class reads them: one table from the
environment (`SIFT_<SERVICE>_API_KEYS`), one optional file (`..._API_KEYS_FILE`).

With a file configured, the environment's table counts only when it was set explicitly (its
development default, `dev-key`, does not follow a deployment that moved to a file). In
production, weak keys are refused (at start-up, and in a rewritten key file), and so is a door
without any key.
"""

from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from sift_common.errors import ConfigError
from sift_common.security.guard import KeyGuard
from sift_common.security.keys import (
    ApiKey,
    KeyFileError,
    KeyRing,
    KeyTable,
    parse_keys,
    weak_keys,
)


@dataclass(frozen=True)
class KeySettings:
    variable: str  # e.g. SIFT_COLLECTOR_API_KEYS; the file's is the same plus `_FILE`
    table: KeyTable
    path: Path | None
    table_given: bool
    default_scopes: frozenset[str]
    production: bool = False
    failures_per_minute: int = 10

    def static_keys(self) -> list[ApiKey]:
        table = self.table if self.table_given or self.path is None else {}
        return parse_keys(table, self.default_scopes)

    def ring(self) -> KeyRing:
        """The keys in force; a bad key file (or, in production, weak keys in it) raises
        `ConfigError` naming the variable."""
        try:
            return KeyRing(
                self.static_keys(), self.path, self.default_scopes, strict=self.production
            )
        except KeyFileError as exc:
            raise ConfigError(f"{self.variable}_FILE: {exc}") from exc

    def guard(self, registry: CollectorRegistry) -> KeyGuard:
        """The door's check, its failure counter registered in `registry`."""
        return KeyGuard(self.ring(), registry, failures_per_minute=self.failures_per_minute)

    def refusals(self, require_keys: bool = True) -> list[str]:
        """Why production refuses these settings (empty: it does not)."""
        try:
            static = self.static_keys()
        except ValueError as exc:
            return [f"{self.variable}: {exc}"]
        problems = [f"{self.variable}: {problem}" for problem in weak_keys(static)]
        try:
            ring = KeyRing(static, self.path, self.default_scopes, strict=True)
        except KeyFileError as exc:
            return [*problems, f"{self.variable}_FILE: {exc}"]
        if require_keys and not ring.current():
            problems.append(f"{self.variable} / {self.variable}_FILE: no API key configured")
        return problems
