"""`sift doctor`: being built."""

import typer


def doctor_command() -> None:
    """Check every part of a running Sift (being built)."""
    raise typer.Exit(2)
