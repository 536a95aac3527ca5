"""`sift dlq`: see, replay or purge the dead letters of every consumer queue.

    sift dlq list   [--queue Q] [--reason TEXT] [--kind K] [--older-than 1h] [--id ID] [--json]
    sift dlq show   MESSAGE_ID [--queue Q] [--json]
    sift dlq replay [filters] [--dry-run] [--json]   back to the work queue, moved not copied
    sift dlq purge  [filters] --yes [--json]         deleted for good

The broker and namespace come from SIFT_RABBIT_URL and SIFT_NAMESPACE. Reads put every message
back (see `dlq_broker`). Exit 1 on a refusal, a message not found or a replay left undone; 2 when
the settings are wrong or the broker cannot be reached.

Registered in `sift` through sift-common's `sift.commands` entry point. Typer and Rich come with
the `sift` command line (sift-archiver), the only thing that loads this module.
"""

import asyncio
import json
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import typer
from aio_pika.exceptions import AMQPConnectionError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from sift_common.errors import ConfigError
from sift_common.messaging import dlq_broker
from sift_common.messaging.dlq import (
    BROKER_KIND,
    Selection,
    format_age,
    parse_duration,
    render_body,
    select_queues,
    top_reasons,
)
from sift_common.messaging.dlq_broker import QueueReport
from sift_common.messaging.failures import DeadLetterKind
from sift_common.messaging.topology import ConsumerQueue, Topology
from sift_common.settings import RabbitSettings, load_settings

app = typer.Typer(
    name="dlq",
    help="Dead letters: list, show, replay to their work queue, or purge.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)
T = TypeVar("T")


class Kind(StrEnum):
    invalid = DeadLetterKind.INVALID.value
    retries_exhausted = DeadLetterKind.RETRIES_EXHAUSTED.value
    bug = DeadLetterKind.BUG.value
    broker = BROKER_KIND  # dead-lettered by the broker: delivery limit exceeded


QueueOpt = Annotated[
    list[str] | None,
    typer.Option("--queue", "-q", help="consumer queue, e.g. analyzer.documents (repeatable)"),
]
ReasonOpt = Annotated[str | None, typer.Option(help="reason contains this (any case)")]
KindOpt = Annotated[Kind | None, typer.Option(help="how it was dead-lettered")]
OlderOpt = Annotated[str | None, typer.Option(help="dead-lettered at least this long ago: 1h")]
IdOpt = Annotated[
    list[str] | None, typer.Option("--id", help="message id or document id (repeatable)")
]
LimitOpt = Annotated[int, typer.Option(min=1, help="read at most this many per DLQ")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


@dataclass(frozen=True)
class Target:
    rabbit_url: str
    topology: Topology
    specs: list[ConsumerQueue]


@app.command("list")
def list_(
    queue: QueueOpt = None,
    reason: ReasonOpt = None,
    kind: KindOpt = None,
    older_than: OlderOpt = None,
    message_id: IdOpt = None,
    limit: LimitOpt = 10_000,
    as_json: JsonOpt = False,
) -> None:
    """Each DLQ's count and top reasons, and the dead letters selected."""
    target, selection = _target(queue), _selection(reason, kind, older_than, message_id)
    now = datetime.now(UTC)
    reports = _run(dlq_broker.inspect(*_where(target), selection, limit=limit, now=now))
    if as_json:
        letters = [letter.as_json(now) for report in reports for letter in report.matched]
        _print_json({"queues": [_queue_json(report) for report in reports], "messages": letters})
        return
    _print_queues(reports)
    _print_letters(reports, now)


@app.command()
def show(
    message_id: Annotated[str, typer.Argument(help="message id, or a document id")],
    queue: QueueOpt = None,
    limit: LimitOpt = 10_000,
    as_json: JsonOpt = False,
) -> None:
    """One dead letter's properties, headers and body."""
    target = _target(queue)
    found = _run(dlq_broker.find(*_where(target), message_id, limit=limit))
    if found is None:
        err.print(f"no dead letter {message_id!r} in {len(target.specs)} DLQs", markup=False)
        raise typer.Exit(1)
    now = datetime.now(UTC)
    if as_json:
        try:
            body: Any = json.loads(found.body)
        except (ValueError, UnicodeDecodeError):
            body = found.body.decode(errors="replace")
        summary, properties, headers = found.letter.as_json(now), found.properties, found.headers
        _print_json({**summary, "properties": properties, "headers": headers, "body": body})
        return
    letter = found.letter
    lines = [
        f"{letter.dlq}  message {letter.message_id}  document {letter.correlation_id}",
        f"kind {letter.kind}  age {format_age(letter.age(now))}  retries {letter.retry_count}"
        f"  replayed {letter.replayed}  {letter.body_size} bytes  back to {letter.original_queue}",
        f"reason: {letter.reason}",
        "properties: " + json.dumps(found.properties, indent=2, ensure_ascii=False),
        "headers: " + json.dumps(found.headers, indent=2, ensure_ascii=False),
        "body:",
        render_body(found.body),
    ]
    typer.echo("\n".join(lines))


@app.command()
def replay(
    queue: QueueOpt = None,
    reason: ReasonOpt = None,
    kind: KindOpt = None,
    older_than: OlderOpt = None,
    message_id: IdOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only say what would move")] = False,
    limit: LimitOpt = 10_000,
    as_json: JsonOpt = False,
) -> None:
    """Move the selected dead letters back to their work queues, retry count reset."""
    target, selection = _target(queue), _selection(reason, kind, older_than, message_id)
    now = datetime.now(UTC)
    run = dlq_broker.replay(*_where(target), selection, limit=limit, now=now, dry_run=dry_run)
    reports = _run(run)
    _print_outcome("would move" if dry_run else "moved", reports, as_json, moved=True)
    if any(report.failed for report in reports):
        raise typer.Exit(1)


@app.command()
def purge(
    queue: QueueOpt = None,
    reason: ReasonOpt = None,
    kind: KindOpt = None,
    older_than: OlderOpt = None,
    message_id: IdOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="really delete them")] = False,
    limit: LimitOpt = 10_000,
    as_json: JsonOpt = False,
) -> None:
    """Delete the selected dead letters for good (needs --yes)."""
    if not yes:
        err.print("purge deletes dead letters for good: add --yes (first look at them with "
                  "`sift dlq list` and the same filters)", markup=False)  # fmt: skip
        raise typer.Exit(1)
    target, selection = _target(queue), _selection(reason, kind, older_than, message_id)
    now = datetime.now(UTC)
    reports = _run(dlq_broker.purge(*_where(target), selection, limit=limit, now=now))
    _print_outcome("purged", reports, as_json, moved=False)


