"""`sift-archiver` as a real process: killed with SIGKILL between the embeddings call and the
commit it loses nothing and stores nothing twice; on SIGTERM it turns unready, writes the open
batch and exits 0 with every message acked."""

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from sift_archiver.pool import asyncpg_dsn
from sift_common.messaging.topology import ARCHIVER_DOCUMENTS, Topology
from sift_common.store import migrate
from tests.conftest import ROOT
from tests.support.archiver import (
    API_KEY,
    analyzed,
    embed_gateway,
    publish_all,
    table_counts,
    wait_for,
)
from tests.support.gateway import RunningGateway, free_port
from tests.support.rabbit import delete_topology, ready_count

pytestmark = [pytest.mark.integration, pytest.mark.vllm]
__all__ = ["embed_gateway"]

ARCHIVER = Path(sys.executable).parent / "sift-archiver"


@pytest.fixture
async def full_topology(rabbit_url: str, namespace: str) -> AsyncIterator[Topology]:
    """The production topology under a test namespace: what the process itself declares."""
    topology = Topology(namespace)
    yield topology
    await delete_topology(rabbit_url, topology)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


class Launcher:
    def __init__(self, env: dict[str, str], started: list[subprocess.Popen[bytes]]) -> None:
        self.env, self.started = env, started
        self.url = f"http://127.0.0.1:{env['SIFT_ARCHIVER_PORT']}"

    async def start(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen([str(ARCHIVER)], cwd=ROOT, env={**os.environ, **self.env})
        self.started.append(process)
        await wait_for(self.ready, timeout=60)
        return process

    async def ready(self) -> bool:
        return await self.readiness() == 200

    async def readiness(self) -> int | None:
        try:
            async with httpx.AsyncClient(timeout=5) as http:
                return (await http.get(f"{self.url}/health/ready")).status_code
        except httpx.TransportError:
            return None

    async def metric(self, name: str) -> float:
        async with httpx.AsyncClient(timeout=5) as http:
            text = (await http.get(f"{self.url}/metrics")).text
        for line in text.splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
        return 0.0


def launcher(
    rabbit_url: str, namespace: str, database_url: str, gateway: RunningGateway,
    started: list[subprocess.Popen[bytes]], **extra: str,
) -> Launcher:  # fmt: skip
    env = {
        "SIFT_RABBIT_URL": rabbit_url,
        "SIFT_NAMESPACE": namespace,
        "SIFT_DATABASE_URL": database_url,
        "SIFT_GATEWAY_URL": gateway.url,
        "SIFT_ARCHIVER_PORT": str(free_port()),
        "SIFT_ARCHIVER_API_KEYS": f'{{"{API_KEY}": "tester"}}',
        "SIFT_ARCHIVER_BATCH_WAIT_S": "0.3",
        **extra,
    }
    return Launcher(env, started)


async def _waiting_on_lock(database_url: str) -> bool:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE '%INSERT INTO documents%'"
        )
    finally:
        await conn.close()
    return bool(waiting)


async def test_killed_between_embedding_and_commit_every_document_is_stored_once(
    rabbit_url: str,
    full_topology: Topology,
    fresh_database: str,
    embed_gateway: RunningGateway,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    await migrate.upgrade(fresh_database)
    archivers = launcher(
        rabbit_url, full_topology.namespace, fresh_database, embed_gateway, processes,
        SIFT_ARCHIVER_BATCH_SIZE="8", SIFT_ARCHIVER_BATCH_WAIT_S="10",
    )  # fmt: skip
    first = await archivers.start()
    events = [analyzed(f"Story {n}", f"Story number {n} about harbour cranes.") for n in range(8)]
    blocker = await asyncpg.connect(asyncpg_dsn(fresh_database))
    transaction = blocker.transaction()
    await transaction.start()
    # Readers may go on; the archiver's INSERT waits: its batch is embedded, not committed.
    await blocker.execute("LOCK TABLE documents IN SHARE MODE")
    await publish_all(rabbit_url, full_topology, events)
    await wait_for(lambda: _waiting_on_lock(fresh_database), timeout=120)
    assert await archivers.metric("sift_archiver_embed_seconds_count") >= 1.0  # embedded

    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    await transaction.rollback()
    await blocker.close()
    assert (await table_counts(fresh_database))["documents"] == 0

    await archivers.start()

    async def all_stored() -> bool:
        return (await table_counts(fresh_database))["documents"] == len(events)

    await wait_for(all_stored)
    await wait_for(lambda: _metric_at_least(archivers, "sift_archiver_batch_size_sum", 8))
    counts = await table_counts(fresh_database)
    assert (counts["documents"], counts["analyses"], counts["embeddings"]) == (8, 8, 8)
    work = full_topology.work_queue(ARCHIVER_DOCUMENTS)
    assert await ready_count(rabbit_url, work) == 0
    assert await ready_count(rabbit_url, full_topology.dead_letter_queue(ARCHIVER_DOCUMENTS)) == 0


async def _metric_at_least(archivers: Launcher, name: str, value: float) -> bool:
    return await archivers.metric(name) >= value


async def test_sigterm_turns_unready_writes_the_open_batch_and_exits_0(
    rabbit_url: str,
    full_topology: Topology,
    fresh_database: str,
    embed_gateway: RunningGateway,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    archivers = launcher(
        rabbit_url, full_topology.namespace, fresh_database, embed_gateway, processes,
        SIFT_ARCHIVER_BATCH_SIZE="64", SIFT_ARCHIVER_BATCH_WAIT_S="600",
        SIFT_ARCHIVER_DRAIN_GRACE_S="1.5",
    )  # fmt: skip
    process = await archivers.start()
    events = [analyzed(f"Note {n}", f"Short note {n} on river ferries.") for n in range(3)]
    await publish_all(rabbit_url, full_topology, events)
    work = full_topology.work_queue(ARCHIVER_DOCUMENTS)

    async def delivered() -> bool:  # held by handlers in an open batch, not yet acked
        return await ready_count(rabbit_url, work) == 0

    await wait_for(delivered)
    assert (await table_counts(fresh_database))["documents"] == 0  # the batch is still open

    process.send_signal(signal.SIGTERM)
    await wait_for(lambda: _unready(archivers), timeout=10)
    assert await asyncio.to_thread(process.wait, 60) == 0
    assert (await table_counts(fresh_database))["documents"] == 3
    assert await ready_count(rabbit_url, work) == 0  # acked: nothing comes back


async def _unready(archivers: Launcher) -> bool:
    return await archivers.readiness() == 503
