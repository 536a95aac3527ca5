"""`sift report`'s three shapes of one report (the JSON document `report.gather` builds): Rich
tables for people, the JSON as is, and a long-format CSV (section, group, name, metric, value:
one row per number, so any spreadsheet can pivot it)."""

import csv
import io
from typing import Any

from rich.console import Console
from rich.table import Table

LLM_METRICS = (
    "requests",
    "errors",
    "error_rate",
    "prompt_tokens",
    "completion_tokens",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "ttft_n",
    "ttft_p50",
    "ttft_p95",
    "ttft_p99",
)
NO_CALLER = "(no key)"
AB_COLUMNS = {  # metric → table header, in the order the CSV writes them too
    "weight": "weight %",
    "share": "share",
    "requests": "requests",
    "errors": "errors",
    "error_rate": "error %",
    "latency_p50": "p50 ms",
    "latency_p95": "p95 ms",
    "prompt_tokens": "prompt tok",
    "completion_tokens": "completion tok",
    "repairs": "repairs",
    "analyses": "analyses",
    "repaired": "repaired",
    "valid_first_time": "valid 1st",
    "score_mean": "score mean",
    "score_p10": "p10",
    "score_p50": "p50",
    "score_p90": "p90",
}
AB_RATES = frozenset({"share", "error_rate", "valid_first_time"})


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _llm_table(title: str, rows: list[dict[str, Any]], first: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(first)
    headers = ("requests", "errors", "error %", "prompt tok", "completion tok")
    for header in (*headers, "p50 ms", "p95 ms", "p99 ms", "TTFT n", "TTFT p50", "p95", "p99"):
        table.add_column(header, justify="right")
    for row in rows:
        name = row["name"] if row["name"] is not None else NO_CALLER
        rate = f"{row['error_rate']:.1%}"
        values = [_cell(row[m]) for m in LLM_METRICS]
        table.add_row(name, values[0], values[1], rate, *values[3:])
    return table


def print_tables(report: dict[str, Any], console: Console) -> None:
    window = report["window"]
    console.print(f"Sift report: the last {window['since']} ({window['from']} to {window['to']})")
    llm = report["llm"]
    console.print(_llm_table("LLM requests by model profile", llm["by_profile"], "profile"))
    console.print(_llm_table("LLM requests by caller", llm["by_caller"], "caller"))
    if llm["total"] is not None:
        console.print(_llm_table("LLM requests in total", [llm["total"]], ""))
    errors = Table(title="Errors by kind", title_justify="left")
    for header in ("kind", "status", "requests", "of all requests"):
        errors.add_column(header, justify="left" if header in ("kind", "status") else "right")
    for row in report["errors"]:
        rate = f"{row['rate']:.2%}"
        errors.add_row(row["kind"], row["status_class"], _cell(row["requests"]), rate)
    console.print(errors)
    pipeline = Table(title="Documents", title_justify="left")
    pipeline.add_column("in the store")
    pipeline.add_column("count", justify="right")
    for name, value in report["pipeline"].items():
        pipeline.add_row(name, _cell(value))
    console.print(pipeline)
    for test in report["ab_tests"]:
        console.print(_ab_table(test))
    _print_dead_letters(report["dead_letters"], console)


def _ab_table(test: dict[str, Any]) -> Table:
    ended = "running" if test["ended"] is None else f"{test['ended_by']} {test['ended_on']}"
    table = Table(title=f"A/B test of {test['alias']} ({ended})", title_justify="left")
    table.add_column("arm")
    for header in AB_COLUMNS.values():
        table.add_column(header, justify="right")
    for arm in test["arms"]:
        table.add_row(arm["arm"], *(_ab_cell(metric, arm[metric]) for metric in AB_COLUMNS))
    return table


def _ab_cell(metric: str, value: Any) -> str:
    if metric in AB_RATES and value is not None:
        return f"{value:.1%}"
    return _cell(value)


def _print_dead_letters(section: dict[str, Any], console: Console) -> None:
    if not section["available"]:
        console.print(f"Dead letters: unknown, {section['error']}", markup=False)
        return
    table = Table(title="Dead letters", title_justify="left")
    for header in ("queue", "in the DLQ now", "dead-lettered in the window"):
        table.add_column(header, justify="left" if header == "queue" else "right")
    for queue in section["queues"]:
        table.add_row(queue["queue"], _cell(queue["depth"]), _cell(queue["dead_lettered"]))
    console.print(table)
    if section["undated"]:
        console.print(f"{section['undated']} dead letters carry no time (not counted)")
    reasons = Table(title="Top dead-letter reasons in the window", title_justify="left")
    reasons.add_column("reason")
    reasons.add_column("count", justify="right")
    for reason in section["top_reasons"]:
        reasons.add_row(reason["reason"], _cell(reason["count"]))
    console.print(reasons)


def to_csv(report: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("section", "group", "name", "metric", "value"))
    window = report["window"]
    for key in ("since", "from", "to"):
        writer.writerow(("window", "", "", key, window[key]))
    llm = report["llm"]
    groups = [("total", llm["total"])] if llm["total"] is not None else []
    groups += [("profile", row) for row in llm["by_profile"]]
    groups += [("caller", row) for row in llm["by_caller"]]
    for group, row in groups:
        name = "" if group == "total" else (row["name"] if row["name"] is not None else NO_CALLER)
        for metric in LLM_METRICS:
            writer.writerow(("llm", group, name, metric, _csv_value(row[metric])))
    for row in report["errors"]:
        for metric in ("requests", "rate"):
            writer.writerow(("errors", row["status_class"], row["kind"], metric, row[metric]))
    for metric, value in report["pipeline"].items():
        writer.writerow(("pipeline", "", "", metric, value))
    for test in report["ab_tests"]:
        for key in ("started", "ended", "ended_by", "ended_on"):
            writer.writerow(("ab", test["alias"], "", key, _csv_value(test[key])))
        for arm in test["arms"]:
            for metric in AB_COLUMNS:
                writer.writerow(("ab", test["alias"], arm["arm"], metric, _csv_value(arm[metric])))
    _csv_dead_letters(writer, report["dead_letters"])
    return buffer.getvalue()


def _csv_dead_letters(writer: Any, section: dict[str, Any]) -> None:
    if not section["available"]:
        writer.writerow(("dead_letters", "", "", "error", section["error"]))
        return
    for queue in section["queues"]:
        for metric in ("depth", "dead_lettered"):
            value = _csv_value(queue[metric])
            writer.writerow(("dead_letters", "queue", queue["queue"], metric, value))
    writer.writerow(("dead_letters", "", "", "dead_lettered", section["dead_lettered"]))
    writer.writerow(("dead_letters", "", "", "undated", section["undated"]))
    for reason in section["top_reasons"]:
        writer.writerow(("dead_letters", "reason", reason["reason"], "count", reason["count"]))


def _csv_value(value: Any) -> Any:
    return "" if value is None else value
