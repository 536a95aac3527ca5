"""The evaluation's table (for people) and JSON (for the record: date, machine, command)."""

import os
import platform
import sys
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

ROWS = (
    ("sentiment_accuracy", "sentiment accuracy"),
    ("sentiment_macro_f1", "sentiment macro-F1"),
    ("direction_agreement", "score direction agreement"),
    ("entity_precision", "entity precision"),
    ("entity_recall", "entity recall"),
    ("entity_precision_unchecked", "entity precision, model as-is"),
    ("entity_recall_unchecked", "entity recall, model as-is"),
    ("subjects_found", "publisher subjects found"),
    ("schema_valid_first", "schema-valid first time"),
    ("schema_valid_after_repair", "schema-valid after repair"),
    ("llm_calls_per_document", "LLM calls / document"),
    ("prompt_tokens_per_document", "prompt tokens / document"),
    ("completion_tokens_per_document", "completion tokens / document"),
    ("seconds_per_call_mean", "seconds / document (latency)"),
)
COLUMNS = (
    ("all", None), ("en", "language"), ("ko", "language"), ("news", "kind"), ("review", "kind")
)  # fmt: skip


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as info:
            model = next(
                (line.split(":", 1)[1].strip() for line in info if "model name" in line), ""
            )
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": model, "platform": platform.platform()}


def envelope(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": " ".join(["sift eval", *_own_arguments(sys.argv[1:])]),
        **body,
    }


def _own_arguments(argv: list[str]) -> list[str]:
    """The arguments after `sift eval` (`sift` passes the subcommand's name along)."""
    return argv[1:] if argv[:1] == ["eval"] else argv


def _cell(metrics: dict[str, Any] | None, key: str) -> str:
    value = (metrics or {}).get(key)
    return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def print_arms(console: Console, arms: list[dict[str, Any]]) -> None:
    for arm in arms:
        table = Table(
            title=f"{arm['name']}  ({arm['documents']} documents, {arm['seconds']:.0f} s)"
        )
        table.add_column("metric")
        for column, _ in COLUMNS:
            table.add_column(column, justify="right")
        metrics = arm["metrics"]
        for key, label in ROWS:
            cells = [
                _cell(metrics["all"] if group is None else metrics[group].get(column), key)
                for column, group in COLUMNS
            ]
            table.add_row(label, *cells)
        console.print(table)
        refused = metrics["all"].get("mentions_refused") or {}
        if refused:
            console.print(f"  model mentions refused (not stored): {refused}")


def print_retrieval(console: Console, results: list[dict[str, Any]]) -> None:
    for result in results:
        title = (f"{result['model']} alone ({result['dimension']}-d, "
                 f"{result['document_texts_per_second']} documents/s)")  # fmt: skip
        table = Table(title=title)
        for column in ("queries", "n", "hit@1", "hit@3"):
            table.add_column(column)
        for group, values in result["groups"].items():
            hits = f"{values['hit@1']:.3f}", f"{values['hit@3']:.3f}"
            table.add_row(group, str(values["queries"]), *hits)
        console.print(table)


def print_search(console: Console, search: dict[str, Any]) -> None:
    table = Table(title="search through the archiver (paraphrase queries)")
    for column in ("queries", "queries n", "hit@1", "hit@3"):
        table.add_column(column, justify="right" if column != "queries" else "left")
    for group, values in search["groups"].items():
        table.add_row(
            group, str(values["queries"]), f"{values['hit@1']:.3f}", f"{values['hit@3']:.3f}"
        )
    console.print(table)
    console.print(
        f"  publisher subjects stored: {search['subjects_found']} of {search['subjects']}"
    )


def markdown(result: dict[str, Any]) -> str:
    """The saved run as the Markdown tables docs/quality.md carries (kept in step by a test)."""
    arms = result["arms"]
    where = f"{result['machine']['cpus']} cores ({result['machine']['cpu'] or 'unknown CPU'})"
    lines = [f"Run of {result['date']} on {where}: `{result['command']}`", ""]
    for scope, group in (("all", None), ("en", "language"), ("ko", "language")) if arms else ():
        lines += [f"**{scope}**", "", "| metric | " + " | ".join(a["name"] for a in arms) + " |"]
        lines.append("| --- |" + " ---: |" * len(arms))
        for key, label in ROWS:
            cells = [
                _cell(a["metrics"]["all"] if group is None else a["metrics"][group].get(scope), key)
                for a in arms
            ]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    if "search" in result:
        search = result["search"]
        lines += [f"**search** (documents as analysed by: {search['arm']})", ""]
        lines += ["| queries | n | hit@1 | hit@3 |", "| --- | ---: | ---: | ---: |"]
        for group, values in search["groups"].items():
            lines.append(
                f"| {group} | {values['queries']} | {values['hit@1']:.3f} | {values['hit@3']:.3f} |"
            )
        lines += ["", f"Publisher subjects found in the store: {search['subjects_found']} of "
                  f"{search['subjects']}.", ""]  # fmt: skip
    for found in result.get("retrieval", []):
        lines += [f"**{found['model']} alone** ({found['dimension']}-d, "
                  f"{found['document_texts_per_second']} documents/s embedded)", ""]  # fmt: skip
        lines += ["| queries | n | hit@1 | hit@3 |", "| --- | ---: | ---: | ---: |"]
        for group, values in found["groups"].items():
            lines.append(
                f"| {group} | {values['queries']} | {values['hit@1']:.3f} | {values['hit@3']:.3f} |"
            )
        lines.append("")
    return "\n".join(lines)
