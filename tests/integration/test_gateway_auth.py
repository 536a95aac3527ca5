"""The LLM gateway's door (FAKE upstreams): `Authorization: Bearer` keys with scopes
(`inference`, `admin`), a priority cap per key, a request rate per key, failed attempts
throttled per address, the key file rotated while the gateway runs; the official `openai`
client and Sift's own `GatewayClient` work unchanged with a key; health stays open, and
`/metrics` needs the `metrics` scope where it is closed (production's default).
"""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from sift_common.classify import is_transient
from sift_common.gateway_client import GatewayAuthError, GatewayClient
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import (
    HI,
    RunningGateway,
    StartFake,
    assert_openai_error,
    chat,
    chat_profile,
    client,
    embed_profile,
    metric,
    running_gateway,
)
from tests.support.security import key_entry, write_key_file

pytestmark = pytest.mark.integration

INFERENCE_KEY = "i" * 40
ADMIN_KEY = "a" * 40
BACKFILL_KEY = "b" * 40
SLOW_KEY = "r" * 40
THRIFTY_KEY = "t" * 40
KEYS: dict[str, Any] = {
    INFERENCE_KEY: {"name": "analyzer", "priority": "normal"},
    ADMIN_KEY: {"name": "operator", "scopes": ["admin"]},
    BACKFILL_KEY: {"name": "batch", "priority": "backfill"},
    SLOW_KEY: {"name": "slow", "rate_per_s": 0.01},
    THRIFTY_KEY: {"name": "thrifty", "tokens_per_minute": 6},
}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def guarded(
    tmp_path: Path, fakes: StartFake
) -> AsyncIterator[tuple[RunningGateway, FakeUpstream]]:
    chat_fake = await fakes()
    embed_fake = await fakes(model="fake-embed")
    profiles = {
        "main": chat_profile(chat_fake.url, priority_scheduling=True),
        "vectors": embed_profile(embed_fake.url),
        "other": chat_profile(chat_fake.url),
    }
    aliases = {"chat": "main", "embed": "vectors"}
    async with running_gateway(
        tmp_path, profiles, aliases, gateway_api_keys=KEYS, auth_failures_per_minute=5
    ) as gateway:
        yield gateway, chat_fake


