"""The LLM gateway's admission control (FAKE upstreams): priority ordering under a saturated
in-flight cap, the queue timeout, and clamping max_tokens to the replica's context.
"""

import asyncio
from pathlib import Path

import pytest

from tests.support.fake_upstream import Behaviour
from tests.support.gateway import (
    StartFake,
    assert_openai_error,
    chat,
    chat_profile,
    client,
    eventually,
    metric,
    running_gateway,
    upstreams,
)

pytestmark = pytest.mark.integration


# --- admission: priority and queue timeout -----------------------------------------------------


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
        error = assert_openai_error(response, 503, code="overloaded")  # spends no retries
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
