"""`sift doctor`: is anything wrong with this Sift right now, and what fixes it.

Every service's readiness; the queues (depth, consumers, dead letters and their top reasons);
the vLLM engines (running and waiting requests, KV cache) and the gateway's breakers; disk,
memory and GPUs; error rate and p50/p95 latency per model profile over the last hour. Each
finding is ok, warn, fail or skip, and a warn or fail names the command that fixes or
diagnoses it. docs/doctor.md says what each check reads and where its lines are.

Exit codes: 0 when nothing fails (warnings and skips included), 1 when any finding fails,
2 when the doctor's own settings are wrong (a malformed URL variable).
"""

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from sift_common.errors import ConfigError
from sift_common.ops.doctor_config import load_config
from sift_common.ops.doctor_model import AREAS, DoctorReport, report
from sift_common.ops.doctor_run import run_checks

EXIT_SETTINGS = 2
STYLES = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


def doctor_command(
    as_json: Annotated[bool, typer.Option("--json", help="print the findings as JSON")] = False,
) -> None:
    """Check every part of a running Sift; exit 1 when something needs a person."""
    try:
        config = load_config()
    except ConfigError as exc:
        typer.echo(f"sift doctor: {exc}", err=True)
        raise typer.Exit(EXIT_SETTINGS) from exc
    result = report(asyncio.run(run_checks(config, datetime.now(UTC))))
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
    else:
        render(result, Console())
    raise typer.Exit(result.exit_code)


def render(result: DoctorReport, console: Console) -> None:
    """One table, a section per area, each finding's fix under its line."""
    table = Table(title="sift doctor", show_lines=False, expand=True)
    table.add_column("area", style="bold", no_wrap=True)
    table.add_column("check", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("what / fix", overflow="fold", ratio=3)
    for area in AREAS:
        rows = [finding for finding in result.findings if finding.area == area]
        for index, finding in enumerate(rows):
            detail = Text(finding.what)
            if finding.fix:
                detail.append(f"\n→ {finding.fix}", style="cyan")
            status = Text(finding.status, style=STYLES[finding.status])
            table.add_row(area if index == 0 else "", finding.name, status, detail)
        if rows:
            table.add_section()
    console.print(table)
    verdict = "something needs a person" if result.exit_code else "nothing needs a person"
    console.print(Text(f"{result.status}: {verdict}", style=STYLES[result.status]))