def _target(queues: list[str] | None) -> Target:
    try:
        settings = load_settings(RabbitSettings)
    except ConfigError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(2) from exc
    topology = Topology(settings.namespace)
    try:
        specs = select_queues(topology, queues or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--queue") from exc
    return Target(str(settings.rabbit_url), topology, specs)


def _where(target: Target) -> tuple[str, Topology, list[ConsumerQueue]]:
    return target.rabbit_url, target.topology, target.specs


def _selection(
    reason: str | None, kind: Kind | None, older_than: str | None, ids: list[str] | None
) -> Selection:
    try:
        age = parse_duration(older_than) if older_than is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--older-than") from exc
    return Selection(reason, kind.value if kind else None, age, frozenset(ids or ()))


def _run(work: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(work)
    except (AMQPConnectionError, OSError) as exc:
        err.print(f"cannot reach RabbitMQ: {exc!r}", markup=False)
        raise typer.Exit(2) from exc


def _queue_json(report: QueueReport) -> dict[str, Any]:
    return {
        "queue": report.queue,
        "dlq": report.dlq,
        "messages": report.depth,
        "read": report.scanned,
        "selected": len(report.matched),
        "top_reasons": [
            {"reason": reason, "count": count} for reason, count in top_reasons(report.matched)
        ],
    }


def _print_queues(reports: list[QueueReport]) -> None:
    table = Table(title="dead-letter queues")
    for column in ("queue", "messages", "read", "selected", "top reasons"):
        table.add_column(column)
    for report in reports:
        depth = "not declared" if report.depth is None else str(report.depth)
        reasons = "\n".join(f"{n}× {_short(r, 90)}" for r, n in top_reasons(report.matched))
        row = (report.queue, depth, str(report.scanned), str(len(report.matched)), reasons)
        table.add_row(*(Text(cell) for cell in row))
    out.print(table)


def _print_letters(reports: list[QueueReport], now: datetime) -> None:
    if not any(report.matched for report in reports):
        out.print("no dead letters selected")
        return
    table = Table(title="dead letters")
    for column in ("queue", "message id", "document", "kind", "age", "retries", "bytes"):
        table.add_column(column, no_wrap=True)
    table.add_column("reason")
    for report in reports:
        for letter in report.matched:
            ids = (letter.message_id or "-", _short(letter.correlation_id or "-", 13))
            age, retries = format_age(letter.age(now)), str(letter.retry_count)
            facts = (letter.kind, age, retries, str(letter.body_size), _short(letter.reason, 160))
            row = (report.queue, *ids, *facts)
            table.add_row(*(Text(cell) for cell in row))
    out.print(table)


def _print_outcome(done: str, reports: list[QueueReport], as_json: bool, *, moved: bool) -> None:
    count = sum(len(report.matched) for report in reports)
    if as_json:
        queues = [{"queue": r.queue, "dlq": r.dlq, "target": r.work_queue if moved else None,
                   "count": len(r.matched), "message_ids": [m.message_id for m in r.matched],
                   "failed": [{"message_id": m.message_id, "why": why} for m, why in r.failed]}
                  for r in reports]  # fmt: skip
        _print_json({"action": done, "count": count, "queues": queues})
        return
    lines = [f"{done} {count} dead letter{'' if count == 1 else 's'}"]
    for report in (r for r in reports if r.matched):
        ids = ", ".join(letter.message_id or "-" for letter in report.matched)
        where = f"{report.dlq} → {report.work_queue}" if moved else report.dlq
        lines.append(f"  {where}: {len(report.matched)} ({ids})")
    for report in reports:
        lines += [f"  left in {report.dlq}: {m.message_id} ({why})" for m, why in report.failed]
    typer.echo("\n".join(lines))


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
