"""Scale to zero at the gateway (FAKE engines): a profile with `wake` whose engine is stopped
makes its requests wait while one wake starts it, then serves them; the idle and demand
gauges; the bounds (the wake timeout, the request's deadline, a refusing hook); and a profile
without `wake`, unchanged. The real engine's wake: tests/integration/test_gateway_wake_vllm.py.

A stopped engine here is a port where nothing listens (connections refused, as a Service
scaled to zero answers); the hook (tests/support/wake_hook.py) starts a FAKE upstream there.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import (
    assert_openai_error,
    chat,
    chat_profile,
    client,
    dead_url,
    eventually,
    metric,
    running_gateway,
)
from tests.support.wake_hook import WakeHook, running_hook

pytestmark = pytest.mark.integration

ENGINE_START_S = 1.0
WAITING = 5
SLOW_PROBES = {"gateway_probe_interval_s": 30.0}
FAST_PROBES = {"gateway_probe_interval_s": 0.1}


@dataclass
class FakeEngine:
    """A FAKE engine on a fixed address, started and stopped on cue (a Deployment scaled 0↔1):
    stopped, nothing listens there."""

    url: str = field(default_factory=dead_url)
    start_s: float = ENGINE_START_S  # how long it takes to "load its weights"
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        await asyncio.sleep(self.start_s)
        self._runner = web.AppRunner(FakeUpstream(url=self.url).app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", int(self.url.rsplit(":", 1)[1])).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@asynccontextmanager
async def engine_and_hook(
    *, running: bool, hook_status: int = 202, starts: bool = True
) -> AsyncIterator[tuple[FakeEngine, WakeHook]]:
    engine = FakeEngine(start_s=0 if running else ENGINE_START_S)
    if running:
        await engine.start()
        engine.start_s = ENGINE_START_S
    hook = WakeHook(engine.start if starts else None, status=hook_status)
    try:
        async with running_hook(hook):
            yield engine, hook
    finally:
        await engine.stop()


async def _gauge(http: httpx.AsyncClient, name: str, value: float) -> bool:
    return await metric(http, name, profile="main") == value


async def readiness(http: httpx.AsyncClient) -> tuple[int, str, str | None]:
    answer = await http.get("/health/ready")
    check = answer.json()["checks"]["profile:main"]
    return answer.status_code, answer.json()["status"], check["detail"]


async def test_requests_wait_while_the_hook_starts_the_engine_and_then_succeed(
    tmp_path: Path,
) -> None:
    async with engine_and_hook(running=True) as (engine, hook):
        profile = chat_profile(engine.url, wake={"url": hook.url, "poll_s": 0.1})
        # Probes every 30 s: the requests' refused connections find the stopped engine.
        async with (
            running_gateway(tmp_path, {"main": profile}, {"chat": "main"}, **SLOW_PROBES) as gw,
            client(gw) as http,
        ):
            assert (await chat(http)).status_code == 200
            await asyncio.sleep(0.3)
            assert await metric(http, "sift_gateway_idle_seconds", profile="main") >= 0.3
            assert await metric(http, "sift_gateway_demand", profile="main") == 0

            await engine.stop()
            started = time.monotonic()
            requests = [asyncio.create_task(chat(http)) for _ in range(WAITING)]
            await eventually(lambda: _gauge(http, "sift_gateway_demand", WAITING), timeout=0.9)
            status, overall, detail = await readiness(http)
            assert (status, overall) == (200, "ready"), "waking on purpose keeps it ready"
            assert detail is not None
            assert detail.startswith("waking: engine started by hook at ")
            assert detail.endswith(f", {WAITING} requests waiting; 0 of 1 replicas healthy")
            assert await metric(http, "sift_gateway_idle_seconds", profile="main") == 0

            answers = await asyncio.gather(*requests)
            waited = time.monotonic() - started
            assert [a.status_code for a in answers] == [200] * WAITING, answers[0].text
            assert waited >= ENGINE_START_S
            assert len(hook.calls) == 1, "one wake, however many requests waited"
            assert hook.calls[0]["profile"] == "main"
            assert hook.calls[0]["served_model"] == "fake-chat"
            assert 1 <= hook.calls[0]["waiting"] <= WAITING
            woken = {"profile": "main", "outcome": "woken"}
            assert await metric(http, "sift_gateway_wakes_total", **woken) == 1
            assert await metric(http, "sift_gateway_wake_seconds_count", profile="main") == 1
            assert await metric(http, "sift_gateway_demand", profile="main") == 0
            profiles = (await http.get("/admin/profiles")).json()["profiles"]
            assert (profiles["main"]["demand"], profiles["main"]["wake"]) == (0, "awake")


async def test_without_a_hook_an_autoscaler_watching_demand_starts_the_engine(
    tmp_path: Path,
) -> None:
    """The Kubernetes policy's shape (docs/deploy.md): no hook; the scaler sees demand > 0."""
    engine = FakeEngine()
    profile = chat_profile(engine.url, wake={"poll_s": 0.1})
    try:
        async with (
            running_gateway(tmp_path, {"main": profile}, {"chat": "main"}, **FAST_PROBES) as gw,
            client(gw) as http,
        ):
            status, overall, detail = await readiness(http)
            assert (status, overall) == (200, "ready"), "asleep on purpose keeps it ready"
            assert detail == "asleep: the next request wakes it; 0 of 1 replicas healthy"

            async def autoscaler() -> None:  # KEDA: activate when demand > 0
                await eventually(lambda: _gauge(http, "sift_gateway_demand", 2), timeout=5)
                await engine.start()

            scaler = asyncio.create_task(autoscaler())
            answers = await asyncio.gather(chat(http), chat(http))
            await scaler
            assert [a.status_code for a in answers] == [200, 200]
            woken = {"profile": "main", "outcome": "woken"}
            assert await metric(http, "sift_gateway_wakes_total", **woken) == 1
    finally:
        await engine.stop()


