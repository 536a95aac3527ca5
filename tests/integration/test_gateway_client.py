"""The typed gateway client against the real gateway (in front of a FAKE upstream): results
parsed, and failures classified as the consumers' retry policy needs them."""

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sift_common.errors import TransientError
from sift_common.gateway_client import GatewayClient, GatewayRequestError, GatewayUnavailableError
from tests.support.fake_upstream import Behaviour, FakeUpstream, running_fake
from tests.support.gateway import RunningGateway, chat_profile, embed_profile, running_gateway

pytestmark = pytest.mark.integration


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with running_fake(FakeUpstream(model="fake-chat")) as upstream:
        yield upstream


@pytest.fixture
async def gateway(fake: FakeUpstream, tmp_path: Path) -> AsyncIterator[RunningGateway]:
    profiles = {
        "chat-profile": chat_profile(fake.url, retries={"max_attempts": 2}),
        "embed-profile": embed_profile(fake.url, served_model="fake-chat"),
    }
    aliases = {"chat": "chat-profile", "embed": "embed-profile"}
    async with running_gateway(tmp_path, profiles, aliases) as running:
        yield running


async def test_chat_result_and_forwarded_options(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    async with GatewayClient(gateway.url) as client:
        result = await client.chat(
            [{"role": "user", "content": "hello"}],
            max_tokens=50,
            json_schema={"type": "object"},
            priority="backfill",
            request_id="req-1",
        )
    assert result.content == "Hello from the fake upstream."
    assert result.finish_reason == "stop"
    assert result.completion_tokens == 5
    sent = fake.chat_requests()[-1]["body"]
    assert sent["model"] == "fake-chat"
    assert sent["max_tokens"] == 50
    assert sent["response_format"]["type"] == "json_schema"


async def test_embeddings_come_back_in_input_order(gateway: RunningGateway) -> None:
    async with GatewayClient(gateway.url) as client:
        vectors = await client.embed(["a", "b", "c"])
        assert await client.embed([]) == []
    assert len(vectors) == 3
    assert all(len(vector) == 8 for vector in vectors)


async def test_upstream_outage_is_transient(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script = [Behaviour(status=503), Behaviour(status=503)]
    async with GatewayClient(gateway.url) as client:
        with pytest.raises(GatewayUnavailableError) as failed:
            await client.chat([{"role": "user", "content": "hello"}])
    assert isinstance(failed.value, TransientError)
    assert "503" in str(failed.value)


async def test_refused_request_is_not_transient(gateway: RunningGateway) -> None:
    async with GatewayClient(gateway.url) as client:
        with pytest.raises(GatewayRequestError) as refused:
            await client.chat([{"role": "user", "content": "hello"}], model="no-such-model")
    assert not isinstance(refused.value, TransientError)
    assert (refused.value.status, refused.value.code) == (404, "model_not_found")
    assert refused.value.param == "model"


async def test_unreachable_gateway_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the socket closes
    async with GatewayClient(f"http://127.0.0.1:{port}") as client:
        with pytest.raises(GatewayUnavailableError, match="unreachable"):
            await client.models()
