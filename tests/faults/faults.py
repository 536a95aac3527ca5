"""The faults themselves: each `strike` runs the fault for its window, undoes it (restart,
heal), and writes what it did into the scenario's evidence."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import redis.asyncio as aioredis
from sqlalchemy.engine import make_url

from tests.faults.rig import DATABASE, Rig, fault_scale
from tests.faults.scenario import KILLED_AT, RECONNECTIONS, Evidence

Strike = Callable[[Rig, Evidence], Awaitable[None]]
MIN_WINDOW_S = 2.0
STOP_WAIT_S = 15.0  # a SIGTERMed service must have exited by then (else SIGKILL, exit -9)


async def redis_info(rig: Rig, field: str) -> int:
    client = aioredis.Redis.from_url(rig.redis.url)
    try:
        info = await client.info()
        return int(info[field])
    finally:
        await client.aclose()


def scaled(full_s: float) -> float:
    """A fault window: `full_s` at SIFT_FAULT_SCALE=1, never under MIN_WINDOW_S."""
    return round(max(full_s * fault_scale(), MIN_WINDOW_S), 1)


def redis_clients_killed(window_s: float, every_s: float = 0.2) -> Strike:
    async def strike(rig: Rig, evidence: Evidence) -> None:
        client = aioredis.Redis.from_url(rig.redis.url)
        kills: list[int] = []
        try:
            end = time.monotonic() + window_s
            while time.monotonic() < end:
                kills.append(int(await client.client_kill_filter(_type="normal", skipme=True)))
                await asyncio.sleep(every_s)
        finally:
            await client.aclose()
        # Every connection killed after the first round was made again in the meantime.
        evidence.update(
            redis_connections_killed=sum(kills), rounds=len(kills), reconnections=sum(kills[1:])
        )

    return strike


TERMINATE = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = $1 AND pid <> pg_backend_pid()"""
BACKENDS_SINCE = """
SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND backend_start > $2"""


def admin_dsn(rig: Rig) -> str:
    admin = make_url(rig.postgres.admin_url).set(drivername="postgresql")
    return admin.render_as_string(hide_password=False)


def backends_since(rig: Rig, since: datetime) -> Callable[[], Awaitable[int]]:
    """Connections the services opened to the run's database after `since`."""

    async def count() -> int:
        conn = await asyncpg.connect(admin_dsn(rig), timeout=5)
        try:
            return int(await conn.fetchval(BACKENDS_SINCE, DATABASE, since))
        finally:
            await conn.close()

    return count


def postgres_backends_terminated(window_s: float, every_s: float = 0.5) -> Strike:
    async def strike(rig: Rig, evidence: Evidence) -> None:
        conn = await asyncpg.connect(admin_dsn(rig))
        terminated: list[int] = []
        try:
            end = time.monotonic() + window_s
            while time.monotonic() < end:
                terminated.append(int(await conn.fetchval(TERMINATE, DATABASE)))
                await asyncio.sleep(every_s)
        finally:
            await conn.close()
        evidence.update(
            backends_terminated=sum(terminated),
            rounds=len(terminated),
            reconnections=sum(terminated[1:]),
        )

    return strike


def kill9(name: str) -> Strike:
    async def strike(rig: Rig, evidence: Evidence) -> None:
        evidence["chat_calls_open"] = rig.chat.open_calls
        process = rig.pipeline.services[name].process
        evidence[KILLED_AT] = time.monotonic()
        rig.pipeline.kill9(name)
        evidence["exit_code"] = process.returncode if process else None
        started = time.monotonic()
        await asyncio.to_thread(rig.pipeline.restart, name)
        evidence["restart_s"] = round(time.monotonic() - started, 2)

    return strike