async def test_an_engine_that_never_wakes_answers_503_naming_the_wake_timeout(
    tmp_path: Path,
) -> None:
    async with engine_and_hook(running=False, starts=False) as (engine, hook):
        profile = chat_profile(engine.url, wake={"url": hook.url, "timeout_s": 1, "poll_s": 0.1})
        async with (
            running_gateway(tmp_path, {"main": profile}, {"chat": "main"}, **FAST_PROBES) as gw,
            client(gw) as http,
        ):
            started = time.monotonic()
            answers = await asyncio.gather(chat(http), chat(http), chat(http))
            assert 1 <= time.monotonic() - started < 3
            for answer in answers:
                error = assert_openai_error(answer, 503, "engine_not_woken")
                assert "did not wake within the wake timeout (1 s)" in error["message"]
                assert answer.headers["Retry-After"] == "30"
            assert len(hook.calls) == 1
            timed_out = {"profile": "main", "outcome": "timed_out"}
            assert await metric(http, "sift_gateway_wakes_total", **timed_out) == 1
            status, _, detail = await readiness(http)
            assert status == 200
            assert detail is not None
            assert detail.startswith("asleep: the next request wakes it (the last wake failed at ")


async def test_a_refusing_hook_fails_the_wake_at_once(tmp_path: Path) -> None:
    async with engine_and_hook(running=False, hook_status=500) as (engine, hook):
        profile = chat_profile(engine.url, wake={"url": hook.url, "poll_s": 0.1})
        async with (
            running_gateway(tmp_path, {"main": profile}, {"chat": "main"}, **FAST_PROBES) as gw,
            client(gw) as http,
        ):
            started = time.monotonic()
            answer = await chat(http)
            assert time.monotonic() - started < 1
            error = assert_openai_error(answer, 503, "engine_not_woken")
            assert error["message"].startswith("the wake hook of profile 'main' failed")
            assert hook.url not in answer.text, "the hook's address is for the log only"
            failed = {"profile": "main", "outcome": "hook_failed"}
            assert await metric(http, "sift_gateway_wakes_total", **failed) == 1


async def test_a_request_waits_no_longer_than_its_own_deadline(tmp_path: Path) -> None:
    async with engine_and_hook(running=False, starts=False) as (engine, hook):
        profile = chat_profile(
            engine.url, wake={"url": hook.url, "timeout_s": 60}, timeouts={"total_s": 0.5}
        )
        async with (
            running_gateway(tmp_path, {"main": profile}, {"chat": "main"}, **FAST_PROBES) as gw,
            client(gw) as http,
        ):
            started = time.monotonic()
            answer = await chat(http)
            assert 0.5 <= time.monotonic() - started < 1.5
            error = assert_openai_error(answer, 504, "upstream_timeout")
            assert error["message"].startswith("deadline passed while the engine woke")
            await eventually(lambda: _gauge(http, "sift_gateway_demand", 0), timeout=1)


async def test_without_wake_a_stopped_engine_still_fails_at_once(tmp_path: Path) -> None:
    profile = chat_profile(dead_url())
    async with (
        running_gateway(tmp_path, {"main": profile}, {"chat": "main"}, **FAST_PROBES) as gw,
        client(gw) as http,
    ):
        started = time.monotonic()
        assert_openai_error(await chat(http), 503, "upstream_unavailable")
        assert time.monotonic() - started < 1
        status, overall, _ = await readiness(http)
        assert (status, overall) == (503, "not_ready")
        assert await metric(http, "sift_gateway_wakes_total", profile="main", outcome="woken") == 0
        assert (await http.get("/admin/profiles")).json()["profiles"]["main"]["wake"] is None
