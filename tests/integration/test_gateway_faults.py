"""The LLM gateway under faults: the real app served in-process against FAKE upstreams that
misbehave on cue (503s, Retry-After, stalls, cut streams, hangs), checked from the outside with
httpx and the official `openai` client.

Every test starts its own gateway (fresh breakers, queues and metrics) with small timeouts.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import openai
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from sift_common.store.migrate import upgrade
from tests.support.fake_upstream import Behaviour, FakeUpstream, running_fake
from tests.support.gateway import (
    RunningGateway,
    chat_profile,
    dead_url,
    embed_profile,
    eventually,
    running_gateway,
)

pytestmark = pytest.mark.integration

StartFake = Callable[..., Awaitable[FakeUpstream]]
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def fakes() -> AsyncIterator[StartFake]:
    """Start FAKE upstreams (`FakeUpstream` fields as keywords); all stopped after the test."""
    async with AsyncExitStack() as stack:

        async def start(**fields: Any) -> FakeUpstream:
            return await stack.enter_async_context(running_fake(FakeUpstream(**fields)))

        yield start


def client(gateway: RunningGateway) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gateway.url, timeout=30)


def openai_client(gateway: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0)


async def chat(
    http: httpx.AsyncClient, headers: dict[str, str] | None = None, **body: Any
) -> httpx.Response:
    return await http.post(
        "/v1/chat/completions", json={"model": "chat", "messages": HI, **body}, headers=headers
    )


async def stream_chat(http: httpx.AsyncClient, **body: Any) -> tuple[httpx.Response, bytes]:
    payload = {"model": "chat", "messages": HI, "stream": True, **body}
    async with http.stream("POST", "/v1/chat/completions", json=payload) as response:
        return response, await response.aread()


def sse_events(raw: bytes) -> list[Any]:
    """The `data:` payloads of an SSE body, JSON-decoded ("[DONE]" kept as a string)."""
    events: list[Any] = []
    for line in raw.split(b"\n"):
        if line.startswith(b"data: "):
            data = line[len(b"data: ") :]
            events.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return events


def assert_openai_error(
    response: httpx.Response, status: int, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str)
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    return error


async def metric(http: httpx.AsyncClient, name: str, **labels: str) -> float:
    """One sample from /metrics (0 when the labelled series does not exist yet)."""
    text = (await http.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


async def upstreams(http: httpx.AsyncClient) -> dict[str, list[dict[str, Any]]]:
    response = await http.get("/admin/upstreams")
    assert response.status_code == 200
    result: dict[str, list[dict[str, Any]]] = response.json()
    return result


async def wait_out_open_window(gw: RunningGateway, profile: str, replica: int) -> None:
    runtime = gw.runtime(profile)
    breaker = runtime.replicas[replica].breaker
    await asyncio.sleep(max(breaker.opened_at + breaker.open_for_s - time.monotonic(), 0) + 0.05)


# --- retries, Retry-After, breakers, fallback -------------------------------------------------


async def test_503s_then_success_is_retried(tmp_path: Path, fakes: StartFake) -> None:
    fake = await fakes(script=[Behaviour(status=503), Behaviour(status=503)])
    async with (
        running_gateway(tmp_path, {"main": chat_profile(fake.url)}, {"chat": "main"}) as gw,
        client(gw) as http,
    ):
        response = await chat(http)
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"].startswith("Hello")
        assert len(fake.chat_requests()) == 3
        assert (
            await metric(http, "sift_gateway_upstream_retries_total", profile="main", reason="503")
            == 2
        )
        assert (await upstreams(http))["main"][0]["breaker"] == "closed"


async def test_retry_after_is_honoured(tmp_path: Path, fakes: StartFake) -> None:
    fake = await fakes(script=[Behaviour(status=503, retry_after="1")])
    async with (
        running_gateway(tmp_path, {"main": chat_profile(fake.url)}, {"chat": "main"}) as gw,
        client(gw) as http,
    ):
        response = await chat(http)
        assert response.status_code == 200, response.text
        first, second = fake.chat_requests()
        assert second["at"] - first["at"] >= 0.95  # the header said 1 s; backoff alone is ~0.02


async def test_retry_after_longer_than_the_deadline_gives_up_with_503(
    tmp_path: Path, fakes: StartFake
) -> None:
    fake = await fakes(default=Behaviour(status=503, retry_after="30"))
    profile = chat_profile(fake.url, timeouts={"total_s": 3.0}, retries={"max_delay_s": 10.0})
    async with (
        running_gateway(tmp_path, {"main": profile}, {"chat": "main"}) as gw,
        client(gw) as http,
    ):
        started = time.monotonic()
        response = await chat(http)
        assert time.monotonic() - started < 2.5  # did not sleep 30 s first
        assert_openai_error(response, 503, code="upstream_unavailable")
        assert response.headers["Retry-After"] == "30"
        assert len(fake.chat_requests()) == 1


async def test_breaker_opens_on_failures_and_closes_after_successes(
    tmp_path: Path, fakes: StartFake
) -> None:
    broken = await fakes(default=Behaviour(status=500))
    healthy = await fakes()
    profile = chat_profile(
        broken.url,
        healthy.url,
        breaker={"failure_threshold": 2, "success_threshold": 2, "open_for_s": 2.0},
    )
    async with (
        running_gateway(tmp_path, {"main": profile}, {"chat": "main"}) as gw,
        client(gw) as http,
    ):
        # Least-outstanding picks the first replica while idle: two 500s open its breaker,
        # the third attempt goes to the healthy one.
        assert (await chat(http)).status_code == 200
        assert len(broken.chat_requests()) == 2
        assert len(healthy.chat_requests()) == 1
        broken_status, healthy_status = (await upstreams(http))["main"]
        assert broken_status["url"] == broken.url
        assert broken_status["breaker"] == "open"
        assert "500" in broken_status["last_error"]
        assert healthy_status["breaker"] == "closed"
        assert await metric(http, "sift_gateway_breaker_open", upstream=broken.url) == 1

        for _ in range(4):  # while open, nothing is sent to the broken replica
            assert (await chat(http)).status_code == 200
        assert len(broken.chat_requests()) == 2
        assert len(healthy.chat_requests()) == 5

        broken.default = Behaviour()  # it recovers; wait out open_for_s (half-open)
        await wait_out_open_window(gw, "main", 0)
        for _ in range(2):  # requests probe it one at a time: two successes close it
            assert (await chat(http)).status_code == 200
        assert len(broken.chat_requests()) == 4
        assert (await upstreams(http))["main"][0]["breaker"] == "closed"
        assert await metric(http, "sift_gateway_breaker_open", upstream=broken.url) == 0


async def test_half_open_failure_reopens_the_breaker(tmp_path: Path, fakes: StartFake) -> None:
    broken = await fakes(default=Behaviour(status=502))
    healthy = await fakes()
    profile = chat_profile(
        broken.url, healthy.url, breaker={"failure_threshold": 1, "open_for_s": 1.0}
    )
    async with (
        running_gateway(tmp_path, {"main": profile}, {"chat": "main"}) as gw,
        client(gw) as http,
    ):
        assert (await chat(http)).status_code == 200
        assert len(broken.chat_requests()) == 1
        await wait_out_open_window(gw, "main", 0)
        assert (await chat(http)).status_code == 200  # the half-open probe fails, then healthy
        assert len(broken.chat_requests()) == 2
        assert (await upstreams(http))["main"][0]["breaker"] == "open"
        assert (await chat(http)).status_code == 200
        assert len(broken.chat_requests()) == 2


async def test_fallback_profile_serves_when_the_primary_is_down(
    tmp_path: Path, fakes: StartFake
) -> None:
    backup = await fakes(model="fake-backup")
    profiles = {
        "primary": chat_profile(dead_url(), fallback="backup"),
        "backup": chat_profile(backup.url, served_model="fake-backup"),
    }
    async with (
        running_gateway(tmp_path, profiles, {"chat": "primary"}) as gw,
        client(gw) as http,
    ):
        assert (await upstreams(http))["primary"][0]["healthy"] is False  # its probe failed
        response = await chat(http)
        assert response.status_code == 200, response.text
        assert response.json()["model"] == "fake-backup"
        [received] = backup.chat_requests()
        assert received["body"]["model"] == "fake-backup"  # rewritten for the fallback
        assert await metric(http, "sift_gateway_fallbacks_total", profile="primary") == 1
        assert (
            await metric(
                http, "sift_gateway_requests_total", profile="backup", endpoint="chat", status="200"
            )
            == 1
        )


async def test_fallback_after_the_primary_breaker_opens(tmp_path: Path, fakes: StartFake) -> None:
    primary = await fakes(default=Behaviour(status=503))
    backup = await fakes(model="fake-backup")
    profiles = {
        "primary": chat_profile(primary.url, fallback="backup", breaker={"failure_threshold": 2}),
        "backup": chat_profile(backup.url, served_model="fake-backup"),
    }
    async with (
        running_gateway(tmp_path, profiles, {"chat": "primary"}) as gw,
        client(gw) as http,
    ):
        response = await chat(http)
        assert response.status_code == 200, response.text
        assert response.json()["model"] == "fake-backup"
        assert len(primary.chat_requests()) == 2
        assert await metric(http, "sift_gateway_fallbacks_total", profile="primary") == 1


async def test_no_replica_and_no_fallback_is_503(tmp_path: Path) -> None:
    async with (
        running_gateway(tmp_path, {"main": chat_profile(dead_url())}, {"chat": "main"}) as gw,
        client(gw) as http,
    ):
        response = await chat(http)
        error = assert_openai_error(response, 503, code="upstream_unavailable")
        assert "main" in error["message"]
        assert int(response.headers["Retry-After"]) >= 1


# --- timeouts and broken streams ---------------------------------------------------------------


async def test_ttft_timeout_retries_within_the_deadline_then_504(
    tmp_path: Path, fakes: StartFake
) -> None:
    fake = await fakes(default=Behaviour(delay_s=5.0))
    profile = chat_profile(
        fake.url,
        timeouts={"ttft_s": 0.3, "total_s": 4.0},
        retries={"max_attempts": 3},
        breaker={"failure_threshold": 10},
    )
    async with (
        running_gateway(tmp_path, {"main": profile}, {"chat": "main"}) as gw,
        client(gw) as http,
    ):
        started = time.monotonic()
        response, _ = await stream_chat(http)
        elapsed = time.monotonic() - started
        error = assert_openai_error(response, 504, code="upstream_timeout")
        assert error["type"] == "upstream_error"
        assert "first token" in error["message"]
        assert len(fake.chat_requests()) == 3  # every attempt, all within total_s
        assert elapsed < 4.0

        fake.script = [Behaviour(delay_s=5.0)]  # one slow attempt, then a quick one
        fake.default = Behaviour()
        response, raw = await stream_chat(http)
        assert response.status_code == 200
        assert sse_events(raw)[-1] == "[DONE]"
        assert len(fake.chat_requests()) == 5


async def test_stall_mid_stream_is_an_error_event_without_retry(
    tmp_path: Path, fakes: StartFake
) -> None:
    fake = await fakes(script=[Behaviour(stall_after_chunks=2)])
    profile = chat_profile(fake.url, timeouts={"stall_s": 0.5})
    async with (
        running_gateway(tmp_path, {"main": profile}, {"chat": "main"}) as gw,
        client(gw) as http,
    ):
        response, raw = await stream_chat(http)
        assert response.status_code == 200  # the stream had started: errors go in-band
        events = sse_events(raw)
        assert [e["choices"][0]["delta"] for e in events[:2]] == [
            {"role": "assistant", "content": ""},
            {"content": "Hello "},
        ]
        assert "[DONE]" not in events
        error = events[-1]["error"]
        assert error["code"] == "stream_interrupted"
        assert "stalled" in error["message"]
        await asyncio.sleep(0.3)
        assert len(fake.chat_requests()) == 1
        assert (await upstreams(http))["main"][0]["outstanding"] == 0


async def test_stream_cut_mid_way_is_an_error_event_without_retry(
    tmp_path: Path, fakes: StartFake
) -> None:
    fake = await fakes(script=[Behaviour(cut_after_chunks=2)])
    async with (
        running_gateway(tmp_path, {"main": chat_profile(fake.url)}, {"chat": "main"}) as gw,
        client(gw) as http,
    ):
        response, raw = await stream_chat(http)
        assert response.status_code == 200
        events = sse_events(raw)
        assert len(events) == 3
        assert "[DONE]" not in events
        assert events[-1]["error"]["code"] == "stream_interrupted"
        assert "broke" in events[-1]["error"]["message"]
        await asyncio.sleep(0.3)
        assert len(fake.chat_requests()) == 1
        _, raw = await stream_chat(http)  # the next stream is whole
        assert sse_events(raw)[-1] == "[DONE]"


# --- admission: priority and queue timeout ------------------------------------------------------


async def test_priority_order_under_a_saturated_cap(tmp_path: Path, fakes: StartFake) -> None:
    fake = await fakes(script=[Behaviour(delay_s=1.5)])
    profile = chat_profile(fake.url, max_in_flight_per_replica=1, priority_scheduling=True)
    async with (
        running_gateway(tmp_path, {"main": profile}, {"chat": "main"}) as gw,
        client(gw) as http,
    ):
        admission = gw.runtime("main").admission
        first = asyncio.create_task(chat(http, messages=[{"role": "user", "content": "long"}]))
        await eventually(lambda: len(fake.chat_requests()) == 1)
        queued = []
        for index, priority in enumerate(["backfill", "normal", "interactive"]):
            message = [{"role": "user", "content": priority}]
            headers = {"x-sift-priority": priority}
            queued.append(asyncio.create_task(chat(http, headers=headers, messages=message)))
            await eventually(lambda n=index + 1: len(admission.waiters) == n)
        responses = await asyncio.gather(first, *queued)
        assert [r.status_code for r in responses] == [200] * 4
        received = [r["body"] for r in fake.chat_requests()]
        assert [b["messages"][0]["content"] for b in received] == [
            "long",
            "interactive",
            "normal",
            "backfill",
        ]
        assert [b["priority"] for b in received] == [1, 0, 1, 2]  # vLLM's priority, forwarded
        assert admission.in_flight == 0


async def test_priority_is_not_forwarded_without_priority_scheduling(
    tmp_path: Path, fakes: StartFake
) -> None:
    fake = await fakes()
    async with (
        running_gateway(tmp_path, {"main": chat_profile(fake.url)}, {"chat": "main"}) as gw,
        client(gw) as http,
    ):
        response = await chat(http, headers={"x-sift-priority": "interactive"})
        assert response.status_code == 200
        assert "priority" not in fake.chat_requests()[0]["body"]


async def test_with_a_replica_down_requests_queue_for_the_live_one(
    tmp_path: Path, fakes: StartFake
) -> None:
    live = await fakes(default=Behaviour(delay_s=0.3))
    profile = chat_profile(dead_url(), live.url, max_in_flight_per_replica=1)
    async with (
        running_gateway(tmp_path, {"main": profile}, {"chat": "main"}) as gw,
        client(gw) as http,
    ):
        responses = await asyncio.gather(*(chat(http) for _ in range(3)))
        assert [r.status_code for r in responses] == [200, 200, 200], responses[-1].text
        assert len(live.chat_requests()) == 3
        assert gw.runtime("main").admission.in_flight == 0


async def test_queue_timeout_is_503_with_retry_after(tmp_path: Path, fakes: StartFake) -> None:
    fake = await fakes(script=[Behaviour(delay_s=2.0)])
    profile = chat_profile(fake.url, max_in_flight_per_replica=1, max_queue_wait_s=0.3)
    async with (
        running_gateway(tmp_path, {"main": profile}, {"chat": "main"}) as gw,
        client(gw) as http,
    ):
        slow = asyncio.create_task(chat(http))
        await eventually(lambda: len(fake.chat_requests()) == 1)
        response = await chat(http)
        error = assert_openai_error(response, 503)
        assert "free upstream slot" in error["message"]
        assert response.headers["Retry-After"] == "1"
        assert (await slow).status_code == 200
        assert len(fake.chat_requests()) == 1  # the refused one never reached the upstream
        assert gw.runtime("main").admission.waiters == []


# --- context clamping ----------------------------------------------------------------------------


async def test_context_clamping(tmp_path: Path, fakes: StartFake) -> None:
    fake = await fakes(max_model_len=256)
    async with (
        running_gateway(tmp_path, {"main": chat_profile(fake.url)}, {"chat": "main"}) as gw,
        client(gw) as http,
    ):
        assert (await upstreams(http))["main"][0]["max_model_len"] == 256  # learnt by the probe

        # Small requests are sent as they are, without a /tokenize round trip.
        assert (await chat(http, max_tokens=10)).status_code == 200
        assert (await chat(http)).status_code == 200
        assert fake.tokenize_requests() == []
        assert fake.chat_requests()[0]["body"]["max_tokens"] == 10
        assert "max_tokens" not in fake.chat_requests()[1]["body"]

        # A big max_tokens is clamped to what the prompt leaves (fake: 3 words + 4 = 7 tokens).
        words = [{"role": "user", "content": "one two three"}]
        assert (await chat(http, messages=words, max_tokens=1000)).status_code == 200
        assert fake.chat_requests()[-1]["body"]["max_tokens"] == 256 - 7
        response = await chat(http, messages=words, max_completion_tokens=5000)
        assert response.status_code == 200
        assert fake.chat_requests()[-1]["body"]["max_completion_tokens"] == 256 - 7
        assert len(fake.tokenize_requests()) == 2
        assert await metric(http, "sift_gateway_max_tokens_clamped_total", profile="main") == 2

        # A prompt that alone overflows the context is refused, naming both sizes.
        big = [{"role": "user", "content": " ".join(["word"] * 300)}]
        response = await chat(http, messages=big, max_tokens=10)
        error = assert_openai_error(response, 400, code="context_length_exceeded", param="messages")
        assert "304" in error["message"]
        assert "256" in error["message"]
        assert len(fake.chat_requests()) == 4  # not sent upstream


# --- request validation and model resolution ----------------------------------------------------


@pytest.fixture
async def chat_and_embed(
    tmp_path: Path, fakes: StartFake
) -> AsyncIterator[tuple[RunningGateway, FakeUpstream, FakeUpstream]]:
    chat_fake = await fakes()
    embed_fake = await fakes(model="fake-embed")
    profiles = {"main": chat_profile(chat_fake.url), "vectors": embed_profile(embed_fake.url)}
    aliases = {"chat": "main", "embed": "vectors"}
    async with running_gateway(tmp_path, profiles, aliases) as gw:
        yield gw, chat_fake, embed_fake


async def test_unknown_model_is_404_and_wrong_kind_is_400(
    chat_and_embed: tuple[RunningGateway, FakeUpstream, FakeUpstream],
) -> None:
    gw, _, _ = chat_and_embed
    async with client(gw) as http:
        error = assert_openai_error(
            await chat(http, model="nope"), 404, code="model_not_found", param="model"
        )
        assert "'nope'" in error["message"]
        assert "chat" in error["message"]
        assert "embed" in error["message"]
        assert_openai_error(
            await chat(http, model="embed"), 400, code="wrong_model_kind", param="model"
        )
        response = await http.post("/v1/embeddings", json={"model": "chat", "input": "x"})
        assert_openai_error(response, 400, code="wrong_model_kind", param="model")
        # A profile name and a served model name resolve too.
        assert (await chat(http, model="main")).status_code == 200
        assert (await chat(http, model="fake-chat")).status_code == 200


USER = [{"role": "user", "content": "x"}]
MALFORMED = [
    ("/v1/chat/completions", b"{not json", None),
    ("/v1/chat/completions", b"", None),
    ("/v1/chat/completions", b"[]", None),
    ("/v1/chat/completions", {"messages": USER}, "model"),
    ("/v1/chat/completions", {"model": "chat"}, "messages"),
    ("/v1/chat/completions", {"model": "chat", "messages": [{"content": "x"}]}, "messages[0]"),
    ("/v1/chat/completions", {"model": "chat", "messages": USER, "max_tokens": "9"}, "max_tokens"),
    ("/v1/chat/completions", {"model": "chat", "messages": USER, "stream": "yes"}, "stream"),
    ("/v1/embeddings", {"model": "embed"}, "input"),
    ("/v1/embeddings", {"model": "embed", "input": []}, "input"),
    ("/v1/embeddings", {"input": "x"}, "model"),
]


@pytest.mark.parametrize(("path", "body", "param"), MALFORMED)
async def test_malformed_requests_are_400_naming_the_param(
    chat_and_embed: tuple[RunningGateway, FakeUpstream, FakeUpstream],
    path: str,
    body: bytes | dict[str, Any],
    param: str | None,
) -> None:
    gw, chat_fake, _ = chat_and_embed
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    async with client(gw) as http:
        headers = {"content-type": "application/json"}
        response = await http.post(path, content=raw, headers=headers)
        error = assert_openai_error(response, 400, param=param)
        assert error["type"] == "invalid_request_error"
        if param is not None:
            assert param in error["message"]
        assert chat_fake.chat_requests() == []


async def test_bad_priority_header_is_400(
    chat_and_embed: tuple[RunningGateway, FakeUpstream, FakeUpstream],
) -> None:
    gw, _, _ = chat_and_embed
    async with client(gw) as http:
        response = await chat(http, headers={"x-sift-priority": "urgent"})
        assert_openai_error(response, 400, param="x-sift-priority")


# --- the official openai client, /v1/models ------------------------------------------------------


async def test_openai_client_works_unchanged(
    chat_and_embed: tuple[RunningGateway, FakeUpstream, FakeUpstream],
) -> None:
    gw, chat_fake, embed_fake = chat_and_embed
    async with openai_client(gw) as oai:
        completion = await oai.chat.completions.create(model="chat", messages=HI)
        assert completion.choices[0].message.content == "Hello from the fake upstream."
        assert completion.usage is not None

        stream = await oai.chat.completions.create(model="chat", messages=HI, stream=True)
        pieces = [chunk.choices[0].delta.content or "" async for chunk in stream]
        assert "".join(pieces) == "Hello from the fake upstream. "

        vectors = await oai.embeddings.create(model="embed", input=["a", "b"])
        assert [item.index for item in vectors.data] == [0, 1]
        assert vectors.data[0].embedding == pytest.approx([0.1] * 8)
        assert embed_fake.requests[-1]["body"]["model"] == "fake-embed"

        models = await oai.models.list()
        assert {model.id for model in models.data} == {"chat", "embed", "main", "vectors"}
    assert len(chat_fake.chat_requests()) == 2


async def test_openai_client_raises_the_right_exceptions(tmp_path: Path, fakes: StartFake) -> None:
    fake = await fakes()
    profiles = {"main": chat_profile(fake.url), "gone": chat_profile(dead_url())}
    async with (
        running_gateway(tmp_path, profiles, {"chat": "main"}) as gw,
        openai_client(gw) as oai,
    ):
        with pytest.raises(openai.BadRequestError) as bad:
            await oai.chat.completions.create(model="chat", messages=[])
        assert bad.value.status_code == 400
        assert bad.value.param == "messages"
        with pytest.raises(openai.NotFoundError) as missing:
            await oai.chat.completions.create(model="nope", messages=HI)
        assert missing.value.code == "model_not_found"
        with pytest.raises(openai.InternalServerError) as down:
            await oai.chat.completions.create(model="gone", messages=HI)
        assert down.value.status_code == 503
        assert down.value.response.headers["retry-after"] == "5"


async def test_models_lists_aliases_and_profiles(
    chat_and_embed: tuple[RunningGateway, FakeUpstream, FakeUpstream],
) -> None:
    gw, _, _ = chat_and_embed
    async with client(gw) as http:
        response = await http.get("/v1/models")
        assert response.status_code == 200
        body = response.json()
        assert body["object"] == "list"
        assert [m["id"] for m in body["data"]] == ["chat", "embed", "main", "vectors"]
        assert all(m["object"] == "model" for m in body["data"])


# --- readiness, engine watchdog, admin -----------------------------------------------------------


async def test_readiness_follows_the_probes(tmp_path: Path, fakes: StartFake) -> None:
    fake = await fakes()
    async with (
        running_gateway(
            tmp_path,
            {"main": chat_profile(fake.url)},
            {"chat": "main"},
            gateway_probe_interval_s=0.2,
        ) as gw,
        client(gw) as http,
    ):
        assert (await http.get("/health/live")).status_code == 200
        ready = await http.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["profiles"] == {"main": True}
        assert ready.json()["request_log"] == "disabled"

        fake.down = True  # the only replica stops serving

        async def not_ready() -> bool:
            return (await http.get("/health/ready")).status_code == 503

        await eventually(not_ready)
        details = (await http.get("/health/ready")).json()
        assert details["status"] == "not ready"
        assert details["profiles"] == {"main": False}
        [replica] = (await upstreams(http))["main"]
        assert replica["healthy"] is False
        assert replica["last_error"].startswith("probe:")
        assert (await chat(http)).status_code == 503  # not routed to an unhealthy replica

        fake.down = False

        async def ready_again() -> bool:
            return (await http.get("/health/ready")).status_code == 200

        await eventually(ready_again)
        assert (await chat(http)).status_code == 200


async def test_engine_hang_marks_the_replica_unhealthy(tmp_path: Path, fakes: StartFake) -> None:
    fake = await fakes()
    async with (
        running_gateway(
            tmp_path,
            {"main": chat_profile(fake.url)},
            {"chat": "main"},
            gateway_probe_interval_s=0.1,
        ) as gw,
        client(gw) as http,
    ):
        gw.prober.stall_after_s = 0.5
        assert (await http.get("/health/ready")).status_code == 200
        fake.running_requests, fake.generated_tokens = 3, 1234  # busy, but no token comes out

        async def hung() -> bool:
            [replica] = (await upstreams(http))["main"]
            return replica["healthy"] is False

        await eventually(hung)
        [replica] = (await upstreams(http))["main"]
        assert "engine hung" in replica["last_error"]
        assert (await http.get("/health/ready")).status_code == 503

        fake.generated_tokens += 10  # tokens flow again

        async def recovered() -> bool:
            return (await http.get("/health/ready")).status_code == 200

        await eventually(recovered)


async def test_admin_switches_an_alias_at_runtime(tmp_path: Path, fakes: StartFake) -> None:
    first = await fakes()
    other = await fakes(model="fake-other")
    vectors = await fakes(model="fake-embed")
    profiles = {
        "main": chat_profile(first.url),
        "other": chat_profile(other.url, served_model="fake-other"),
        "vectors": embed_profile(vectors.url),
    }
    async with (
        running_gateway(tmp_path, profiles, {"chat": "main", "embed": "vectors"}) as gw,
        client(gw) as http,
    ):
        assert (await chat(http)).json()["model"] == "fake-chat"
        switched = await http.put("/admin/aliases/chat", json={"profile": "other"})
        assert switched.status_code == 200
        assert switched.json() == {"alias": "chat", "profile": "other"}
        response = await chat(http)
        assert response.json()["model"] == "fake-other"
        assert len(first.chat_requests()) == 1
        assert other.chat_requests()[0]["body"]["model"] == "fake-other"

        wrong_kind = await http.put("/admin/aliases/chat", json={"profile": "vectors"})
        assert_openai_error(wrong_kind, 409, param="profile")
        unknown = await http.put("/admin/aliases/chat", json={"profile": "nope"})
        assert_openai_error(unknown, 400, param="profile")
        not_json = await http.put("/admin/aliases/chat", content=b"other")
        assert_openai_error(not_json, 400)

        described = (await http.get("/admin/profiles")).json()
        assert described["aliases"] == {"chat": "other", "embed": "vectors"}
        assert set(described["profiles"]) == {"main", "other", "vectors"}
        assert (await chat(http)).json()["model"] == "fake-other"


async def test_overhead_header_is_present_and_small(tmp_path: Path, fakes: StartFake) -> None:
    fake = await fakes()
    async with (
        running_gateway(tmp_path, {"main": chat_profile(fake.url)}, {"chat": "main"}) as gw,
        client(gw) as http,
    ):
        for _ in range(3):
            response = await chat(http, headers={"x-request-id": "req-123"})
            assert response.status_code == 200
            assert response.headers["x-request-id"] == "req-123"
            assert 0 <= float(response.headers["x-sift-overhead-ms"]) < 100
        response, _ = await stream_chat(http)
        assert 0 <= float(response.headers["x-sift-overhead-ms"]) < 100


# --- request logs in PostgreSQL ------------------------------------------------------------------


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def test_request_logs_land_in_postgres(
    tmp_path: Path, fakes: StartFake, fresh_database: str
) -> None:
    await upgrade(fresh_database)
    fake = await fakes()
    async with (
        running_gateway(
            tmp_path,
            {"main": chat_profile(fake.url)},
            {"chat": "main"},
            database_url=fresh_database,
            gateway_request_log=True,
        ) as gw,
        client(gw) as http,
    ):
        for index in range(4):
            response = await chat(http, headers={"x-request-id": f"log-{index}"})
            assert response.status_code == 200
        assert (
            await chat(http, model="nope", headers={"x-request-id": "log-404"})
        ).status_code == 404
        connection = await asyncpg.connect(asyncpg_dsn(fresh_database))
        try:

            async def all_rows_written() -> bool:
                count = await connection.fetchval("SELECT count(*) FROM gateway.request_logs")
                return bool(count == 5)

            await eventually(all_rows_written, timeout=15)
            rows = await connection.fetch(
                "SELECT request_id, profile, model, upstream, status_code, latency_ms, error"
                " FROM gateway.request_logs ORDER BY request_id"
            )
        finally:
            await connection.close()
        by_id = {row["request_id"]: row for row in rows}
        assert set(by_id) == {"log-0", "log-1", "log-2", "log-3", "log-404"}
        assert by_id["log-0"]["status_code"] == 200
        assert by_id["log-0"]["profile"] == "main"
        assert by_id["log-0"]["model"] == "chat"
        assert by_id["log-0"]["upstream"] == fake.url
        assert by_id["log-0"]["latency_ms"] > 0
        assert by_id["log-404"]["status_code"] == 404
        assert "nope" in by_id["log-404"]["error"]
        ready = (await http.get("/health/ready")).json()
        assert ready["request_log"]["ok"] is True
        assert ready["request_log"]["buffered"] == 0


async def test_gateway_serves_when_postgres_is_unreachable(
    tmp_path: Path, fakes: StartFake
) -> None:
    fake = await fakes()
    nowhere = tmp_path / "no-postgres-here"
    nowhere.mkdir()
    async with (
        running_gateway(
            tmp_path,
            {"main": chat_profile(fake.url)},
            {"chat": "main"},
            database_url=f"postgresql://sift@/sift?host={nowhere}",
            gateway_request_log=True,
        ) as gw,
        client(gw) as http,
    ):
        for _ in range(3):
            assert (await chat(http)).status_code == 200

        async def log_reports_failure() -> bool:
            details = (await http.get("/health/ready")).json()
            return details["request_log"]["ok"] is False

        await eventually(log_reports_failure, timeout=15)
        ready = await http.get("/health/ready")
        assert ready.status_code == 200  # the request log never blocks serving
        log_status = ready.json()["request_log"]
        assert log_status["last_error"]
        assert log_status["buffered"] == 3
        assert (await chat(http)).status_code == 200


async def test_gateway_serves_when_the_log_database_is_dropped(
    tmp_path: Path, fakes: StartFake, database_url: str, fresh_database: str
) -> None:
    await upgrade(fresh_database)
    fake = await fakes()
    async with (
        running_gateway(
            tmp_path,
            {"main": chat_profile(fake.url)},
            {"chat": "main"},
            database_url=fresh_database,
            gateway_request_log=True,
        ) as gw,
        client(gw) as http,
    ):
        assert (await chat(http)).status_code == 200

        async def written() -> bool:
            return bool(gw.state.request_log and gw.state.request_log.last_write_at)

        await eventually(written, timeout=15)
        admin = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            name = make_url(fresh_database).database
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()
        for _ in range(2):
            assert (await chat(http)).status_code == 200

        async def log_reports_failure() -> bool:
            details = (await http.get("/health/ready")).json()
            return details["request_log"]["ok"] is False

        await eventually(log_reports_failure, timeout=15)
        assert (await http.get("/health/ready")).status_code == 200
        assert (await chat(http)).status_code == 200