def sigterm(name: str) -> Strike:
    async def strike(rig: Rig, evidence: Evidence) -> None:
        evidence["chat_calls_open_at_sigterm"] = rig.chat.open_calls
        evidence["embedding_calls_open_at_sigterm"] = rig.embed.open_calls
        answered = rig.chat.answered
        started = time.monotonic()
        evidence["exit_code"] = await asyncio.to_thread(rig.pipeline.stop, name, STOP_WAIT_S)
        evidence["stop_s"] = round(time.monotonic() - started, 2)
        evidence["chat_calls_answered_while_stopping"] = rig.chat.answered - answered
        started = time.monotonic()
        await asyncio.to_thread(rig.pipeline.restart, name)
        evidence["restart_s"] = round(time.monotonic() - started, 2)

    return strike


def exited(code: int) -> Callable[[Evidence], list[str]]:
    def check(evidence: Evidence) -> list[str]:
        found = evidence.get("exit_code")
        return [] if found == code else [f"exit code {found}, expected {code}"]

    return check


async def rabbit_node_restarted(rig: Rig, evidence: Evidence) -> None:
    evidence["restart_s"] = round(await asyncio.to_thread(rig.rabbit.restart_node), 2)

    async def connections() -> int:  # the services' connections to the restarted node
        run = await asyncio.to_thread(rig.rabbit.ctl, "list_connections", "--quiet", "name")
        return sum(1 for line in run.stdout.splitlines() if "->" in line)

    evidence[RECONNECTIONS] = connections


def rabbit_connections_cut(window_s: float) -> Strike:
    async def strike(rig: Rig, evidence: Evidence) -> None:
        refused = rig.proxy.stats.refused
        evidence["connections_cut"] = await rig.background.call(rig.proxy.cut(window_s))
        await asyncio.sleep(window_s)
        await rig.background.call(rig.proxy.heal())
        evidence["reconnects_refused"] = rig.proxy.stats.refused - refused
        accepted = rig.proxy.stats.accepted

        async def made() -> int:
            return rig.proxy.stats.accepted - accepted

        evidence[RECONNECTIONS] = made

    return strike


def redis_restarted(*, lose_data: bool) -> Strike:
    async def strike(rig: Rig, evidence: Evidence) -> None:
        took = await asyncio.to_thread(rig.redis.restart, lose_data=lose_data, down_s=1.0)
        evidence.update(restart_s=round(took, 2), data_lost=lose_data)

        async def clients() -> int:  # the services' connections, not this one
            return await redis_info(rig, "connected_clients") - 1

        evidence[RECONNECTIONS] = clients

    return strike


def postgres_stopped(window_s: float) -> Strike:
    async def strike(rig: Rig, evidence: Evidence) -> None:
        await asyncio.to_thread(rig.postgres.stop)
        evidence["stopped"] = not rig.postgres.running()
        await asyncio.sleep(window_s)
        evidence["start_s"] = round(await asyncio.to_thread(rig.postgres.start), 2)
        evidence[RECONNECTIONS] = backends_since(rig, datetime.now(UTC))

    return strike


def gateway_down(window_s: float) -> Strike:
    async def strike(rig: Rig, evidence: Evidence) -> None:
        evidence["exit_code"] = await asyncio.to_thread(rig.pipeline.stop, "gateway", STOP_WAIT_S)
        await asyncio.sleep(window_s)
        started = time.monotonic()
        await asyncio.to_thread(rig.pipeline.restart, "gateway")
        evidence["restart_s"] = round(time.monotonic() - started, 2)

    return strike


def calls_outlast_the_lease(lease_ms: int, call_s: float) -> Strike:
    """The slowness is the fault: the FAKE's delay (set by the scenario) exceeds the lease;
    this waits for the slow calls open now to finish."""

    async def strike(rig: Rig, evidence: Evidence) -> None:
        evidence.update(lease_ms=lease_ms, call_s=call_s)
        await asyncio.sleep(call_s)

    return strike


async def nothing(rig: Rig, evidence: Evidence) -> None:
    """The input is the fault (a poison document, a burst of copies)."""
