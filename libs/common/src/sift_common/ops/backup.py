"""`sift backup` / `sift restore`: being built."""

import typer


def backup_command() -> None:
    """Dump the store (being built)."""
    raise typer.Exit(2)


def restore_command() -> None:
    """Restore the store from a dump (being built)."""
    raise typer.Exit(2)
