"""The cluster test bed: the fault rig (tests/faults/rig.py) with a private three-node RabbitMQ
cluster (tests/support/rabbit_cluster.py) in place of its one node, reached through
`ClusterFront` (test-only: production puts a TCP load balancer or a Kubernetes Service there);
two FAKE chat replicas in the gateway's one chat profile, each behind a `TcpProxy` so that a
replica can be killed on the wire (its connections reset, new ones refused) and brought back;
replicas of every service but the gateway.

`rig.rabbit` is a `ClusterRabbit`: the observers of tests/faults read `url`, `ctl` and
`queue_counts` from it, which answer from a live node.
"""

import asyncio
import shutil
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.demo.pipeline import Pipeline
from sift_common.store import migrate
from sift_common.store.models import EMBEDDING_DIM
from tests.faults.rig import (
    DATABASE,
    NAMESPACE,
    REPLICA_SETTINGS,
    Rig,
    create_database,
    start_services,
)
from tests.support.background import BackgroundLoop
from tests.support.fake_upstream import FakeUpstream, running_fake
from tests.support.private_services import PrivatePostgres, PrivateRedis
from tests.support.rabbit_cluster import ClusterFront, ClusterRabbit, PrivateRabbitCluster
from tests.support.tcp_proxy import TcpProxy

SCALED = ("collector", "analyzer", "archiver")  # the gateway stays one (the analyzers' one URL)


@dataclass
class ClusterBed:
    rig: Rig
    cluster: PrivateRabbitCluster
    chats: list[FakeUpstream]  # the two FAKE chat replicas
    chat_fronts: list[TcpProxy]  # the proxy before each, the URL the gateway has
    startup_s: dict[str, float] = field(default_factory=dict)

    def chat_requests(self) -> list[dict[str, Any]]:
        return [request for chat in self.chats for request in chat.chat_requests()]

    @property
    def chat_open_calls(self) -> int:
        return sum(chat.open_calls for chat in self.chats)

    @property
    def chat_answered(self) -> int:
        return sum(chat.answered for chat in self.chats)


async def start_cluster_bed(root: Path, stack: AsyncExitStack, replicas: int = 2) -> ClusterBed:
    """The cluster, Redis, PostgreSQL, FAKE upstreams, then the services (`replicas` of each of
    collector, analyzer, archiver; one gateway), every part registered on `stack`."""
    started = time.monotonic()
    bed = await start_cluster_backends(root, stack)
    urls = [front_url(front) for front in bed.chat_fronts]
    await start_services(bed.rig, stack, env={}, chat_replicas=urls)
    await set_scale(bed, replicas)
    set_chat_delay(bed, 0.0)
    bed.startup_s["total"] = round(time.monotonic() - started, 1)
    return bed


def front_url(proxy: TcpProxy) -> str:
    return f"http://127.0.0.1:{proxy.port}"


