"""A caller's retry of a call it lost is answered from the first call's answer (FAKE upstream,
which counts the calls it received): kept after the first call ended, or joined while it was
still open after its caller gave up; anything that is not the same request pays for its own
call."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from sift_gateway.state import STATE_KEY
from tests.support.fake_upstream import Behaviour, FakeUpstream
from tests.support.gateway import (
    HI,
    RunningGateway,
    StartFake,
    chat,
    chat_profile,
    client,
    eventually,
    logged_rows,
    logging_gateway,
    running_gateway,
)

pytestmark = pytest.mark.integration

CALL_S = 1.5  # the FAKE's answer time: long enough for a caller to give up and come back


@pytest.fixture
async def gateway(
    tmp_path: Path, fakes: StartFake
) -> AsyncIterator[tuple[RunningGateway, FakeUpstream]]:
    fake = await fakes()
    async with running_gateway(tmp_path, {"main": chat_profile(fake.url)}, {"chat": "main"}) as gw:
        yield gw, fake


def replays(gw: RunningGateway, how: str) -> float:
    registry = gw.app[STATE_KEY].metrics.registry
    value = registry.get_sample_value("sift_gateway_replays_total", {"profile": "main", "how": how})
    return value or 0.0


async def test_a_retry_after_the_call_ended_is_answered_from_it(
    gateway: tuple[RunningGateway, FakeUpstream],
) -> None:
    gw, fake = gateway
    async with client(gw) as http:
        first = await chat(http, headers={"x-request-id": "doc-1:analysis"})
        again = await chat(http, headers={"x-request-id": "doc-1:analysis"})
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert again.headers["x-sift-replayed"] == "kept"
    assert again.headers["x-sift-profile"] == "main"
    assert float(again.headers["x-sift-overhead-ms"]) >= 0  # as every answer carries it
    assert "x-sift-replayed" not in first.headers
    assert len(fake.chat_requests()) == 1
    assert replays(gw, "kept") == 1


async def test_a_retry_while_the_call_is_open_waits_for_it_after_its_caller_gave_up(
    gateway: tuple[RunningGateway, FakeUpstream],
) -> None:
    gw, fake = gateway
    fake.default = Behaviour(delay_s=CALL_S)
    headers = {"x-request-id": "doc-2:analysis"}
    async with httpx.AsyncClient(base_url=gw.url, timeout=0.3) as impatient:
        with pytest.raises(httpx.TimeoutException):
            await chat(impatient, headers=headers)  # the caller gives up (or dies) mid-call
    assert fake.open_calls == 1
    async with client(gw) as http:
        retry = await chat(http, headers=headers)
    assert retry.status_code == 200
    assert retry.headers["x-sift-replayed"] == "joined"
    # The wait for the open call (~1.2 s here) is queueing, not the gateway's own time.
    assert float(retry.headers["x-sift-overhead-ms"]) < CALL_S * 1000 / 2
    assert retry.json()["choices"][0]["message"]["content"]
    assert len(fake.chat_requests()) == 1
    assert replays(gw, "joined") == 1


async def test_other_requests_pay_for_their_own_calls(
    gateway: tuple[RunningGateway, FakeUpstream],
) -> None:
    """Another body under the same id, no id, a stream, another caller's failed first call."""
    gw, fake = gateway
    async with client(gw) as http:
        assert (await chat(http, headers={"x-request-id": "doc-3"})).status_code == 200
        other = await chat(http, headers={"x-request-id": "doc-3"}, max_tokens=7)
        assert "x-sift-replayed" not in other.headers
        for _ in range(2):
            assert "x-sift-replayed" not in (await chat(http)).headers
            streamed = await http.post(
                "/v1/chat/completions",
                json={"model": "chat", "messages": HI, "stream": True},
                headers={"x-request-id": "doc-4"},
            )
            assert streamed.status_code == 200
        fake.script = [Behaviour(status=400)]  # the first call refused: nothing to keep
        assert (await chat(http, headers={"x-request-id": "doc-5"})).status_code == 400
        retry = await chat(http, headers={"x-request-id": "doc-5"})
        assert (retry.status_code, retry.headers.get("x-sift-replayed")) == (200, None)
    assert len(fake.chat_requests()) == 2 + 4 + 2
    assert replays(gw, "kept") == replays(gw, "joined") == 0


async def test_waiters_whose_first_call_failed_make_one_call_between_them(
    gateway: tuple[RunningGateway, FakeUpstream],
) -> None:
    gw, fake = gateway
    fake.script = [Behaviour(status=400, delay_s=0.5)]
    fake.default = Behaviour(delay_s=0.5)
    headers = {"x-request-id": "doc-6"}
    async with client(gw) as http:
        first = asyncio.create_task(chat(http, headers=headers))
        await eventually(lambda: fake.open_calls == 1)
        waiters = await asyncio.gather(*(chat(http, headers=headers) for _ in range(3)))
        assert (await first).status_code == 400
    assert [w.status_code for w in waiters] == [200, 200, 200]
    assert sorted(w.headers.get("x-sift-replayed", "") for w in waiters) == ["", "joined", "joined"]
    assert len(fake.chat_requests()) == 2  # the refused one, then one for the three waiters


async def test_a_replayed_answer_is_logged_without_an_upstream(
    tmp_path: Path, fakes: StartFake, fresh_database: str
) -> None:
    fake = await fakes()
    async with (
        logging_gateway(tmp_path, fake.url, fresh_database) as gw,
        client(gw) as http,
    ):
        for _ in range(2):
            assert (await chat(http, headers={"x-request-id": "doc-7"})).status_code == 200
        rows = await logged_rows(fresh_database, 2, "upstream, status_code, completion_tokens")
    assert rows[0]["upstream"] == fake.url
    assert (rows[1]["upstream"], rows[1]["status_code"]) == ("replay", 200)
    assert rows[1]["completion_tokens"] is None  # no tokens spent twice
