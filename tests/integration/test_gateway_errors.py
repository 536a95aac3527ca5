"""The gateway's errors hold no internals (FAKE upstreams): an upstream's failure reaches the
client as a public message with the request id, never the replica's URL or what it answered;
the detail is in the log under that id. And the input limits: messages, `n`, output tokens and
the body's size, each refused naming its parameter before anything goes upstream.
"""

import logging
from pathlib import Path

import pytest

from tests.support.fake_upstream import Behaviour
from tests.support.gateway import (
    HI,
    StartFake,
    assert_openai_error,
    chat,
    chat_profile,
    client,
    running_gateway,
    stream_chat,
)

pytestmark = pytest.mark.integration


def logged_for(caplog: pytest.LogCaptureFixture, request_id: str) -> str:
    return "\n".join(
        r.getMessage() for r in caplog.records if getattr(r, "request_id", None) == request_id
    )


@pytest.mark.parametrize(
    ("status", "code"), [(500, "upstream_error"), (503, "upstream_unavailable")]
)
async def test_an_upstream_failure_answers_without_its_url_or_body(
    tmp_path: Path,
    fakes: StartFake,
    caplog: pytest.LogCaptureFixture,
    status: int,
    code: str,
) -> None:
    fake = await fakes(script=[Behaviour(status=status)] * 2)
    profile = chat_profile(fake.url, retries={"max_attempts": 2}, breaker={"failure_threshold": 9})
    caplog.set_level(logging.WARNING, "sift_gateway")
    async with (
        running_gateway(tmp_path, {"main": profile}, {"chat": "main"}) as gw,
        client(gw) as http,
    ):
        response = await chat(http, headers={"x-request-id": "req-leak-1"})
    error = assert_openai_error(response, 502 if status == 500 else 503, code=code)
    assert fake.url not in response.text
    assert "127.0.0.1" not in response.text
    assert "fake upstream says" not in response.text, "the upstream's body stays in the log"
    assert error["message"] == f"the model server answered {status} (request id req-leak-1)"
    assert response.headers["x-request-id"] == "req-leak-1"
    detail = logged_for(caplog, "req-leak-1")
    assert fake.url in detail
    assert f"fake upstream says {status}" in detail


async def test_a_rejection_keeps_its_openai_message_and_logs_the_body(
    tmp_path: Path, fakes: StartFake, caplog: pytest.LogCaptureFixture
) -> None:
    fake = await fakes(script=[Behaviour(status=400)])
    caplog.set_level(logging.WARNING, "sift_gateway")
    async with (
        running_gateway(tmp_path, {"main": chat_profile(fake.url)}, {"chat": "main"}) as gw,
        client(gw) as http,
    ):
        response = await chat(http, headers={"x-request-id": "req-400"})
    error = assert_openai_error(response, 400, code="upstream_rejected")
    assert error["message"] == "fake upstream says 400 (request id req-400)"
    assert fake.url not in response.text
    assert "upstream answered 400" in logged_for(caplog, "req-400")


async def test_a_broken_stream_says_so_without_the_exception(
    tmp_path: Path, fakes: StartFake, caplog: pytest.LogCaptureFixture
) -> None:
    fake = await fakes(script=[Behaviour(cut_after_chunks=2)])
    caplog.set_level(logging.WARNING, "sift_gateway")
    async with (
        running_gateway(tmp_path, {"main": chat_profile(fake.url)}, {"chat": "main"}) as gw,
        client(gw) as http,
    ):
        response, body = await stream_chat(http)
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    assert f"upstream stream broke (request id {request_id})".encode() in body
    assert fake.url.encode() not in body
    assert fake.url in logged_for(caplog, request_id)


LIMITS = {
    "gateway_max_messages": 3,
    "gateway_max_n": 2,
    "gateway_max_tokens": 100,
    "gateway_max_request_bytes": 4096,
}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": HI * 4}, "messages"),
        ({"n": 3}, "n"),
        ({"n": 0}, "n"),
        ({"max_tokens": 101}, "max_tokens"),
        ({"max_completion_tokens": 101}, "max_completion_tokens"),
    ],
)
async def test_requests_over_the_limits_are_400_naming_the_param(
    tmp_path: Path, fakes: StartFake, body: dict[str, object], param: str
) -> None:
    fake = await fakes()
    async with (
        running_gateway(
            tmp_path, {"main": chat_profile(fake.url)}, {"chat": "main"}, **LIMITS
        ) as gw,
        client(gw) as http,
    ):
        refused = await chat(http, **body)
        assert_openai_error(refused, 400, param=param)
        assert fake.chat_requests() == []
        at_limit = await chat(http, messages=HI * 3, n=2, max_tokens=100)
        assert at_limit.status_code == 200, at_limit.text


async def test_a_body_over_the_size_limit_is_413(tmp_path: Path, fakes: StartFake) -> None:
    fake = await fakes()
    async with (
        running_gateway(
            tmp_path, {"main": chat_profile(fake.url)}, {"chat": "main"}, **LIMITS
        ) as gw,
        client(gw) as http,
    ):
        big = [{"role": "user", "content": "x" * 5000}]
        error = assert_openai_error(await chat(http, messages=big), 413, code="request_too_large")
        assert "4096 bytes" in error["message"]
        assert fake.chat_requests() == []
