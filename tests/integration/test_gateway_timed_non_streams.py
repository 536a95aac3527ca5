"""Non-streamed chat asked upstream as a stream (FAKE upstreams, for faults on cue): the
upstream gets a stream request with usage, the client its one JSON answer; a stream that breaks
before it is done is retried like a broken JSON body, not passed on half-made; a request that
sets its own `stream_options` goes upstream as sent."""

from pathlib import Path

import pytest

from tests.support.fake_upstream import DEFAULT_CONTENT, Behaviour
from tests.support.gateway import StartFake, chat, chat_profile, client, metric, running_gateway

pytestmark = pytest.mark.integration


async def test_the_client_gets_json_and_the_first_token_is_timed(
    tmp_path: Path, fakes: StartFake
) -> None:
    fake = await fakes(default=Behaviour(delay_s=0.2))
    async with (
        running_gateway(tmp_path, {"main": chat_profile(fake.url)}, {"chat": "main"}) as gw,
        client(gw) as http,
    ):
        response = await chat(http)
        ttft_sum = await metric(http, "sift_gateway_ttft_seconds_sum", profile="main")
        tpot_count = await metric(
            http, "sift_gateway_time_per_output_token_seconds_count", profile="main"
        )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"] == DEFAULT_CONTENT
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"]["completion_tokens"] == len(DEFAULT_CONTENT.split())
    sent = fake.chat_requests()[0]["body"]
    assert (sent["stream"], sent["stream_options"]) == (True, {"include_usage": True})
    assert ttft_sum >= 0.2  # the fake waits 0.2 s before its first event
    assert tpot_count == 1


async def test_a_stream_cut_before_done_is_retried_not_passed_on(
    tmp_path: Path, fakes: StartFake
) -> None:
    fake = await fakes(script=[Behaviour(cut_after_chunks=2)])
    async with (
        running_gateway(tmp_path, {"main": chat_profile(fake.url)}, {"chat": "main"}) as gw,
        client(gw) as http,
    ):
        response = await chat(http)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == DEFAULT_CONTENT
    assert len(fake.chat_requests()) == 2


async def test_own_stream_options_or_the_option_off_go_upstream_as_sent(
    tmp_path: Path, fakes: StartFake
) -> None:
    fake = await fakes()
    profiles = {"main": chat_profile(fake.url), "plain": chat_profile(fake.url)}
    profiles["plain"]["stream_upstream"] = False
    async with (
        running_gateway(tmp_path, profiles, {"chat": "main"}) as gw,
        client(gw) as http,
    ):
        await chat(http, stream_options={"include_usage": True})
        assert (await chat(http, model="plain")).status_code == 200
        ttft_count = await metric(http, "sift_gateway_ttft_seconds_count", profile="plain")
    own, off = (request["body"] for request in fake.chat_requests())
    assert "stream" not in own
    assert own["stream_options"] == {"include_usage": True}
    assert "stream" not in off
    assert "stream_options" not in off
    assert ttft_count == 0
