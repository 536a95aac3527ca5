"""`sift report`: being built."""

import typer


def report_command() -> None:
    """What the pipeline and the LLMs did over a window (being built)."""
    raise typer.Exit(2)
