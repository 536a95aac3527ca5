"""The local vLLM runtime (scripts/local_vllm/) serves what the gateway relies on: chat,
schema-constrained JSON, 384-dim embeddings, Prometheus metrics."""

import json
from typing import Any

import pytest

from tests.support.vllm import VllmServers, get_text, post_json, run_script

pytestmark = [pytest.mark.integration, pytest.mark.vllm]

SENTIMENTS = ["positive", "negative", "neutral"]
# String lengths bounded and max_tokens sized so a complete answer always fits: a 135M model
# writing an unbounded summary runs into the token limit and returns cut-off JSON.
VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "sentiment": {"type": "string", "enum": SENTIMENTS},
        "score": {"type": "integer", "minimum": 0, "maximum": 100},
        "summary": {"type": "string", "maxLength": 80},
    },
    "required": ["sentiment", "score", "summary"],
    "additionalProperties": False,
}


def chat(servers: VllmServers, content: str, **extra: Any) -> dict[str, Any]:
    body = {
        "model": servers.chat_model,
        "messages": [{"role": "user", "content": content}],
        "temperature": 0,
        **extra,
    }
    reply: dict[str, Any] = post_json(f"{servers.chat_url}/v1/chat/completions", body)
    return reply


def test_chat_completion_returns_text(vllm_servers: VllmServers) -> None:
    reply = chat(vllm_servers, "Say hello in one short sentence.", max_tokens=20)

    text = reply["choices"][0]["message"]["content"]
    assert isinstance(text, str)
    assert text.strip()
    assert reply["usage"]["completion_tokens"] > 0


def test_chat_completion_follows_a_json_schema(vllm_servers: VllmServers) -> None:
    reply = chat(
        vllm_servers,
        "Rate this review: 'The soup was cold and the waiter was rude.' "
        "Answer with sentiment, score (0-100) and a short summary.",
        max_tokens=150,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "verdict", "schema": VERDICT_SCHEMA, "strict": True},
        },
    )

    choice = reply["choices"][0]
    assert choice["finish_reason"] == "stop", "the answer was cut off: raise max_tokens"
    verdict = json.loads(choice["message"]["content"])
    assert set(verdict) == {"sentiment", "score", "summary"}
    assert verdict["sentiment"] in SENTIMENTS
    assert isinstance(verdict["score"], int)
    assert 0 <= verdict["score"] <= 100
    assert isinstance(verdict["summary"], str)
    assert len(verdict["summary"]) <= 80


def test_embeddings_are_384_dimensional(vllm_servers: VllmServers) -> None:
    texts = ["Acme beats estimates.", "The soup was cold.", "Rain expected on Tuesday."]

    reply = post_json(
        f"{vllm_servers.embed_url}/v1/embeddings",
        {"model": vllm_servers.embed_model, "input": texts},
    )

    assert [item["index"] for item in reply["data"]] == [0, 1, 2]
    vectors = [item["embedding"] for item in reply["data"]]
    assert all(len(vector) == 384 for vector in vectors)
    assert vectors[0] != vectors[1]


def test_chat_server_exposes_queue_metrics(vllm_servers: VllmServers) -> None:
    metrics = get_text(f"{vllm_servers.chat_url}/metrics")

    assert "vllm:num_requests_running" in metrics
    assert "vllm:num_requests_waiting" in metrics


def test_status_command_exits_zero() -> None:
    result = run_script("status")

    assert result.returncode == 0, result.stderr
    assert "chat" in result.stdout
    assert "embed" in result.stdout
