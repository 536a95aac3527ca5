"""`sift`: the analysts' command line over the archiver's query API (HTTP).

Tables for people, `--json` for scripts. The API answers errors as `{"error": {...}}`; the CLI
prints the message (naming the field) and exits 1, or 2 when the API cannot be reached or says
a dependency is down (503: the gateway, the database or the broker; it says what to start).
"""

import json
import os
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Query Sift's store: scores, rankings, search, documents, entities.")
out = Console()
err = Console(stderr=True)


@dataclass
class Context:
    url: str
    api_key: str


JsonOpt = Annotated[bool, typer.Option("--json", help="print the API's JSON")]


@app.callback()
def main(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(help="query API, or SIFT_ARCHIVER_URL")] = None,
    api_key: Annotated[str | None, typer.Option(help="API key, or SIFT_API_KEY")] = None,
) -> None:
    ctx.obj = Context(
        url or os.environ.get("SIFT_ARCHIVER_URL", "http://127.0.0.1:8130"),
        api_key or os.environ.get("SIFT_API_KEY", "dev-key"),
    )


def _get(ctx: typer.Context, path: str, params: dict[str, Any]) -> Any:
    state: Context = ctx.obj
    query = {key: value for key, value in params.items() if value is not None}
    try:
        response = httpx.get(
            f"{state.url.rstrip('/')}{path}",
            params=query,
            headers={"X-API-Key": state.api_key},
            timeout=60,
        )
    except httpx.TransportError as exc:
        err.print(f"[red]cannot reach the query API at {state.url}: {exc}[/red]")
        raise typer.Exit(2) from exc
    if response.status_code != 200:
        _fail(response)
    return response.json()


# What to start when the API says a dependency is down (503, error type `<name>_unavailable`).
START_HINTS = {
    "gateway_unavailable": "start it with `make gateway` (and `make vllm-up`)",
    "database_unavailable": "start PostgreSQL (`make up`, or restart the archiver, which "
    "starts its embedded server when SIFT_DATABASE_URL is unset)",
    "broker_unavailable": "start RabbitMQ with `make up`",
}


def _fail(response: httpx.Response) -> NoReturn:
    """Print the API's error and exit: 2 when a dependency is down (saying what to start),
    1 otherwise."""
    try:
        error = response.json()["error"]
        message, kind = str(error["message"]), error.get("type")
    except (ValueError, KeyError, TypeError):
        message, kind = response.text[:300], None
    hint = START_HINTS.get(kind) if response.status_code == 503 else None
    if hint is not None:
        err.print(f"{message}: {hint}, then try again", style="red", markup=False)
        raise typer.Exit(2)
    err.print(f"[red]error {response.status_code}: {message}[/red]")
    raise typer.Exit(1)


def _emit(as_json: bool, data: Any, title: str, columns: list[str]) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for item in data["items"] if isinstance(data, dict) and "items" in data else data:
        table.add_row(*[_cell(item.get(column)) for column in columns])
    out.print(table)
    if isinstance(data, dict) and data.get("next_cursor"):
        out.print(f"more: --cursor {data['next_cursor']}")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


@app.command()
def scores(
    ctx: typer.Context,
    entity: Annotated[str, typer.Argument(help="entity key, kind:name (e.g. company:acme)")],
    bucket: str = "day",
    since: str | None = None,
    until: str | None = None,
    source: str | None = None,
    kind: str | None = None,
    language: str | None = None,
    cursor: str | None = None,
    limit: int = 500,
    as_json: JsonOpt = False,
) -> None:
    """Score of an entity over time, per bucket."""
    params = {"bucket": bucket, "since": since, "until": until, "source": source, "kind": kind,
              "language": language, "cursor": cursor, "limit": limit}  # fmt: skip
    data = _get(ctx, f"/v1/entities/{entity}/scores", params)
    _emit(as_json, data, f"scores of {entity}", ["bucket_start", "count", "mean", "min", "max"])


