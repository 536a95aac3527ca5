"""promtool and amtool for the ops tests, and the metric names Sift's services register.

`make test` installs the tools (`make ops-tools`) and sets SIFT_REQUIRE_OPS_TOOLS=1: there a
missing tool fails the test. A developer running pytest alone without them gets a skip that
says how to install them."""

import ast
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SOURCES = [*sorted((ROOT / "services").glob("*/src")), ROOT / "libs" / "common" / "src"]
_KINDS = {
    "Counter": ("_total", "_created"),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "Summary": ("_sum", "_count", "_created"),
    "Gauge": ("",),
    "GaugeMetricFamily": ("",),
    "CounterMetricFamily": ("_total",),
}


def ops_tool(name: str) -> str:
    """The tool's path; a failure under `make test` when missing, a skip otherwise."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = (
        f"{name} is not installed: `make ops-tools` (Debian's prometheus and "
        "prometheus-alertmanager packages)"
    )
    if os.environ.get("SIFT_REQUIRE_OPS_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def run_tool(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=120)


def _definitions(tree: ast.AST) -> Iterator[tuple[str, str]]:
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        kind = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        first = node.args[0]
        name = first.value if isinstance(first, ast.Constant) else None
        if kind in _KINDS and isinstance(name, str) and name.startswith("sift_"):
            yield kind, name


def defined_metrics() -> dict[str, str]:
    """Every `sift_*` metric a Sift service or libs/common defines: its name -> its kind, from
    the calls that define them (prometheus_client's classes and custom collectors' families)."""
    found: dict[str, str] = {}
    for source in SOURCES:
        for path in source.rglob("*.py"):
            for kind, name in _definitions(ast.parse(path.read_text(), str(path))):
                found[name.removesuffix("_total") if kind == "Counter" else name] = kind
    return found


def exposed_names(defined: dict[str, str]) -> set[str]:
    """The sample names Prometheus stores for those metrics (`_total`, `_bucket`, ...)."""
    return {name + suffix for name, kind in defined.items() for suffix in _KINDS[kind]}
