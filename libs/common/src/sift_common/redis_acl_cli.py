"""`sift redis provision`: the services' Redis ACL users (redis_acl.py, docs/security.md).

Runs as a Redis user that may run ACL (SIFT_REDIS_URL, e.g. `default` with its password).
Passwords from SIFT_REDIS_PASSWORD_<SERVICE> or `--passwords-file` (JSON
{"collector": "...", "analyzer": "..."}); key patterns take SIFT_NAMESPACE. Idempotent. Exit 1
when a password is missing or Redis refuses, 2 when Redis cannot be reached.
"""

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from sift_common.errors import ConfigError
from sift_common.redis_acl import KEY_PATTERNS, provision_redis_users, redis_users
from sift_common.redis_client import make_redis
from sift_common.security.passwords import read_passwords
from sift_common.settings import RedisSettings, load_settings

app = typer.Typer(name="redis", help="Redis ACL users, one per service.", no_args_is_help=True)
PASSWORD_VARIABLE = "SIFT_REDIS_PASSWORD_{}"  # noqa: S105 - a variable name


class _Namespace(RedisSettings):
    """SIFT_REDIS_URL and SIFT_NAMESPACE."""

    namespace: str = ""


@app.command()
def provision(
    passwords_file: Annotated[
        Path | None, typer.Option(help='JSON {"collector": "<password>", ...}')
    ] = None,
) -> None:
    """Create or reset each service's ACL user (idempotent) and persist them."""
    try:
        settings = load_settings(_Namespace)
        passwords = read_passwords(list(KEY_PATTERNS), PASSWORD_VARIABLE, passwords_file)
        done = asyncio.run(_provision(str(settings.redis_url), settings.namespace, passwords))
    except (ConfigError, ValueError, ResponseError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    except (RedisConnectionError, OSError) as exc:
        typer.echo(f"cannot reach Redis: {exc!r}", err=True)
        raise typer.Exit(2) from exc
    for line in done:
        typer.echo(line)


async def _provision(url: str, namespace: str, passwords: dict[str, str]) -> list[str]:
    redis = make_redis(url, max_connections=2)
    try:
        return await provision_redis_users(redis, redis_users(namespace), passwords)
    finally:
        await redis.aclose()
