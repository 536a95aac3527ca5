"""API keys: who may call a service, with which scopes, at which highest priority.

A key table (`SIFT_<SERVICE>_API_KEYS`, or the JSON file `SIFT_<SERVICE>_API_KEYS_FILE`) maps
each key to its caller:

    {"<key>": "analyst-1",
     "sha256:<64 hex digits>": {"name": "analyzer", "scopes": ["inference"],
                                "priority": "normal", "rate_per_s": 50,
                                "tokens_per_minute": 200000}}

A plain string names the caller and gives it the service's default scopes. A `sha256:` entry
is the SHA-256 of the key, so a key file need hold nothing secret (`python -m
sift_common.security.keys <key>` prints it). Keys live in memory only as SHA-256 digests;
a presented key is hashed and compared with every stored digest by `hmac.compare_digest`, so
neither a match nor a near miss shows in the timing. A `KeyRing` re-reads its file whenever
the file changes (mtime, size or inode), so keys rotate without a restart: put the new key
next to the old one, move the callers over, then drop the old one.

`bearer(header)` reads the key out of an `Authorization: Bearer <key>` header, the form the
gateway's callers and Prometheus's `authorization` setting send.
"""

import hashlib
import hmac
import logging
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

logger = logging.getLogger(__name__)

HASH_PREFIX = "sha256:"
DEV_KEY = "dev-key"
MIN_KEY_LENGTH = 32
METRICS_SCOPE = "metrics"  # reads /metrics where it is closed (production); no default holds it


class KeyEntry(BaseModel):
    """What a key table says about one key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="The caller, as logs and metrics name it.")
    scopes: list[str] | None = Field(default=None, description="Unset: the service's default.")
    priority: str | None = Field(default=None, description="Highest priority class allowed.")
    rate_per_s: float | None = Field(default=None, gt=0, description="Requests per second.")
    tokens_per_minute: int | None = Field(
        default=None, gt=0, description="Tokens (prompt + completion) per minute, where counted."
    )


KeyTable = dict[str, str | KeyEntry]
_TABLE: TypeAdapter[KeyTable] = TypeAdapter(KeyTable)


def development_keys() -> KeyTable:
    """The default table of a door on a development machine: `dev-key`, caller `dev`."""
    return {DEV_KEY: "dev"}


class KeyFileError(ValueError):
    """A key file that cannot be read or is not a key table."""


@dataclass(frozen=True)
class ApiKey:
    name: str
    digest: bytes = field(repr=False)
    scopes: frozenset[str]
    priority: str | None = None
    rate_per_s: float | None = None
    tokens_per_minute: int | None = None
    plain_length: int | None = None  # None: given as a hash, its length is unknown
    is_dev_key: bool = False


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def bearer(header: str | None) -> str | None:
    """The key in `Authorization: Bearer <key>`; None for no header or another scheme."""
    scheme, _, token = (header or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def parse_keys(table: Mapping[str, str | KeyEntry], default_scopes: Iterable[str]) -> list[ApiKey]:
    """The keys of a table; a blank key or name, or a malformed hash, raises ValueError."""
    defaults = frozenset(default_scopes)
    keys = []
    for secret, given in table.items():
        entry = KeyEntry(name=given) if isinstance(given, str) else given
        if not secret.strip() or not entry.name.strip():
            raise ValueError("API keys and caller names must not be blank")
        scopes = defaults if entry.scopes is None else frozenset(entry.scopes)
        hashed = secret.startswith(HASH_PREFIX)
        keys.append(
            ApiKey(
                name=entry.name,
                digest=_stored_digest(secret) if hashed else digest(secret),
                scopes=scopes,
                priority=entry.priority,
                rate_per_s=entry.rate_per_s,
                tokens_per_minute=entry.tokens_per_minute,
                plain_length=None if hashed else len(secret),
                is_dev_key=secret == DEV_KEY,
            )
        )
    return keys


def _stored_digest(secret: str) -> bytes:
    hex_digest = secret.removeprefix(HASH_PREFIX)
    try:
        value = bytes.fromhex(hex_digest)
    except ValueError:
        value = b""
    if len(value) != hashlib.sha256().digest_size:
        raise ValueError(f"{HASH_PREFIX} must be followed by 64 hex digits")
    return value


def read_key_table(path: Path) -> KeyTable:
    try:
        return _TABLE.validate_json(path.read_bytes())
    except (OSError, ValidationError) as exc:
        raise KeyFileError(f"{path}: not a readable key table ({exc})") from exc


def weak_keys(keys: Iterable[ApiKey]) -> list[str]:
    """What production refuses: the development key, keys under `MIN_KEY_LENGTH` characters."""
    problems = []
    for key in keys:
        if key.is_dev_key:
            problems.append(f"the development key {DEV_KEY!r} (caller {key.name})")
        elif key.plain_length is not None and key.plain_length < MIN_KEY_LENGTH:
            problems.append(
                f"the key of {key.name} has {key.plain_length} characters, "
                f"fewer than {MIN_KEY_LENGTH}"
            )
    return problems


class KeyRing:
    """Static keys plus a key file's, the file re-read whenever it changes. A changed file that
    cannot be read, or (with `strict`) holds weak keys, is logged and the keys read before
    stay in force; at construction the same problems raise `KeyFileError`."""

    def __init__(
        self,
        static: Sequence[ApiKey],
        path: Path | None = None,
        default_scopes: Iterable[str] = (),
        *,
        strict: bool = False,
    ) -> None:
        self._static, self._path, self._strict = list(static), path, strict
        self._default_scopes = frozenset(default_scopes)
        self._stamp: tuple[int, int, int] | None = None
        self._keys = self._static
        if path is not None:
            self._keys = self._static + self._read(path)

    @property
    def open(self) -> bool:
        """No key is configured: the service is open (development only)."""
        return self._path is None and not self._static

    def current(self) -> list[ApiKey]:
        if self._path is not None and self._changed(self._path):
            try:
                self._keys = self._static + self._read(self._path)
            except KeyFileError as exc:
                logger.error("key file not reloaded, the keys read before stay: %s", exc)
            else:
                logger.info("key file %s reloaded: %d keys", self._path, len(self._keys))
        return self._keys

    def identify(self, presented: str) -> ApiKey | None:
        """The key whose digest matches; every stored digest is compared, match or not."""
        wanted = digest(presented)
        found = None
        for key in self.current():
            if hmac.compare_digest(key.digest, wanted):
                found = key
        return found

    def _changed(self, path: Path) -> bool:
        try:
            stat = path.stat()
        except OSError:
            return self._stamp is not None  # gone: _read says so once, and keeps the keys
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino) != self._stamp

    def _read(self, path: Path) -> list[ApiKey]:
        try:
            stat = path.stat()
            self._stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except OSError as exc:
            self._stamp = None
            raise KeyFileError(f"{path}: {exc}") from exc
        try:
            keys = parse_keys(read_key_table(path), self._default_scopes)
        except ValueError as exc:
            raise KeyFileError(f"{path}: {exc}") from exc
        weak = weak_keys(keys) if self._strict else []
        if weak:
            raise KeyFileError(f"{path}: " + "; ".join(weak))
        return keys


if __name__ == "__main__":  # python -m sift_common.security.keys <key>: its key-file entry
    for argument in sys.argv[1:] or [sys.stdin.readline().strip()]:
        print(HASH_PREFIX + hashlib.sha256(argument.encode()).hexdigest())
