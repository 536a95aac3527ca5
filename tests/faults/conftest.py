"""The fault matrix's session: one test bed (tests/faults/rig.py) shared by every scenario,
and the matrix's JSON results, rewritten after each scenario.

SIFT_FAULT_RESULTS_DIR: where `fault-matrix.json` goes (default: pytest's base temp dir), with
the services' logs in `fault-matrix-logs/` beside it.
SIFT_FAULT_SCALE: see tests/faults/test_matrix.py.
"""

import json
import os
import platform
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.faults.rig import Rig, fault_scale, start_rig
from tests.faults.scenario import Fault, Feed, run_scenario
from tests.support.private_services import RABBIT_SBIN

FAULTS_TIMEOUT_S = 600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.timeout(FAULTS_TIMEOUT_S))


@pytest.fixture(scope="session")
def results_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get("SIFT_FAULT_RESULTS_DIR")
    base = Path(folder) if folder else tmp_path_factory.getbasetemp()
    base.mkdir(parents=True, exist_ok=True)
    return base / "fault-matrix.json"


class Matrix:
    """Runs scenarios on the shared rig and keeps the JSON results up to date."""

    def __init__(self, rig: Rig, path: Path, started: float) -> None:
        self.rig, self.path, self.started = rig, path, started

    async def run(self, fault: Fault, feed: Feed | None = None, **delays: float) -> None:
        began = time.monotonic()
        outcome = await run_scenario(self.rig, fault, feed, **delays)
        outcome.result["scenario_wall_s"] = round(time.monotonic() - began, 1)
        self.rig.results.append(outcome.result)
        write_results(self.path, self.rig, time.monotonic() - self.started)
        assert not outcome.problems, json.dumps(outcome.result, indent=1, default=str)


@pytest.fixture(scope="module")  # torn down after the matrix, not at the end of `make test`
async def matrix(
    tmp_path_factory: pytest.TempPathFactory, results_file: Path
) -> AsyncIterator[Matrix]:
    if not RABBIT_SBIN or shutil.which("redis-server") is None:
        pytest.skip("the fault matrix needs Debian's rabbitmq-server and redis-server")
    started = time.monotonic()
    async with AsyncExitStack() as stack:
        rig = await start_rig(tmp_path_factory.mktemp("faults"), stack)
        rig.startup_s["total"] = round(time.monotonic() - started, 2)
        yield Matrix(rig, results_file, started)
        write_results(results_file, rig, time.monotonic() - started)
    keep_logs(rig, results_file.parent / "fault-matrix-logs")


def keep_logs(rig: Rig, folder: Path) -> None:
    """The services' and private servers' logs beside the results (pytest rotates its temp
    dirs away within a few runs; a failed scenario is read from these)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for log in [*rig.root.glob("logs/*.log"), rig.rabbit.server.log, rig.redis.server.log]:
        if log.exists():
            shutil.copy(log, folder / log.name)


def write_results(path: Path, rig: Rig, wall_s: float) -> None:
    report: dict[str, Any] = {
        "fault_scale": fault_scale(),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": f"{platform.system()} {platform.machine()}",
        },
        "startup_s": rig.startup_s,
        "wall_s": round(wall_s, 1),
        "scenarios": rig.results,
    }
    path.write_text(json.dumps(report, indent=1, default=str) + "\n")
