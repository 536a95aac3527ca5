"""The printed table: one row per step as it completes, then the summary and the verdicts."""

from typing import Any

DRIVER_LAG_WARN_MS = 2.0
COLUMNS = (
    ("target", 10, "target"),
    ("offered", 7, "offered_rps"),
    ("achieved", 8, "achieved_rps"),
    ("p50", 7, "p50_ms"),
    ("p99", 7, "p99_ms"),
    ("p99.9", 7, "p999_ms"),
    ("+p50", 7, "added_p50_ms"),
    ("+p99", 7, "added_p99_ms"),
    ("+p99.9", 7, "added_p999_ms"),
    ("errors", 6, "errors"),
    ("cpu/req", 7, "cpu_ms_per_req"),
    ("+pg/req", 7, "cpu_ms_per_req_with_log"),
    ("rss MB", 6, "peak_rss_mb"),
    ("bg cores", 8, "background_cores"),
)


def format_row(step: dict[str, Any]) -> str:
    cells = []
    for _, width, key in COLUMNS:
        value = step.get(key)
        text = "-" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)
        if key == "offered_rps":
            text = f"{value:.0f}"
        cells.append(text.ljust(width) if key == "target" else text.rjust(width))
    lag = step.get("driver_send_lag_p99_ms")
    if step["errors"] == 0 and not step["sustained"]:
        cells.append("(fell behind: achieved < 95% of offered)")
    if not step.get("valid", True):
        cells.append(f"INVALID: driver held up, p99 send lag {lag:.0f} ms")
    elif lag is not None and lag > DRIVER_LAG_WARN_MS:
        cells.append(f"(p99 send lag {lag:.1f} ms)")
    return " ".join(cells)


def header() -> str:
    names = [name.ljust(w) if name == "target" else name.rjust(w) for name, w, _ in COLUMNS]
    units = (
        "latencies in ms from the intended send time; +x = added over direct; cpu/req in ms;"
        " bg cores = other work on the machine during the step"
    )
    return " ".join(names) + f"\n{units}"


def print_report(results: dict[str, Any]) -> None:
    print("\n" + header())
    for result in results["targets"].values():
        for step in result.get("steps", []):
            print(format_row(step))
        if result["status"] != "ok":
            print(f"{result['name']}: {result['status']} ({result.get('reason', '')})")
    print("\nhighest error-free rate (RPS) / max achieved (RPS) / peak RSS (MB):")
    for name, result in results["targets"].items():
        summary = result.get("summary")
        if summary:
            best, top = summary["highest_error_free_rps"], summary["max_achieved_rps"]
            print(f"  {name:<10} {best or 'none'} / {top} / {summary['peak_rss_mb']}")
    if results["verdicts"]:
        print("\ntargets:")
    for verdict in results["verdicts"]:
        mark = {True: "PASS", False: "FAIL", None: "n/a "}[verdict["pass"]]
        print(f"  {mark} {verdict['check']}: {verdict['measured']} (want {verdict['limit']})")
