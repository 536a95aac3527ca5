"""The LLM gateway against FAKE upstreams that fail on cue: retries on 503s, Retry-After,
circuit breakers (open, half-open, closed), fallback profiles and a replica that is down.

Every test starts its own gateway (fresh breakers, queues and metrics) with small timeouts.
"""

import asyncio
import time
from pathlib import Path

import pytest

from sift_common.gateway_client import GatewayClient, GatewayOverloadedError
from tests.support.fake_upstream import Behaviour
from tests.support.gateway import (
    RunningGateway,
    StartFake,
    assert_openai_error,
    chat,
    chat_profile,
    client,
    dead_url,
    metric,
    running_gateway,
    upstreams,
)

pytestmark = pytest.mark.integration


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


async def test_a_request_outliving_its_own_deadline_does_not_open_the_breaker(
    tmp_path: Path, fakes: StartFake
) -> None:
    fake = await fakes(script=[Behaviour(delay_s=2.0)])
    profile = chat_profile(
        fake.url, timeouts={"total_s": 0.5}, breaker={"failure_threshold": 1, "open_for_s": 60}
    )
    async with (
        running_gateway(tmp_path, {"main": profile}, {"chat": "main"}) as gw,
        client(gw) as http,
    ):
        assert_openai_error(await chat(http), 504, code="upstream_timeout")
        assert gw.runtime("main").replicas[0].breaker.state == "closed"
        assert (await chat(http)).status_code == 200  # the replica still serves everyone


async def test_the_client_tells_capacity_from_failure(tmp_path: Path, fakes: StartFake) -> None:
    fake = await fakes(default=Behaviour(status=429, retry_after="3"))
    profile = chat_profile(fake.url, timeouts={"total_s": 1.0}, retries={"max_delay_s": 0.1})
    async with (
        running_gateway(tmp_path, {"main": profile}, {"chat": "main"}) as gw,
        GatewayClient(gw.url) as gateway,
    ):
        with pytest.raises(GatewayOverloadedError) as refused:
            await gateway.chat([{"role": "user", "content": "hi"}])
    assert refused.value.retry_after_s == 3