async def start_cluster_backends(root: Path, stack: AsyncExitStack) -> ClusterBed:
    """Everything but the services: the cluster and its front, Redis, PostgreSQL (migrated), the
    FAKE upstreams (a bed whose gateway has a real chat profile leaves the FAKE chats idle)."""
    pg_dir = Path(tempfile.mkdtemp(prefix="sift-cluster-pg-"))  # its parents get opened up
    stack.callback(shutil.rmtree, pg_dir, True)
    cluster, redis = PrivateRabbitCluster(root / "rabbit"), PrivateRedis(root / "redis")
    postgres = PrivatePostgres(pg_dir / "pgdata")
    background = BackgroundLoop("cluster-servers")
    stack.callback(background.stop)
    startup: dict[str, float] = {}
    stack.callback(cluster.stop)
    stack.callback(postgres.stop)
    stack.callback(redis.stop)
    cluster_s, redis_s, postgres_s = await asyncio.gather(
        asyncio.to_thread(cluster.start),
        asyncio.to_thread(redis.start),
        asyncio.to_thread(postgres.start),
    )
    startup.update(rabbitmq_cluster=round(cluster_s, 1), redis=round(redis_s, 2))
    startup["postgres"] = round(postgres_s, 2)
    front = ClusterFront([node.port for node in cluster.nodes.values()])
    await background.call(front.start())
    stack.push_async_callback(background.call, front.close())
    servers = AsyncExitStack()
    chats = [FakeUpstream(model="fake-chat", schema_answers=True) for _ in range(2)]
    embed = FakeUpstream(model="fake-embed", embedding_dim=EMBEDDING_DIM)
    for fake in (*chats, embed):
        await background.call(servers.enter_async_context(running_fake(fake)))
    chat_fronts = []
    for chat in chats:
        port = int(chat.url.rsplit(":", 1)[1])
        proxy = TcpProxy("127.0.0.1", port)
        await background.call(proxy.start())
        chat_fronts.append(proxy)
        servers.push_async_callback(proxy.close)
    stack.push_async_callback(background.call, servers.aclose())
    rabbit = ClusterRabbit(cluster, front)
    rig = Rig(root, rabbit, redis, postgres, front, background, chats[0], embed, Pipeline({}, root))  # type: ignore[arg-type]
    rig.startup_s = startup
    rig.database_url = await create_database(postgres.admin_url, DATABASE)
    await migrate.upgrade(rig.database_url)
    return ClusterBed(rig, cluster, chats, chat_fronts, startup)


async def set_scale(bed: ClusterBed, count: int) -> None:
    """Exactly `count` live processes of each scaled service (the first plus `<name>-2`, …):
    the missing ones all started before any is waited for, the ones over `count` stopped."""
    rig = bed.rig
    services = rig.pipeline.services
    starting = []
    for program in SCALED:
        first = services[program].env or {}
        extra = {key: value for key, value in first.items() if key in REPLICA_SETTINGS}
        for number in range(2, 1 + count):
            name = f"{program}-{number}"
            if name not in services:
                rig.pipeline.add(name, extra, program=program)
            if not services[name].alive():
                rig.pipeline.start(name)
                starting.append(name)
        for name, service in services.items():
            number = int(name.rsplit("-", 1)[1]) if "-" in name else 1
            if service.program == program and number > count and service.alive():
                rig.pipeline.stop(name, 30)
    for name in starting:
        await rig.ready(name, 120)


def collector_urls(rig: Rig) -> list[str]:
    return [s.url for s in rig.pipeline.services.values() if s.program == "collector" and s.alive()]


def set_chat_delay(bed: ClusterBed, delay_s: float, embed_delay_s: float = 0.0) -> None:
    """Both FAKE chat replicas answer after `delay_s`; the embeddings after `embed_delay_s`."""
    bed.rig.set_llm(delay_s, embed_delay_s)
    for chat in bed.chats:
        chat.default = bed.rig.chat.default


def keep_cluster_logs(bed: ClusterBed, folder: Path) -> None:
    """The services' and the nodes' logs into `folder` (pytest rotates its temp dirs away)."""
    folder.mkdir(parents=True, exist_ok=True)
    for log in [*bed.rig.root.glob("logs/*.log"), bed.rig.redis.server.log]:
        if log.exists():
            shutil.copy(log, folder / log.name)
    for letter, node in bed.cluster.nodes.items():
        for log in [node.server.log, *(node.root / "log").glob("*.log")]:
            if log.exists():
                shutil.copy(log, folder / f"rabbit-{letter}-{log.name}")


async def quorum_queues(cluster: PrivateRabbitCluster) -> tuple[int, dict[str, list[int]]]:
    """How many quorum queues the run's namespace has, and those not on 3 members all online
    (name → [members, online]): what a node killed and restarted must leave behind."""
    members = await asyncio.to_thread(cluster.queues)
    ours = {name: q for name, q in members.items() if name.startswith(NAMESPACE)}
    short = {name: [len(q.members), len(q.online)] for name, q in ours.items()
             if len(q.members) != 3 or len(q.online) != 3}  # fmt: skip
    return len(ours), short
