"""`sift-db`: migrate the store, show its revision and URL, prune old request logs, stop the
embedded server.

The database is `SIFT_DATABASE_URL`, or the embedded PostgreSQL + pgvector under .sift/pgdata
(started on demand) when that is unset.
"""

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import timedelta

import asyncpg
from alembic.util import CommandError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from sift_common.errors import ConfigError
from sift_common.ops import retention
from sift_common.security.passwords import read_passwords
from sift_common.settings import DatabaseSettings, load_settings
from sift_common.store import migrate, roles
from sift_common.store.embedded import DEFAULT_DATA_DIR, stop_embedded_postgres
from sift_common.store.engine import resolve_database_url


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sift-db", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("upgrade", help="migrate up (default: head)")
    up.add_argument("revision", nargs="?", default="head")
    down = commands.add_parser("downgrade", help="migrate down (default: one step, -1)")
    down.add_argument("revision", nargs="?", default="-1")
    commands.add_parser("current", help="print the database's current revision")
    commands.add_parser(
        "roles",
        help="create the group roles sift_archiver, sift_analyzer, sift_gateway, sift_reader and "
        "set their privileges (after upgrade; idempotent); with SIFT_DB_PASSWORD_<ROLE> set "
        "(ARCHIVER, ANALYZER, GATEWAY, READER), a login user <group>_login for each",
    )
    commands.add_parser("url", help="print the database URL in use (password hidden)")
    prune = commands.add_parser(
        "prune-request-logs",
        help="drop the monthly gateway.request_logs partitions wholly older than an age, then "
        "delete the older rows left in short batches (creates the months ahead first)",
    )
    prune.add_argument("--older-than", required=True, type=_age, help="e.g. 30d, 8w, 36h")
    prune.add_argument(
        "--batch", type=_batch, default=retention.DEFAULT_BATCH, help="rows per transaction"
    )
    commands.add_parser("stop-embedded", help="stop the embedded PostgreSQL server")
    return parser


def _age(text: str) -> timedelta:
    try:
        return retention.parse_age(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _batch(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of rows, got {text!r}")
    return int(text)


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


async def _run(args: argparse.Namespace) -> None:
    if args.command == "stop-embedded":
        print(f"stopping the embedded PostgreSQL in {DEFAULT_DATA_DIR} ...")
        stop_embedded_postgres(DEFAULT_DATA_DIR)
        print("stopped")
        return
    url = resolve_database_url(load_settings(DatabaseSettings))
    if args.command == "url":
        print(_shown(url))
    elif args.command == "roles":
        for line in await _grant_roles(url):
            print(line)
    elif args.command == "prune-request-logs":
        await _prune(url, args.older_than, args.batch)
    elif args.command == "current":
        print(await migrate.current_revision(url) or "none (never migrated)")
    elif args.command == "upgrade":
        print(f"upgrading {_shown(url)} to {args.revision} ...")
        created = await migrate.upgrade(url, args.revision)
        print(f"done; now at {await migrate.current_revision(url)}")
        for name in created:
            print(f"created partition {name}")
    else:
        print(f"downgrading {_shown(url)} to {args.revision} ...")
        await migrate.downgrade(url, args.revision)
        print(f"done; now at {await migrate.current_revision(url) or 'base (empty)'}")


async def _grant_roles(url: str) -> list[str]:
    services = [role.removeprefix("sift_") for role in roles.ROLES]
    passwords = read_passwords(services, "SIFT_DB_PASSWORD_{}", None)
    connection = await asyncpg.connect(
        make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        return await roles.grant_roles(connection, {f"sift_{s}": p for s, p in passwords.items()})
    finally:
        await connection.close()


async def _prune(url: str, older_than: timedelta, batch: int) -> None:
    connection = await asyncpg.connect(
        make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        pruned = await retention.prune_request_logs(
            connection, older_than, batch=batch, progress=lambda n: print(f"  {n} deleted ...")
        )
    finally:
        await connection.close()
    for name in pruned.created:
        print(f"created partition {name}")
    for name in pruned.dropped:
        print(f"dropped partition {name}")
    print(
        f"dropped {len(pruned.dropped)} partitions and deleted {pruned.deleted} request logs "
        f"created before {pruned.cutoff.isoformat()}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Alembic reports each revision it runs through logging; show those lines as progress.
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("alembic.runtime.migration").setLevel(logging.INFO)
    try:
        asyncio.run(_run(args))
    except ConfigError as exc:
        print(f"sift-db: {exc}", file=sys.stderr)
        return 2
    except (CommandError, SQLAlchemyError, asyncpg.PostgresError, OSError) as exc:
        # Expected operational failures get one line; anything else is a bug and crashes loudly.
        print(f"sift-db: {args.command} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