def openai_client(gateway: RunningGateway, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


async def test_the_openai_client_works_with_its_api_key_and_is_refused_without(
    guarded: tuple[RunningGateway, FakeUpstream],
) -> None:
    gateway, _ = guarded
    with_key = openai_client(gateway, INFERENCE_KEY)
    completion = await with_key.chat.completions.create(model="chat", messages=HI)  # type: ignore[arg-type]
    assert completion.choices[0].message.content
    vectors = await with_key.embeddings.create(model="embed", input="hello")
    assert vectors.data[0].embedding
    assert "chat" in {model.id async for model in with_key.models.list()}
    with pytest.raises(openai.AuthenticationError) as wrong:
        await openai_client(gateway, "not-a-key").models.list()
    assert wrong.value.status_code == 401
    assert wrong.value.code == "invalid_api_key"
    admin_only = openai_client(gateway, ADMIN_KEY)
    with pytest.raises(openai.PermissionDeniedError) as scope:
        await admin_only.chat.completions.create(model="chat", messages=HI)  # type: ignore[arg-type]
    assert scope.value.code == "insufficient_scope"


@pytest.mark.parametrize(
    "door",
    [
        ("POST", "/v1/chat/completions", {"model": "chat", "messages": HI}),
        ("POST", "/v1/embeddings", {"model": "embed", "input": "x"}),
        ("GET", "/v1/models", None),
    ],
    ids=["chat", "embeddings", "models"],
)
async def test_each_inference_door_refuses_no_key_a_wrong_key_and_the_wrong_scope(
    guarded: tuple[RunningGateway, FakeUpstream], door: tuple[str, str, Any]
) -> None:
    gateway, _ = guarded
    method, path, body = door
    async with client(gateway) as http:

        async def call(headers: dict[str, str]) -> httpx.Response:
            return await http.request(method, path, json=body, headers=headers)

        missing = await call({})
        assert_openai_error(missing, 401, code="invalid_api_key")
        assert missing.headers["WWW-Authenticate"] == "Bearer"
        assert_openai_error(await call(bearer("x" * 40)), 401, code="invalid_api_key")
        assert_openai_error(await call({"Authorization": INFERENCE_KEY}), 401)  # no scheme
        assert_openai_error(await call(bearer(ADMIN_KEY)), 403, code="insufficient_scope")
        assert (await call(bearer(INFERENCE_KEY))).status_code == 200


async def test_the_admin_door_needs_the_admin_scope(
    guarded: tuple[RunningGateway, FakeUpstream],
) -> None:
    gateway, _ = guarded
    async with client(gateway) as http:

        async def switch(headers: dict[str, str]) -> httpx.Response:
            return await http.put("/admin/aliases/chat", json={"profile": "other"}, headers=headers)

        assert_openai_error(await switch({}), 401, code="invalid_api_key")
        assert_openai_error(await switch(bearer("x" * 40)), 401, code="invalid_api_key")
        assert_openai_error(await switch(bearer(INFERENCE_KEY)), 403, code="insufficient_scope")
        assert gateway.state.registry.resolve("chat").name == "main"  # type: ignore[union-attr]
        assert (await http.get("/admin/profiles", headers=bearer(INFERENCE_KEY))).status_code == 403
        assert (await switch(bearer(ADMIN_KEY))).status_code == 200
        assert gateway.state.registry.resolve("chat").name == "other"  # type: ignore[union-attr]
        assert (await http.get("/admin/upstreams", headers=bearer(ADMIN_KEY))).status_code == 200


async def test_a_key_cannot_ask_for_more_than_its_priority_class(
    guarded: tuple[RunningGateway, FakeUpstream],
) -> None:
    gateway, fake = guarded
    async with client(gateway) as http:
        refused = await chat(
            http, headers={**bearer(INFERENCE_KEY), "x-sift-priority": "interactive"}
        )
        error = assert_openai_error(
            refused, 403, code="priority_not_allowed", param="x-sift-priority"
        )
        assert error["type"] == "permission_error"
        assert not fake.chat_requests()  # refused before any upstream work
        assert (
            await chat(http, headers={**bearer(INFERENCE_KEY), "x-sift-priority": "normal"})
        ).status_code == 200
        assert (
            await chat(http, headers={**bearer(INFERENCE_KEY), "x-sift-priority": "backfill"})
        ).status_code == 200
        assert (
            await chat(http, headers=bearer(BACKFILL_KEY))
        ).status_code == 200  # no header: capped
        assert (
            await chat(http, headers=bearer(ADMIN_KEY) | {"x-sift-priority": "interactive"})
        ).status_code == 403
    sent = [request["body"]["priority"] for request in fake.chat_requests()]
    assert sent == [1, 2, 2]  # normal, backfill asked, backfill by the key's cap
    with pytest.raises(openai.PermissionDeniedError):
        await openai_client(gateway, BACKFILL_KEY).chat.completions.create(
            model="chat",
            messages=HI,
            extra_headers={"x-sift-priority": "normal"},  # type: ignore[arg-type]
        )


async def test_health_stays_open_and_metrics_are_open_in_development(
    guarded: tuple[RunningGateway, FakeUpstream],
) -> None:
    gateway, _ = guarded
    async with client(gateway) as http:
        assert (await http.get("/health/live")).status_code == 200
        assert (await http.get("/health/ready")).status_code in (200, 503)
        await http.get("/v1/models", headers=bearer("x" * 40))
        await http.get("/v1/models")
        assert await metric(http, "sift_auth_failures_total", reason="unknown") == 1
        assert await metric(http, "sift_auth_failures_total", reason="missing") == 1


async def test_closed_metrics_need_a_key_with_the_metrics_scope(
    tmp_path: Path, fakes: StartFake
) -> None:
    """What production does by default (`SIFT_OPEN_METRICS` unset), asked for explicitly."""
    scraper = "m" * 40
    keys = {**KEYS, scraper: {"name": "prometheus", "scopes": ["metrics"]}}
    profiles = {"main": chat_profile((await fakes()).url)}
    async with (
        running_gateway(tmp_path, profiles, {"chat": "main"}, gateway_api_keys=keys,
                        open_metrics=False) as gateway,
        client(gateway) as http,
    ):  # fmt: skip
        assert_openai_error(await http.get("/metrics"), 401, code="invalid_api_key")
        wrong = await http.get("/metrics", headers=bearer("x" * 40))
        assert_openai_error(wrong, 401, code="invalid_api_key")
        for other_scope in (INFERENCE_KEY, ADMIN_KEY):
            refused = await http.get("/metrics", headers=bearer(other_scope))
            assert_openai_error(refused, 403, code="insufficient_scope")
        scraped = await http.get("/metrics", headers=bearer(scraper))
        assert scraped.status_code == 200, scraped.text
        assert 'sift_auth_failures_total{reason="forbidden"} 2.0' in scraped.text
        assert (await http.get("/health/live")).status_code == 200
        assert (await http.get("/health/ready")).status_code in (200, 503)
        inference = await http.get("/v1/models", headers=bearer(scraper))
        assert_openai_error(inference, 403, code="insufficient_scope")


async def test_failed_attempts_are_throttled_per_address(
    guarded: tuple[RunningGateway, FakeUpstream],
) -> None:
    gateway, _ = guarded
    async with client(gateway) as http:
        for attempt in range(5):
            assert_openai_error(
                await http.get("/v1/models", headers=bearer(f"guess-{attempt}")), 401
            )
        throttled = await http.get("/v1/models", headers=bearer(INFERENCE_KEY))
        assert_openai_error(throttled, 429, code="too_many_failed_attempts")
        assert int(throttled.headers["Retry-After"]) >= 1
        assert await metric(http, "sift_auth_failures_total", reason="throttled") == 1


async def test_a_key_with_a_rate_is_limited(
    guarded: tuple[RunningGateway, FakeUpstream],
) -> None:
    gateway, _ = guarded
    async with client(gateway) as http:
        assert (await http.get("/v1/models", headers=bearer(SLOW_KEY))).status_code == 200
        limited = await http.get("/v1/models", headers=bearer(SLOW_KEY))
        assert_openai_error(limited, 429, code="rate_limit_exceeded")
        assert int(limited.headers["Retry-After"]) > 1
        assert (await http.get("/v1/models", headers=bearer(INFERENCE_KEY))).status_code == 200


async def test_a_key_with_a_token_budget_is_limited_by_what_its_answers_used(
    guarded: tuple[RunningGateway, FakeUpstream],
) -> None:
    gateway, _ = guarded
    async with client(gateway) as http:
        first = await chat(http, headers=bearer(THRIFTY_KEY))  # 5 prompt tokens and more
        assert first.status_code == 200
        usage = first.json()["usage"]
        assert usage["prompt_tokens"] + usage["completion_tokens"] > 6
        limited = await chat(http, headers=bearer(THRIFTY_KEY))
        assert_openai_error(limited, 429, code="token_limit_exceeded")
        assert int(limited.headers["Retry-After"]) >= 1
        assert (await chat(http, headers=bearer(INFERENCE_KEY))).status_code == 200


async def test_keys_rotate_through_the_key_file_without_a_restart(
    tmp_path: Path, fakes: StartFake
) -> None:
    fake = await fakes()
    old, new = "o" * 40, "n" * 40
    path = tmp_path / "gateway-keys.json"

    write_key_file(path, {old: "analyzer"}, 1_000_000)
    new_hash = key_entry(new)
    profiles = {"main": chat_profile(fake.url)}
    async with (
        running_gateway(tmp_path, profiles, {"chat": "main"}, gateway_api_keys_file=path) as gw,
        client(gw) as http,
    ):

        async def status(key: str) -> int:
            return (await http.get("/v1/models", headers=bearer(key))).status_code

        assert (await status(old), await status(new)) == (200, 401)
        write_key_file(path, {old: "analyzer", new_hash: "analyzer"}, 2_000_000)
        assert (await status(old), await status(new)) == (200, 200)
        write_key_file(path, {new_hash: "analyzer"}, 3_000_000)
        assert (await status(old), await status(new)) == (401, 200)


async def test_the_services_gateway_client_sends_its_key(
    guarded: tuple[RunningGateway, FakeUpstream],
) -> None:
    gateway, _ = guarded
    async with GatewayClient(gateway.url, api_key=INFERENCE_KEY) as keyed:
        assert (await keyed.chat(HI, model="chat")).content
    async with GatewayClient(gateway.url) as anonymous:
        with pytest.raises(GatewayAuthError) as refused:
            await anonymous.chat(HI, model="chat")
    assert refused.value.status == 401
    assert refused.value.code == "invalid_api_key"
    assert is_transient(refused.value)  # the key is wrong, not the work: retried, not dead
    async with GatewayClient(gateway.url, api_key=BACKFILL_KEY) as capped:
        with pytest.raises(GatewayAuthError) as above_cap:
            await capped.chat(HI, model="chat", priority="interactive")
    assert above_cap.value.status == 403
    assert above_cap.value.code == "priority_not_allowed"


async def test_without_keys_a_development_gateway_stays_open(
    tmp_path: Path, fakes: StartFake
) -> None:
    fake = await fakes()
    profiles = {"main": chat_profile(fake.url)}
    async with (
        running_gateway(tmp_path, profiles, {"chat": "main"}) as gw,
        client(gw) as http,
    ):
        assert (await chat(http)).status_code == 200
        assert (await http.get("/admin/profiles")).status_code == 200
