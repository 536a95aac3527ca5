"""The gateway as a real process: SIGTERM while a request is in flight drains it gracefully.

Readiness turns 503 first (so a load balancer stops sending), the in-flight request still
completes with 200, and the process exits 0. The upstream is a FAKE served by this test process
that takes a few seconds to answer.
"""

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.support.fake_upstream import Behaviour, FakeUpstream, running_fake
from tests.support.gateway import chat_profile, eventually, free_port, write_profiles

pytestmark = pytest.mark.integration

ANSWER_DELAY_S = 2.0
DRAIN_GRACE_S = 1.0


@pytest.fixture
async def slow_fake() -> AsyncIterator[FakeUpstream]:
    async with running_fake(FakeUpstream(default=Behaviour(delay_s=ANSWER_DELAY_S))) as fake:
        yield fake


async def start_gateway(profiles: Path, port: int, log: Path) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "SIFT_GATEWAY_PROFILES": str(profiles),
        "SIFT_GATEWAY_PORT": str(port),
        "SIFT_GATEWAY_REQUEST_LOG": "false",
        "SIFT_GATEWAY_DRAIN_GRACE_S": str(DRAIN_GRACE_S),
    }
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sift_gateway", cwd=ROOT, env=env, stdout=out, stderr=out
        )


async def test_sigterm_drains_in_flight_requests_then_exits_zero(
    tmp_path: Path, slow_fake: FakeUpstream
) -> None:
    profiles = write_profiles(
        tmp_path / "profiles.yaml", {"main": chat_profile(slow_fake.url)}, {"chat": "main"}
    )
    port, log = free_port(), tmp_path / "gateway.log"
    gateway = await start_gateway(profiles, port, log)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:

            async def ready() -> bool:
                try:
                    return (await http.get("/health/ready")).status_code == 200
                except httpx.TransportError:
                    assert gateway.returncode is None, log.read_text()
                    return False

            await eventually(ready, timeout=30, every=0.1)

            body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
            in_flight = asyncio.create_task(http.post("/v1/chat/completions", json=body))
            await eventually(lambda: len(slow_fake.chat_requests()) == 1)
            gateway.send_signal(signal.SIGTERM)

            async def draining() -> bool:
                try:
                    response = await http.get("/health/ready")
                except httpx.TransportError:
                    raise AssertionError(
                        "the listener closed before readiness showed 503"
                    ) from None
                return response.status_code == 503 and response.json()["status"] == "draining"

            # Readiness is 503 for DRAIN_GRACE_S before the listener closes.
            await eventually(draining, timeout=10, every=0.02)

            response = await in_flight
            assert response.status_code == 200, response.text
            assert response.json()["choices"][0]["message"]["content"].startswith("Hello")

        returncode = await asyncio.wait_for(gateway.wait(), timeout=20)
        assert returncode == 0, log.read_text()
    finally:
        if gateway.returncode is None:
            gateway.kill()
            await gateway.wait()
