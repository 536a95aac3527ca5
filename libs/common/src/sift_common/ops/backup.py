"""`sift backup` / `sift restore`: the store as a pg_dump custom-format archive, with retention.

    sift backup  [--dir DIR] [--keep N]   dump SIFT_DATABASE_URL (or the embedded server) into
                                          DIR/sift-<UTC time>.dump, then keep the newest N
    sift restore DUMP --yes               replace that database's contents with the dump's

Exit 1 when a dump or restore failed or was refused (no --yes, not a dump); 2 when a setting
is wrong or the database or the client programs cannot be used. docs/maintenance.md says when
to run them and how to restore.
"""

import asyncio
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn

import asyncpg
import typer

from sift_common.errors import ConfigError
from sift_common.ops import backup_files
from sift_common.ops.backup_pg import (
    BackupError,
    PgTools,
    described,
    libpq_environment,
    run_tool,
    tools_for,
)
from sift_common.ops.backup_revision import revision_advice
from sift_common.ops.backup_tables import dump_tables, refuse_extra_tables, tables_only_in_target
from sift_common.settings import DatabaseSettings, load_settings
from sift_common.store.engine import resolve_database_url


def _store_url() -> str:
    return resolve_database_url(load_settings(DatabaseSettings))


def _fail(command: str, message: str, code: int) -> NoReturn:
    typer.echo(f"sift {command}: {message}", err=True)
    raise typer.Exit(code)


def _prepare(command: str) -> tuple[str, PgTools]:
    """The store's URL and client programs that can talk to it, or exit 2 saying why not."""
    try:
        url = _store_url()
        return url, asyncio.run(tools_for(url))
    except ConfigError as exc:
        _fail(command, str(exc), 2)
    except (asyncpg.PostgresError, OSError) as exc:
        _fail(command, f"cannot reach the database: {type(exc).__name__}: {exc}", 2)


def _dump(tools: PgTools, url: str, directory: Path) -> Path:
    """pg_dump into a partial file, renamed to the backup's name once pg_dump succeeded."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / backup_files.backup_name(datetime.now(UTC))
    partial = directory / backup_files.partial_name(final.name)
    command = [str(tools.pg_dump), "--format=custom", "--no-password", f"--file={partial}"]
    try:
        run = run_tool(command, libpq_environment(url))
        if run.returncode != 0:
            raise BackupError(f"pg_dump failed (exit {run.returncode}): {run.stderr.strip()}")
        os.replace(partial, final)
    except BaseException:  # interrupted too: no partial dump stays behind
        partial.unlink(missing_ok=True)
        raise
    return final


def _apply_retention(target: Path, keep: int, written: Path) -> None:
    old = backup_files.to_delete(backup_files.backups_in(target), keep, written)
    try:
        for path in old:
            path.unlink()
            typer.echo(f"removed {path} (keeping the newest {keep})")
    except OSError as exc:
        _fail("backup", f"the dump was written, but retention failed: {exc}", 1)
    if not old:
        typer.echo(f"nothing to remove ({len(backup_files.backups_in(target))} of {keep} kept)")


def backup_command(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="where dumps go (default: $SIFT_BACKUP_DIR or ./backups)"),
    ] = None,
    keep: Annotated[
        int, typer.Option(min=1, help="dumps to keep in DIR, this one included")
    ] = backup_files.DEFAULT_KEEP,
) -> None:
    """Dump the store (pg_dump custom format) into DIR and delete all but the newest KEEP."""
    target = directory or Path(
        os.environ.get(backup_files.BACKUP_DIR_VARIABLE) or backup_files.DEFAULT_BACKUP_DIR
    )
    url, tools = _prepare("backup")
    started = time.monotonic()
    try:
        written = _dump(tools, url, target)
    except (BackupError, OSError) as exc:
        _fail("backup", f"{described(url)}: {exc}", 1)
    size = backup_files.human_size(written.stat().st_size)
    typer.echo(
        f"wrote {written} ({size} in {time.monotonic() - started:.1f} s, "
        f"pg_dump {tools.major}, from {described(url)})"
    )
    _apply_retention(target, keep, written)


def _check_archive(tools: PgTools, dump: Path) -> str:
    """pg_restore --list reads the archive's table of contents (returned): it fails on anything
    that is not a custom-format dump, or one written by a newer pg_dump than this pg_restore."""
    run = run_tool([str(tools.pg_restore), "--list", str(dump)])
    if run.returncode != 0:
        raise BackupError(
            f"{dump} is not a pg_dump custom-format archive that pg_restore {tools.major} "
            f"can read: {run.stderr.strip()}"
        )
    return run.stdout


def _restore(tools: PgTools, url: str, dump: Path) -> None:
    env = libpq_environment(url)
    if "PGDATABASE" not in env:
        raise ConfigError("SIFT_DATABASE_URL names no database to restore into")
    # One transaction: a restore that fails half-way leaves the database as it was.
    command = [
        str(tools.pg_restore),
        "--clean",
        "--if-exists",
        "--no-owner",
        "--single-transaction",
        "--exit-on-error",
        "--no-password",
        f"--dbname={env['PGDATABASE']}",
        str(dump),
    ]
    run = run_tool(command, env)
    if run.returncode != 0:
        hint = ""
        if "role" in run.stderr and "does not exist" in run.stderr:
            hint = " (create the roles first: `sift-db roles`)"
        raise BackupError(
            f"pg_restore failed (exit {run.returncode}), nothing was changed{hint}: "
            f"{run.stderr.strip()}"
        )


def restore_command(
    dump: Annotated[Path, typer.Argument(help="a dump written by `sift backup`")],
    yes: Annotated[
        bool, typer.Option("--yes", help="replace the database's contents (required)")
    ] = False,
) -> None:
    """Replace the store's contents with DUMP (pg_restore --clean), then check its revision."""
    if not dump.is_file():
        _fail("restore", f"DUMP: no such file: {dump}", 1)
    url, tools = _prepare("restore")
    if not yes:
        _fail(
            "restore",
            f"this replaces every table of {described(url)} with the contents of {dump}; "
            "stop the services and run again with --yes",
            1,
        )
    started = time.monotonic()
    try:
        toc = _check_archive(tools, dump)
        refuse_extra_tables(asyncio.run(tables_only_in_target(url, dump_tables(toc))))
        _restore(tools, url, dump)
        advice = asyncio.run(revision_advice(url))
    except ConfigError as exc:
        _fail("restore", str(exc), 2)
    except (BackupError, OSError, asyncpg.PostgresError) as exc:
        _fail("restore", str(exc), 1)
    typer.echo(f"restored {dump} into {described(url)} in {time.monotonic() - started:.1f} s")
    typer.echo(advice)
