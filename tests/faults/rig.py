"""The fault matrix's test bed, built once per test module: private RabbitMQ (behind a TCP
proxy), Redis and PostgreSQL+pgvector; two FAKE vLLM upstreams on a thread of their own; the real
gateway, collector, analyzer and archiver as processes (scripts/demo/pipeline.py).

`start_rig` builds it all; `start_backends` then `start_services` build it in two steps, for a
module that starts something of its own meanwhile. `start_services` can give the gateway a real
chat profile in place of the FAKE one (`chat`, served under `REAL_CHAT`: a private vLLM server,
tests/faults/test_vllm_engine.py) and override the services' environment."""

import asyncio
import os
import shutil
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from sqlalchemy.engine import make_url

from scripts.demo.pipeline import Pipeline
from sift_common.store import migrate
from sift_common.store.models import EMBEDDING_DIM
from tests.support.background import BackgroundLoop
from tests.support.fake_upstream import Behaviour, FakeUpstream, running_fake
from tests.support.private_services import PrivatePostgres, PrivateRabbit, PrivateRedis
from tests.support.tcp_proxy import TcpProxy

NAMESPACE = "faults."
DATABASE = "sift_faults"
RETRY_DELAYS_MS = "200,500,1000"  # the analyzer's ladder: a fault is ridden out in seconds
# Renewed every third of the lease, a lease must outlast a third of itself plus a Redis restart
# (~1.1 s here) with room for the renewal that meets Redis back: 3 s leaves ~0.9 s.
LOCK_LEASE_MS = 3000
SERVICE_ORDER = ("gateway", "archiver", "analyzer", "collector")
# What a replica takes over from its first process's own settings (see `build_pipeline`).
REPLICA_SETTINGS = ("SIFT_GATEWAY_URL", "SIFT_ARCHIVER_REFRESH_EVERY_S")
FAKE_CHAT, REAL_CHAT = "fake-chat", "real-chat"  # the gateway's chat profile: FAKE or real
FAST_PROFILE: dict[str, Any] = {
    "max_in_flight_per_replica": 64,
    "max_queue_wait_s": 30,
    "timeouts": {"connect_s": 1, "ttft_s": 30, "stall_s": 30, "total_s": 60},
    "retries": {"max_attempts": 3, "base_delay_s": 0.05, "max_delay_s": 0.5},
    "breaker": {"failure_threshold": 5, "success_threshold": 1, "open_for_s": 1},
}


def fault_scale() -> float:
    """SIFT_FAULT_SCALE: how much of each full-length fault window a run uses (1 = full)."""
    return float(os.environ.get("SIFT_FAULT_SCALE", "0.2"))


@dataclass
class Rig:
    root: Path
    rabbit: PrivateRabbit
    redis: PrivateRedis
    postgres: PrivatePostgres
    proxy: TcpProxy
    background: BackgroundLoop
    chat: FakeUpstream
    embed: FakeUpstream
    pipeline: Pipeline
    database_url: str = ""
    startup_s: dict[str, float] = field(default_factory=dict)
    chat_profile: str = FAKE_CHAT  # the profile the gateway's `chat` alias names

    @property
    def dsn(self) -> str:
        """The store for asyncpg (no SQLAlchemy driver prefix)."""
        url = make_url(self.database_url).set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn, timeout=5)

    def set_llm(self, chat_delay_s: float, embed_delay_s: float) -> None:
        self.chat.default = Behaviour(delay_s=chat_delay_s)
        self.embed.default = Behaviour(delay_s=embed_delay_s)

    async def ready(self, name: str, timeout_s: float = 90.0) -> None:
        await asyncio.to_thread(self.pipeline.wait_ready, name, timeout_s)

    async def all_ready(self, timeout_s: float = 90.0) -> None:
        for name in self.pipeline.services:
            await self.ready(name, timeout_s)

    def dead_services(self) -> dict[str, int]:
        """Services whose process exited, with the exit code."""
        dead = {}
        for name, service in self.pipeline.services.items():
            process = service.process
            if process is not None and process.poll() is not None:
                dead[name] = process.returncode
        return dead

    async def revive(self) -> dict[str, int]:
        """Restart any service that died; what was dead, with exit codes."""
        dead = self.dead_services()
        for name in dead:
            self.pipeline.start(name)
        for name in dead:
            await self.ready(name)
        return dead


