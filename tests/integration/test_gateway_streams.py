"""The LLM gateway's streaming under faults (FAKE upstreams): a first token that never comes
(TTFT timeout, retried within the deadline), a stream that stalls, a stream cut mid-way.
"""

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.fake_upstream import Behaviour
from tests.support.gateway import (
    StartFake,
    assert_openai_error,
    chat_profile,
    client,
    running_gateway,
    stream_chat,
    upstreams,
)

pytestmark = pytest.mark.integration


def sse_events(raw: bytes) -> list[Any]:
    """The `data:` payloads of an SSE body, JSON-decoded ("[DONE]" kept as a string)."""
    events: list[Any] = []
    for line in raw.split(b"\n"):
        if line.startswith(b"data: "):
            data = line[len(b"data: ") :]
            events.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return events


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
