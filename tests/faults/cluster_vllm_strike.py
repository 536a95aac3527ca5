"""The three kills of the cluster scenario with real vLLM replicas (tests/faults/cluster_vllm.py),
each struck at work in flight: kill -9 of the RabbitMQ node leading `analyzer.documents`; ~1 s
later kill -9 of the analyzer replica with the most LLM calls open (its /metrics: calls started
minus calls ended), once one has a call open; ~1 s later kill -9 of the process group (API
server, engine core) of the vLLM replica with the most gateway calls outstanding, once one has
any. The node starts again after `NODE_DOWN_S` down and the analyzer at once; the vLLM replica
stays dead (see cluster_vllm.py for why).
"""

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from sift_common.messaging.topology import ANALYZER_DOCUMENTS, Topology
from tests.faults.cluster_vllm_bed import VllmClusterBed
from tests.faults.engine import sample_sum
from tests.faults.rig import NAMESPACE, REAL_CHAT
from tests.support.private_vllm import PrivateVllmChat

NODE_DOWN_S = 5.0
GAP_S = 1.0
OPEN_WAIT_S = 20.0  # the longest wait for a call open at the next victim
LEADING = Topology(NAMESPACE).work_queue(ANALYZER_DOCUMENTS)


@dataclass(frozen=True)
class Struck:
    first: float  # epoch seconds: the node's kill
    analyzer: datetime
    replica: datetime  # the last kill
    replica_gone: datetime  # no process of the replica's group left
    restored: float  # epoch seconds: node and analyzer serving again

    @property
    def last(self) -> float:
        return self.replica.timestamp()


async def metrics(http: httpx.AsyncClient, url: str) -> str:
    """A /metrics page, or "" when it does not answer in time (the next poll asks again)."""
    with contextlib.suppress(httpx.HTTPError):
        return (await http.get(f"{url}/metrics")).text
    return ""


async def analyzer_calls_open(http: httpx.AsyncClient, bed: VllmClusterBed) -> dict[str, float]:
    """LLM calls each live analyzer process has open (started minus ended)."""
    found = {}
    for name, service in bed.rig.pipeline.services.items():
        if service.program == "analyzer" and service.alive():
            text = await metrics(http, service.url)
            started = sample_sum(text, "sift_analyzer_llm_calls_total")
            found[name] = started - sample_sum(text, "sift_analyzer_llm_seconds_count")
    return found


async def outstanding_at_replicas(http: httpx.AsyncClient, bed: VllmClusterBed) -> list[int]:
    """The gateway's calls outstanding at each replica (its /admin/upstreams, open on the test
    gateway; probes are not calls)."""
    try:
        listed = await http.get(f"{bed.rig.pipeline.services['gateway'].url}/admin/upstreams")
        by_url = {r["url"].rstrip("/"): int(r["outstanding"]) for r in listed.json()[REAL_CHAT]}
    except (httpx.HTTPError, ValueError, KeyError):
        return [0] * len(bed.replicas)  # the next poll asks again
    return [by_url.get(server.url, 0) for server in bed.replicas]


async def requests_running(http: httpx.AsyncClient, server: PrivateVllmChat) -> float:
    """Requests running in a vLLM replica (a gateway probe's 1-token request included)."""
    return sample_sum(await metrics(http, server.url), "vllm:num_requests_running")


async def gateway_retries(bed: VllmClusterBed) -> float:
    async with httpx.AsyncClient(timeout=5) as http:
        text = await metrics(http, bed.rig.pipeline.services["gateway"].url)
    return sample_sum(text, "sift_gateway_upstream_retries_total", profile=REAL_CHAT)


async def busiest_analyzer(bed: VllmClusterBed) -> tuple[str, float]:
    """The analyzer with the most calls open, once one has any (or after `OPEN_WAIT_S`)."""
    deadline = time.monotonic() + OPEN_WAIT_S
    async with httpx.AsyncClient(timeout=2) as http:
        while True:
            found = await analyzer_calls_open(http, bed)
            name = max(found, key=lambda n: found[n])
            if found[name] >= 1 or time.monotonic() > deadline:
                return name, found[name]
            await asyncio.sleep(0.05)


async def busiest_replica(bed: VllmClusterBed) -> tuple[int, int, float]:
    """The replica with the most gateway calls outstanding, once one has any (or after
    `OPEN_WAIT_S`): its index, those calls, and the requests its engine runs."""
    deadline = time.monotonic() + OPEN_WAIT_S
    async with httpx.AsyncClient(timeout=2) as http:
        while True:
            held = await outstanding_at_replicas(http, bed)
            index = max(range(len(held)), key=lambda i: held[i])
            if held[index] >= 1 or time.monotonic() > deadline:
                return index, held[index], await requests_running(http, bed.replicas[index])
            await asyncio.sleep(0.05)


async def strike(bed: VllmClusterBed, leader: str, evidence: dict[str, Any]) -> Struck:
    """The three kills (module docstring), the first of the node `leader` (its letter, read
    beforehand); returns once the node and the analyzer serve again."""
    cluster, rig = bed.cluster, bed.rig
    evidence["killed_node"] = cluster.nodes[leader].node
    first = time.time()
    evidence["node_exit_code"] = await asyncio.to_thread(cluster.kill, leader)
    node_killed = time.monotonic()
    await asyncio.sleep(GAP_S)
    name, calls_open = await busiest_analyzer(bed)
    analyzer_at = datetime.now(UTC)
    rig.pipeline.kill9(name)
    evidence.update(killed_analyzer=name, analyzer_calls_open=calls_open,
                    analyzer_exit_code=rig.pipeline.services[name].returncode())  # fmt: skip
    restart_analyzer = asyncio.create_task(asyncio.to_thread(rig.pipeline.restart, name))
    await asyncio.sleep(GAP_S)
    evidence["gateway_retries_before"] = await gateway_retries(bed)
    index, held, running = await busiest_replica(bed)
    victim: PrivateVllmChat = bed.replicas[index]
    replica_at = datetime.now(UTC)
    evidence["replica"] = await kill_replica(victim)
    replica_gone = datetime.now(UTC)
    evidence["replica"].update(
        url=victim.url, gateway_calls_outstanding=held, engine_requests_running=running
    )
    await asyncio.sleep(max(NODE_DOWN_S - (time.monotonic() - node_killed), 0.0))
    evidence["node_restart_s"] = round(await asyncio.to_thread(cluster.restart, leader), 1)
    await restart_analyzer
    return Struck(first, analyzer_at, replica_at, replica_gone, time.time())


async def kill_replica(server: PrivateVllmChat) -> dict[str, Any]:
    started = time.monotonic()
    killed: dict[str, Any] = dict(await asyncio.to_thread(server.kill9))
    killed["kill_s"] = round(time.monotonic() - started, 2)
    return killed