def gateway_profiles(
    path: Path,
    chat_url: str,
    embed_url: str,
    chat: dict[str, Any] | None = None,
    extra: dict[str, dict[str, Any]] | None = None,
    chat_replicas: list[str] | None = None,
) -> Path:
    """The gateway's profiles: both FAKE upstreams, or `chat` (a whole chat profile) as
    `REAL_CHAT` in place of the FAKE chat one; `extra` profiles beside them, no alias naming
    them (a bench switches `chat` to one at runtime); `chat_replicas`: the FAKE chat profile's
    replicas in place of `chat_url` alone (tests/faults/cluster_bed.py)."""
    chat_name = FAKE_CHAT if chat is None else REAL_CHAT
    replicas = chat_replicas or [chat_url]
    fake_chat = {"kind": "chat", "served_model": "fake-chat", "replicas": replicas}
    profiles = {
        chat_name: {**fake_chat, **FAST_PROFILE} if chat is None else chat,
        "fake-embed": {
            "kind": "embeddings", "served_model": "fake-embed", "replicas": [embed_url],
            **FAST_PROFILE,
        },
        **(extra or {}),
    }  # fmt: skip
    aliases = {"chat": chat_name, "embed": "fake-embed"}
    path.write_text(yaml.safe_dump({"profiles": profiles, "aliases": aliases}))
    return path


def build_pipeline(rig_root: Path, env: dict[str, str]) -> Pipeline:
    stack = Pipeline(env, rig_root / "logs")
    gateway = stack.add("gateway")
    common = {"SIFT_GATEWAY_URL": gateway.url}
    stack.add("archiver", {**common, "SIFT_ARCHIVER_REFRESH_EVERY_S": "0"})
    stack.add("analyzer", common)
    stack.add("collector")
    return stack


def pipeline_env(rig: "Rig", profiles: Path) -> dict[str, str]:
    return {
        "SIFT_RABBIT_URL": f"amqp://guest:guest@127.0.0.1:{rig.proxy.port}/",
        "SIFT_REDIS_URL": rig.redis.url,
        "SIFT_DATABASE_URL": rig.database_url,
        "SIFT_NAMESPACE": NAMESPACE,
        "SIFT_GATEWAY_PROFILES": str(profiles),
        "SIFT_GATEWAY_PROBE_INTERVAL_S": "2",
        "SIFT_GATEWAY_SHUTDOWN_TIMEOUT_S": "15",
        "SIFT_ANALYZER_RETRY_DELAYS_MS": RETRY_DELAYS_MS,
        "SIFT_ANALYZER_MAX_RETRIES": "100",
        "SIFT_ANALYZER_LOCK_LEASE_MS": str(LOCK_LEASE_MS),
        "SIFT_ANALYZER_LOCK_WAIT_S": "0.5",
        "SIFT_ARCHIVER_RETRY_DELAYS_MS": RETRY_DELAYS_MS,
        "SIFT_ARCHIVER_MAX_RETRIES": "100",
        "SIFT_DRAIN_TIMEOUT_S": "8",  # a SIGTERM must end within the matrix's 15 s
        "SIFT_ARCHIVER_DRAIN_GRACE_S": "1",
        "SIFT_VLLM_CHAT_URL": rig.chat.url,  # unused by our profiles; never a shared vLLM
        "SIFT_VLLM_EMBED_URL": rig.embed.url,
    }


async def create_database(admin_url: str, name: str) -> str:
    admin = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _timed(started: float) -> float:
    return round(time.monotonic() - started, 2)


async def start_rig(root: Path, stack: AsyncExitStack) -> Rig:
    """Everything started, in an order that lets each part find the ones it needs; every
    part is registered on `stack` to be stopped, even when a later one fails to start."""
    rig = await start_backends(root, stack)
    await start_services(rig, stack)
    return rig


