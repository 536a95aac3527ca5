"""`sift report`: what the pipeline and the LLMs did over a window (`--since 24h`).

Read-only. The gateway's request logs and the store come from PostgreSQL (SIFT_DATABASE_URL,
one query per section); the dead letters from RabbitMQ (SIFT_RABBIT_URL, SIFT_NAMESPACE), read
the way `sift dlq list` reads them and put back. Exit 2 when the options are wrong or the store
cannot be read; an unreachable broker is reported inside the report (exit 0).
"""

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NoReturn

import asyncpg
import typer
from rich.console import Console
from sqlalchemy.engine import make_url

from sift_common.errors import ConfigError
from sift_common.ops import report_ab, report_queries
from sift_common.ops.report_dlq import dead_letters
from sift_common.ops.report_render import print_tables, to_csv
from sift_common.settings import DatabaseSettings, load_settings
from sift_common.store.engine import resolve_database_url

_SINCE = re.compile(r"([1-9][0-9]*)([mhd])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str) -> timedelta:
    """`30m`, `24h`, `7d` → a timedelta; anything else a BadParameter naming --since."""
    match = _SINCE.fullmatch(text.strip())
    if match is None:
        raise typer.BadParameter(
            f"{text!r} is not a window: use minutes, hours or days, e.g. 30m, 24h, 7d",
            param_hint="--since",
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def report_command(
    since: Annotated[str, typer.Option(help="the window: 30m, 24h, 7d")] = "24h",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="print CSV (long format)")] = False,
    dlq_limit: Annotated[
        int, typer.Option(min=1, help="read at most this many dead letters per DLQ")
    ] = 10_000,
) -> None:
    """What the pipeline and the LLMs did over the last --since (30m, 24h, 7d).

    LLM requests (the gateway's request logs), per model profile, per caller (the API key's name;
    "(no key)" on an open development gateway) and in total: requests, errors (status >= 400, or a
    stream that broke after it began), prompt and completion tokens, and latency and TTFT
    percentiles (p50/p95/p99, in ms, over answered requests; TTFT n: how many have a first-token
    time). Errors by kind: refused, not_found, bad_request, rate_limited, client_went_away,
    unavailable, timeout, upstream_error, stream_interrupted, with their share of all requests.

    Documents, as the store knows them: collected = stored documents whose collection time is in
    the window; archived = documents the archiver stored in the window; analysed = documents given
    an analysis in the window (analyses = the analyses themselves); embedded = documents archived
    in the window that have embeddings; digests = entity digests written in the window. A document
    dropped before the store (a duplicate, a dead letter) is not among them.

    A/B tests: every alias split between model profiles (`sift model split`) at some time in
    the window, arm by arm, over the part of the test inside the window: requests, errors,
    share, latency p50/p95, tokens, repair turns; and the analyses each arm produced: how
    many, the share valid at the first try, the score's mean, p10, p50 and p90.

    Dead letters (RabbitMQ): each DLQ's depth now, how many were dead-lettered in the window, and
    their top reasons. The messages are read and put back, never consumed. An unreachable broker
    is said in the report; the rest still prints."""
    if as_json and as_csv:
        raise typer.BadParameter("choose one of --json and --csv", param_hint="--csv")
    window = parse_since(since)
    now = datetime.now(UTC)
    report = asyncio.run(gather(since, now - window, now, dlq_limit))
    if as_json:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
    elif as_csv:
        typer.echo(to_csv(report), nl=False)
    else:
        print_tables(report, Console())


async def gather(since: str, start: datetime, now: datetime, dlq_limit: int) -> dict[str, Any]:
    """The whole report as one JSON-ready document."""
    store, letters = await asyncio.gather(
        _read_store(start, now), dead_letters(start, now, dlq_limit)
    )
    return {
        "window": {"since": since, "from": start.isoformat(), "to": now.isoformat()},
        **store,
        "dead_letters": letters.as_json(),
    }


async def _read_store(start: datetime, now: datetime) -> dict[str, Any]:
    connection = await _connect()
    try:
        llm = await report_queries.llm_rows(connection, start)
        errors = await report_queries.error_rows(connection, start)
        pipeline = await report_queries.pipeline_counts(connection, start)
        ab_tests = await report_ab.ab_tests(connection, start, now)
    except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError) as exc:
        _fail(f"the store is not at the latest revision ({exc}); run `sift-db upgrade`")
    finally:
        await connection.close()
    return {"llm": _split(llm), "errors": errors, "pipeline": pipeline, "ab_tests": ab_tests}


async def _connect() -> asyncpg.Connection:
    try:
        url = resolve_database_url(load_settings(DatabaseSettings))
    except ConfigError as exc:
        _fail(str(exc))
    dsn = make_url(url).set(drivername="postgresql")
    try:
        connection: asyncpg.Connection = await asyncpg.connect(
            dsn.render_as_string(hide_password=False), timeout=10
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        shown = dsn.render_as_string(hide_password=True)
        _fail(f"cannot read the store at {shown} (SIFT_DATABASE_URL): {exc}")
    return connection


def _split(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The grouping-sets rows as total / by profile / by caller, each with its error rate."""
    split: dict[str, Any] = {"total": None, "by_profile": [], "by_caller": []}
    for row in rows:
        grouped_by = row.pop("grouped_by")
        row["error_rate"] = round(row["errors"] / row["requests"], 4) if row["requests"] else 0.0
        if grouped_by == "total":
            split["total"] = {**row, "name": "all"}
        else:
            split[f"by_{grouped_by}"].append(row)
    return split


def _fail(message: str) -> NoReturn:
    Console(stderr=True).print(message, markup=False)
    raise typer.Exit(2)
