"""The test bed for the bench: the fault matrix's rig with the services talking to RabbitMQ
directly (not through the fault proxy, which would cost this process CPU per message), the
FAKE upstreams answering at once, and replicas started or stopped on demand."""

from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from tests.faults.rig import Rig, add_replicas, start_backends, start_services


async def start_bed(
    root: Path,
    stack: AsyncExitStack,
    env: dict[str, str] | None = None,
    extra_profiles: dict[str, dict[str, Any]] | None = None,
) -> Rig:
    """`extra_profiles`: gateway profiles beside the FAKE ones (the `limit` part's engine)."""
    rig = await start_backends(root, stack)
    env = {"SIFT_RABBIT_URL": rig.rabbit.url, **(env or {})}
    await start_services(rig, stack, env=env, extra_profiles=extra_profiles)
    rig.set_llm(0.0, 0.0)
    return rig


async def set_replicas(rig: Rig, program: str, count: int) -> list[str]:
    """Exactly `count` live `program` processes (the first plus `program-2`, …); their names."""
    services = rig.pipeline.services
    for number in range(2, 2 + count - 1):
        name = f"{program}-{number}"
        if name in services and not services[name].alive():
            rig.pipeline.start(name)
    names = [program, *await add_replicas(rig, program, count - 1)]
    for name, service in services.items():
        if service.program == program and name not in names and service.alive():
            rig.pipeline.stop(name, 30)
    return names


def postgres_pid(rig: Rig) -> int:
    """The postmaster's pid (its first line of postmaster.pid): backends are its children."""
    return int((rig.postgres.data_dir / "postmaster.pid").read_text().split()[0])


def processes(rig: Rig) -> dict[str, int]:
    """Every live process of the pipeline by name: the services, PostgreSQL, RabbitMQ, Redis."""
    found = {name: s.pid for name, s in rig.pipeline.services.items() if s.alive()}
    found["postgres"] = postgres_pid(rig)
    found["rabbitmq"] = rig.rabbit.server.pid
    found["redis"] = rig.redis.server.pid
    return found