async def start_backends(root: Path, stack: AsyncExitStack) -> Rig:
    """The private servers, the proxy, the FAKE upstreams and the migrated database; no
    service yet (`rig.pipeline` is empty)."""
    pg_dir = Path(tempfile.mkdtemp(prefix="sift-faults-pg-"))  # its parents get opened up
    stack.callback(shutil.rmtree, pg_dir, True)
    rabbit, redis = PrivateRabbit(root / "rabbit"), PrivateRedis(root / "redis")
    postgres = PrivatePostgres(pg_dir / "pgdata")
    background = BackgroundLoop("faults-servers")
    stack.callback(background.stop)
    startup: dict[str, float] = {}
    stack.callback(rabbit.stop)
    startup["rabbitmq"] = round(await asyncio.to_thread(rabbit.start), 2)
    stack.callback(redis.stop)
    startup["redis"] = round(await asyncio.to_thread(redis.start), 3)
    stack.callback(postgres.stop)
    startup["postgres"] = round(await asyncio.to_thread(postgres.start), 2)
    proxy = TcpProxy("127.0.0.1", rabbit.port)
    await background.call(proxy.start())
    stack.push_async_callback(background.call, proxy.close())
    servers = AsyncExitStack()
    chat = FakeUpstream(model="fake-chat", schema_answers=True)
    embed = FakeUpstream(model="fake-embed", embedding_dim=EMBEDDING_DIM)
    for fake in (chat, embed):
        await background.call(servers.enter_async_context(running_fake(fake)))
    stack.push_async_callback(background.call, servers.aclose())
    rig = Rig(root, rabbit, redis, postgres, proxy, background, chat, embed, Pipeline({}, root))
    rig.startup_s = startup
    rig.database_url = await create_database(postgres.admin_url, DATABASE)
    await migrate.upgrade(rig.database_url)
    return rig


async def start_services(
    rig: Rig,
    stack: AsyncExitStack,
    chat: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    extra_profiles: dict[str, dict[str, Any]] | None = None,
    chat_replicas: list[str] | None = None,
) -> None:
    """The four services, each ready before the next starts. `chat`: a real chat profile for
    the gateway, `extra_profiles` more, `chat_replicas` (see `gateway_profiles`); `env`:
    overrides of `pipeline_env`."""
    profiles = gateway_profiles(
        rig.root / "gateway-profiles.yaml", rig.chat.url, rig.embed.url, chat, extra_profiles,
        chat_replicas,
    )  # fmt: skip
    rig.chat_profile = FAKE_CHAT if chat is None else REAL_CHAT
    rig.pipeline = build_pipeline(rig.root, {**pipeline_env(rig, profiles), **(env or {})})
    stack.callback(stop_services, rig.pipeline)
    for name in SERVICE_ORDER:
        started = time.monotonic()
        rig.pipeline.start(name)
        await rig.ready(name, 120)
        rig.startup_s[name] = _timed(started)


def stop_services(pipeline: Pipeline, timeout_s: float = 10.0) -> None:
    """SIGTERM each service, last started first, SIGKILL after `timeout_s` (a service that
    hangs on SIGTERM is a finding of its scenario, not a reason to hold up the session)."""
    for name in reversed(list(pipeline.services)):
        pipeline.stop(name, timeout_s)
    pipeline.stop_all()


async def add_analyzer_replicas(rig: Rig, count: int) -> list[str]:
    """Start `count` more analyzer processes (analyzer-2, …) beside the first; their names."""
    return await add_replicas(rig, "analyzer", count)


async def add_replicas(rig: Rig, program: str, count: int) -> list[str]:
    """Start `count` more `program` processes (analyzer-2, archiver-3, …) beside the first, with
    its environment (the gateway's URL, the archiver's refresh setting); their names."""
    first = rig.pipeline.services[program]
    extra = {key: value for key, value in (first.env or {}).items() if key in REPLICA_SETTINGS}
    names = []
    for number in range(2, 2 + count):
        name = f"{program}-{number}"
        if name not in rig.pipeline.services:
            rig.pipeline.add(name, extra, program=program)
            rig.pipeline.start(name)
        names.append(name)
    for name in names:
        await rig.ready(name, 120)
    return names
