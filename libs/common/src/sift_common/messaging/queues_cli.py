"""`sift queues`: see which queues an older Sift declared differently, and move them over.

    sift queues check              the queues whose arguments this version would change
    sift queues migrate --yes      re-declare them, keeping every message (services stopped)

The broker and namespace come from SIFT_RABBIT_URL and SIFT_NAMESPACE; the analyzer's retry
ladder, whose queue names carry its delays, from SIFT_ANALYZER_RETRY_DELAYS_MS when it is set
(as the analyzer reads it). Exit 1 when `check` finds queues to migrate or `migrate` is refused;
2 when the settings are wrong or the broker cannot be reached.
"""

import asyncio
import os
from collections.abc import Coroutine
from dataclasses import replace
from typing import Annotated, Any, TypeVar

import typer
from aio_pika.exceptions import AMQPConnectionError

from sift_common.errors import ConfigError
from sift_common.messaging.queue_migration import migrate_queues, outdated_queues
from sift_common.messaging.topology import (
    ANALYZER_DOCUMENTS,
    ANALYZER_ENTITY_REFRESH,
    Topology,
)
from sift_common.settings import RabbitSettings, load_settings

app = typer.Typer(
    name="queues",
    help="Queue arguments: check them against this version, migrate them keeping messages.",
    no_args_is_help=True,
)
T = TypeVar("T")
ANALYZER_DELAYS_VARIABLE = "SIFT_ANALYZER_RETRY_DELAYS_MS"


@app.command()
def check() -> None:
    """List the queues that `sift queues migrate` would re-declare."""
    rabbit_url, topologies = broker_settings()
    outdated = sorted({q for t in topologies for q in on_broker(outdated_queues(rabbit_url, t))})
    for name in outdated:
        typer.echo(name)
    if outdated:
        typer.echo(f"{len(outdated)} queue(s) to migrate: stop the services, then "
                   "`sift queues migrate --yes`", err=True)  # fmt: skip
        raise typer.Exit(1)
    typer.echo("every queue has this version's arguments", err=True)


@app.command()
def migrate(
    yes: Annotated[bool, typer.Option("--yes", help="the services are stopped: go")] = False,
) -> None:
    """Re-declare outdated queues with this version's arguments, keeping every message."""
    if not yes:
        typer.echo("stop every Sift service first (a consumer attached refuses the migration), "
                   "then run again with --yes", err=True)  # fmt: skip
        raise typer.Exit(1)
    rabbit_url, topologies = broker_settings()
    for topology in topologies:
        try:
            done = on_broker(migrate_queues(rabbit_url, topology))
        except ConfigError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from exc
        for migration in done:
            typer.echo(f"{migration.queue}: re-declared, {migration.moved} message(s) kept")
    typer.echo("done: the services can start", err=True)


def broker_settings() -> tuple[str, list[Topology]]:
    """SIFT_RABBIT_URL and the topologies to act on (the analyzer's own ladder too); exit 2
    when the settings are wrong."""
    try:
        settings = load_settings(RabbitSettings)
        analyzer_ladder = _analyzer_delays()
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    base = Topology(settings.namespace)
    topologies = [base]
    if analyzer_ladder is not None:
        specs = (ANALYZER_DOCUMENTS, ANALYZER_ENTITY_REFRESH)
        ladders = tuple(replace(spec, retry_delays_ms=analyzer_ladder) for spec in specs)
        topologies.append(Topology(settings.namespace, ladders))
    return str(settings.rabbit_url), topologies


def _analyzer_delays() -> tuple[int, ...] | None:
    value = os.environ.get(ANALYZER_DELAYS_VARIABLE)
    if not value:
        return None
    try:
        return tuple(int(part) for part in value.split(","))
    except ValueError:
        raise ConfigError(
            f"{ANALYZER_DELAYS_VARIABLE}: expected comma-separated integers"
        ) from None


def on_broker(work: Coroutine[Any, Any, T]) -> T:
    """Run `work`; exit 2 when the broker cannot be reached."""
    try:
        return asyncio.run(work)
    except (AMQPConnectionError, OSError) as exc:
        typer.echo(f"cannot reach RabbitMQ: {exc!r}", err=True)
        raise typer.Exit(2) from exc
