"""The fault matrix's sessions: one test bed (tests/faults/rig.py) per test module, shared by
its scenarios, and the matrix's JSON results, rewritten after each scenario of any module.

SIFT_FAULT_RESULTS_DIR: where `fault-matrix.json` goes (default: pytest's base temp dir), with
the services' logs in `fault-matrix-logs/` beside it (a module's own rig: a subfolder).
SIFT_FAULT_SCALE: see tests/faults/test_matrix.py.
"""

import json
import os
import platform
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.faults.rig import Rig, fault_scale, start_rig
from tests.faults.scenario import Fault, Feed, Outcome, run_scenario
from tests.support.private_services import RABBIT_SBIN

FAULTS_TIMEOUT_S = 600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.faults)
            if item.get_closest_marker("vllm") is None:  # tests/conftest.py times those
                item.add_marker(pytest.mark.timeout(FAULTS_TIMEOUT_S))


@dataclass
class Results:
    """Every scenario of the session, whichever module ran it; `fault-matrix.json` is
    rewritten after each. `startup_s`: the first test bed's start-up."""

    path: Path
    started: float = field(default_factory=time.monotonic)
    startup_s: dict[str, float] = field(default_factory=dict)
    scenarios: list[dict[str, Any]] = field(default_factory=list)

    @property
    def logs(self) -> Path:
        return self.path.parent / "fault-matrix-logs"

    def add(self, result: dict[str, Any]) -> None:
        self.scenarios.append(result)
        self.write()

    def write(self) -> None:
        report: dict[str, Any] = {
            "fault_scale": fault_scale(),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": f"{platform.system()} {platform.machine()}",
            },
            "startup_s": self.startup_s,
            "wall_s": round(time.monotonic() - self.started, 1),
            "scenarios": self.scenarios,
        }
        self.path.write_text(json.dumps(report, indent=1, default=str) + "\n")


@pytest.fixture(scope="session")
def matrix_results(tmp_path_factory: pytest.TempPathFactory) -> Results:
    folder = os.environ.get("SIFT_FAULT_RESULTS_DIR")
    base = Path(folder) if folder else tmp_path_factory.getbasetemp()
    base.mkdir(parents=True, exist_ok=True)
    results = Results(base / "fault-matrix.json")
    shutil.rmtree(results.logs, ignore_errors=True)
    return results


class Matrix:
    """Runs scenarios on a rig and adds their results to the session's."""

    def __init__(self, rig: Rig, results: Results) -> None:
        self.rig, self.results = rig, results
        if not results.startup_s:
            results.startup_s = rig.startup_s

    async def run(self, fault: Fault, feed: Feed | None = None, **delays: float) -> None:
        began = time.monotonic()
        self.record(await run_scenario(self.rig, fault, feed, **delays), began)

    def record(self, outcome: Outcome, began: float) -> None:
        """Add a scenario's outcome (its wall time from `began`) and fail on its problems."""
        outcome.result["scenario_wall_s"] = round(time.monotonic() - began, 1)
        self.results.add(outcome.result)
        assert not outcome.problems, json.dumps(outcome.result, indent=1, default=str)


def needs_private_servers() -> None:
    if not RABBIT_SBIN or shutil.which("redis-server") is None:
        pytest.skip("the fault matrix needs Debian's rabbitmq-server and redis-server")


@pytest.fixture(scope="module")  # torn down after the matrix, not at the end of `make test`
async def matrix(
    tmp_path_factory: pytest.TempPathFactory, matrix_results: Results
) -> AsyncIterator[Matrix]:
    needs_private_servers()
    started = time.monotonic()
    async with AsyncExitStack() as stack:
        rig = await start_rig(tmp_path_factory.mktemp("faults"), stack)
        rig.startup_s["total"] = round(time.monotonic() - started, 2)
        yield Matrix(rig, matrix_results)
        matrix_results.write()
    keep_logs(rig, matrix_results.logs)


def keep_logs(rig: Rig, folder: Path, *more: Path) -> None:
    """The services' and private servers' logs (and `more`) into `folder`, beside the results
    (pytest rotates its temp dirs away within a few runs; a failed scenario is read from these)."""
    folder.mkdir(parents=True, exist_ok=True)
    logs = [*rig.root.glob("logs/*.log"), rig.rabbit.server.log, rig.redis.server.log, *more]
    for log in logs:
        if log.exists():
            shutil.copy(log, folder / log.name)
