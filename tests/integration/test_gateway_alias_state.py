"""Alias state shared by gateway replicas (FAKE upstreams, real PostgreSQL): two gateways on
one database agree on a switch within 2 s, through LISTEN/NOTIFY and, when the listening
connection is cut, through the reconnect's re-read; a restart keeps the switch; without a
database the gateway says its aliases are its own."""

import asyncio
import time
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from sift_common.store import migrate
from sift_gateway import ops
from sift_gateway.alias_store_pg import LISTENER_NAME
from tests.support.fake_upstream import Behaviour
from tests.support.gateway import (
    RunningGateway,
    StartFake,
    assert_openai_error,
    chat,
    chat_profile,
    client,
    eventually,
    gateway_replicas,
    running_gateway,
)

pytestmark = pytest.mark.integration

ALIASES = {"chat": "main"}


def dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def fetch(url: str, query: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn(url))
    try:
        return list(await connection.fetch(query))
    finally:
        await connection.close()


async def two_profiles(fakes: StartFake) -> dict[str, dict[str, Any]]:
    main, other = await fakes(), await fakes(model="fake-other")
    return {
        "main": chat_profile(main.url),
        "other": chat_profile(other.url, served_model="fake-other"),
    }


def replicas(
    tmp_path: Path, profiles: dict[str, dict[str, Any]], database: str
) -> AbstractAsyncContextManager[tuple[RunningGateway, RunningGateway]]:
    return gateway_replicas(tmp_path, profiles, ALIASES, database)


def points_at(gateway: RunningGateway, profile: str) -> bool:
    runtime = gateway.state.registry.resolve("chat")
    return runtime is not None and runtime.name == profile


async def test_a_switch_on_one_replica_reaches_the_other_within_2_s_and_survives_restarts(
    tmp_path: Path, fakes: StartFake, fresh_database: str
) -> None:
    await migrate.upgrade(fresh_database)
    profiles = await two_profiles(fakes)
    async with replicas(tmp_path, profiles, fresh_database) as (a, b):
        seeded = await fetch(
            fresh_database, "SELECT alias, profile, updated_by FROM gateway.aliases"
        )
        assert [tuple(row) for row in seeded] == [("chat", "main", "profiles file")]
        async with client(a) as http_a, client(b) as http_b:
            described = (await http_b.get("/admin/profiles")).json()
            assert described["alias_store"]["store"] == "database"
            assert described["alias_store"]["shared"] is True
            switched = await http_a.post("/admin/aliases/chat/switch", json={"profile": "other"})
            assert switched.status_code == 200, switched.text
            assert switched.json()["outcome"] == "switched"
            started = time.monotonic()
            await eventually(lambda: points_at(b, "other"), timeout=2.0, every=0.01)
            print(f"replica b followed after {(time.monotonic() - started) * 1000:.0f} ms")
            assert (await chat(http_b)).json()["model"] == "fake-other"
    rows = await fetch(fresh_database, "SELECT alias, profile FROM gateway.aliases")
    assert [tuple(row) for row in rows] == [("chat", "other")]
    # Both restart with the profiles file still saying chat: main; the database's switch wins.
    async with replicas(tmp_path, profiles, fresh_database) as (a, b):
        assert points_at(a, "other")
        assert points_at(b, "other")
        async with client(a) as http:
            assert (await chat(http)).json()["model"] == "fake-other"


async def test_a_replica_whose_listening_connection_drops_catches_up_on_reconnect(
    tmp_path: Path, fakes: StartFake, fresh_database: str
) -> None:
    await migrate.upgrade(fresh_database)
    profiles = await two_profiles(fakes)
    async with replicas(tmp_path, profiles, fresh_database) as (a, b), client(a) as http:
        # Cut every listening connection from the server side; b's included.
        cut = await fetch(
            fresh_database,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            f" WHERE datname = current_database() AND application_name = '{LISTENER_NAME}'",
        )
        assert len(cut) == 2  # one per replica
        switched = await http.post("/admin/aliases/chat/switch", json={"profile": "other"})
        assert switched.json()["outcome"] == "switched"
        await eventually(lambda: points_at(b, "other"), timeout=5.0, every=0.02)
        await eventually(lambda: b.app[ops.SWITCHER_KEY].store.status()["listening"], timeout=5)


async def test_without_a_database_aliases_live_in_the_process_and_it_says_so(
    tmp_path: Path, fakes: StartFake
) -> None:
    profiles = await two_profiles(fakes)
    async with running_gateway(tmp_path, profiles, ALIASES) as gw, client(gw) as http:
        store = (await http.get("/admin/profiles")).json()["alias_store"]
        assert (store["store"], store["shared"]) == ("memory", False)
        assert "this process only" in store["note"]
        switched = await http.post("/admin/aliases/chat/switch", json={"profile": "other"})
        assert switched.json()["outcome"] == "switched"
        assert (await chat(http)).json()["model"] == "fake-other"
        history = (await http.get("/admin/alias-switches")).json()["switches"]
        assert [(h["from_profile"], h["to_profile"], h["outcome"]) for h in history] == [
            ("main", "other", "switched")
        ]


async def test_revision_0006_creates_and_drops_the_alias_tables(fresh_database: str) -> None:
    tables = (
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'gateway'"
        " AND table_name LIKE 'alias%' ORDER BY 1"
    )
    await migrate.upgrade(fresh_database, "0005")
    assert await fetch(fresh_database, tables) == []
    await migrate.upgrade(fresh_database, "0006")
    assert [r[0] for r in await fetch(fresh_database, tables)] == ["alias_switches", "aliases"]
    await migrate.downgrade(fresh_database, "0005")
    assert await fetch(fresh_database, tables) == []


async def test_two_replicas_cannot_switch_one_alias_at_the_same_time(
    tmp_path: Path, fakes: StartFake, fresh_database: str
) -> None:
    await migrate.upgrade(fresh_database)
    main = await fakes()
    slow = await fakes(model="fake-other", default=Behaviour(delay_s=1.0))  # a slow warm-up
    profiles = {
        "main": chat_profile(main.url),
        "other": chat_profile(slow.url, served_model="fake-other"),
    }
    async with (
        replicas(tmp_path, profiles, fresh_database) as (a, b),
        client(a) as http_a,
        client(b) as http_b,
    ):
        body = {"profile": "other"}
        first = asyncio.create_task(http_a.post("/admin/aliases/chat/switch", json=body))
        await eventually(lambda: bool(slow.chat_requests()), timeout=5)  # a's warm-up is on
        second = await http_b.post("/admin/aliases/chat/switch", json=body)
        assert_openai_error(second, 409, code="switch_in_progress")
        assert (await first).json()["outcome"] == "switched"
        again = await http_b.post("/admin/aliases/chat/switch", json={"profile": "main"})
        assert again.json()["outcome"] == "switched"  # the lock was released
