"""The scale-out must-shows on a private three-node RabbitMQ cluster (tests/faults/cluster_bed.py):
faults while documents flow (tests/faults/cluster_scenario.py), and the pipeline's effect with
1 and 2 replicas of each service (the full-size rates: tests/faults/cluster_scaling.py, run by
hand, saved under bench/results/). The must-show is a row of fault-matrix.json; the smoke's
effect is written to cluster-scaling-smoke.json beside it."""

import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from tests.faults.cluster_bed import ClusterBed, keep_cluster_logs, start_cluster_bed
from tests.faults.cluster_scaling import measure_scale
from tests.faults.cluster_scenario import run_cluster_faults
from tests.faults.conftest import Results, needs_private_servers

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
async def cluster_bed(
    tmp_path_factory: pytest.TempPathFactory, matrix_results: Results
) -> AsyncIterator[ClusterBed]:
    needs_private_servers()
    async with AsyncExitStack() as stack:
        bed = await start_cluster_bed(tmp_path_factory.mktemp("cluster"), stack, replicas=2)
        yield bed
    keep_cluster_logs(bed, matrix_results.logs / "cluster")


async def test_cluster_node_analyzer_and_chat_replica_killed_while_documents_flow(
    cluster_bed: ClusterBed, matrix_results: Results
) -> None:
    began = time.monotonic()
    result, problems = await run_cluster_faults(cluster_bed, rate=10.0, before_s=20, after_s=40)
    result["startup_s"] = cluster_bed.startup_s
    result["scenario_wall_s"] = round(time.monotonic() - began, 1)
    matrix_results.add(result)
    assert not problems, result


async def test_cluster_with_two_then_one_replica_stores_every_document_once(
    cluster_bed: ClusterBed, matrix_results: Results
) -> None:
    """The effect only (the ledger's verdict at each scale), never the speed."""
    began = time.monotonic()
    rows = [await measure_scale(cluster_bed, replicas, docs=200) for replicas in (2, 1)]
    report = {"scales": rows, "wall_s": round(time.monotonic() - began, 1)}
    smoke = matrix_results.path.parent / "cluster-scaling-smoke.json"
    smoke.write_text(json.dumps(report, indent=1) + "\n")
    for row in rows:
        assert not row["store_problems"], row
        assert row["stored"] == row["fed"], row