@app.command()
def top(
    ctx: typer.Context,
    bottom: Annotated[bool, typer.Option("--bottom", help="lowest mean scores")] = False,
    window_days: int = 30,
    limit: int = 10,
    kind: str | None = None,
    min_documents: Annotated[int, typer.Option(help="ignore entities with fewer")] = 1,
    cursor: str | None = None,
    as_json: JsonOpt = False,
) -> None:
    """Entities with the highest (or --bottom lowest) mean score over a window: scores are
    directional (0-100, 50 neutral), so top is best and bottom worst."""
    direction = "bottom" if bottom else "top"
    params = {"direction": direction, "window_days": window_days, "limit": limit, "kind": kind,
              "min_documents": min_documents, "cursor": cursor}  # fmt: skip
    data = _get(ctx, "/v1/rankings", params)
    columns = ["entity_key", "name", "ticker", "mean_score", "documents"]
    _emit(as_json, data, f"{direction} entities, last {window_days} days", columns)


@app.command()
def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="text to search for")],
    k: int = 10,
    kind: str | None = None,
    source: str | None = None,
    language: str | None = None,
    since: str | None = None,
    until: str | None = None,
    as_json: JsonOpt = False,
) -> None:
    """Documents nearest in meaning to a text."""
    params = {"q": query, "k": k, "kind": kind, "source": source, "language": language,
              "since": since, "until": until}  # fmt: skip
    data = _get(ctx, "/v1/search", params)
    _emit(as_json, data, f"nearest to {query!r}", ["score", "title", "source", "document_id"])


@app.command()
def doc(
    ctx: typer.Context,
    document_id: Annotated[str, typer.Argument(help="64-hex document id")],
    as_json: JsonOpt = False,
) -> None:
    """A document and its analysis history."""
    data = _get(ctx, f"/v1/documents/{document_id}", {})
    if as_json:
        _emit(True, data, "", [])
        return
    out.print(f"[bold]{data.get('title') or '(untitled)'}[/bold]  {data['source']}  {data['id']}")
    facts = {key: data.get(key) for key in ("kind", "language", "published_at", "embedded_chunks")}
    out.print("  ".join(f"{key} {value}" for key, value in facts.items()))
    columns = ["created_at", "analysis_type", "prompt_version", "model", "score"]
    _emit(False, data["analyses"], "analyses", columns)
    _emit(False, data["entities"], "entities", ["entity_key", "ticker", "score"])


@app.command()
def entity(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="entity key, kind:name")],
    as_json: JsonOpt = False,
) -> None:
    """An entity, its latest digest and digest history."""
    data = _get(ctx, f"/v1/entities/{name}", {})
    if as_json:
        _emit(True, data, "", [])
        return
    out.print(f"[bold]{data['name']}[/bold] ({data['entity_key']}), {data['documents']} documents")
    latest = data.get("latest_digest")
    out.print(f"latest digest: {latest['summary']}" if latest else "no digest yet")
    _emit(False, data["digests"], "digests", ["created_at", "digest_type", "score", "summary"])


@app.command()
def status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Queue depths, DLQ sizes and store row counts."""
    data = _get(ctx, "/v1/status", {})
    if as_json:
        _emit(True, data, "", [])
        return
    queues = [{"queue": name, **depth} for name, depth in data["queues"].items()]
    _emit(False, queues, "queues", ["queue", "messages", "dlq"])
    store = [{"table": table, "rows": rows} for table, rows in data["store"].items()]
    _emit(False, store, "store", ["table", "rows"])


def _add_plugin_commands() -> None:
    """Subcommands other installed Sift packages register in the `sift.commands` entry-point
    group (e.g. the analyzer's `sift eval`): one command line, no import between services."""
    for point in entry_points(group="sift.commands"):
        if point.name not in {command.name for command in app.registered_commands}:
            plugin = point.load()
            if isinstance(plugin, typer.Typer):  # a group of subcommands: `sift dlq list`
                app.add_typer(plugin, name=point.name)
            else:
                app.command(point.name)(plugin)


_add_plugin_commands()
