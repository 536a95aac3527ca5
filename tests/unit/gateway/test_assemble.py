"""Assembling a non-streamed chat answer from vLLM-shaped stream chunks: content, tool calls,
several choices, logprobs, usage and ids; an unfinished or failed stream is refused."""

from typing import Any

import orjson
import pytest

from sift_gateway.assemble import IncompleteStreamError, assemble, streaming_body


def sse(*events: dict[str, Any], done: bool = True) -> bytes:
    lines = [b"data: " + orjson.dumps(event) + b"\n\n" for event in events]
    return b"".join(lines) + (b"data: [DONE]\n\n" if done else b"")


def chunk(*choices: dict[str, Any], **extra: Any) -> dict[str, Any]:
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "m"}
    return {**head, "choices": list(choices), **extra}


def part(index: int = 0, finish: str | None = None, **delta: Any) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}


USAGE = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}


def test_content_usage_ids_and_finish_reason() -> None:
    body = sse(
        chunk(part(role="assistant", content="")),
        chunk(part(content="Hel")),
        chunk(part(content="lo")),
        chunk({**part(content="!", finish="stop"), "stop_reason": None}),
        chunk(usage=USAGE, system_fingerprint="fp"),
    )
    answer = orjson.loads(assemble(body))
    assert answer == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 7,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello!",
                    "refusal": None,
                    "annotations": None,
                    "audio": None,
                    "function_call": None,
                },
                "logprobs": None,
                "finish_reason": "stop",
                "stop_reason": None,
            }
        ],
        "usage": USAGE,
        "system_fingerprint": "fp",
    }


def test_tool_calls_are_joined_by_their_index() -> None:
    first = {"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_w"}}
    second = {"index": 1, "id": "call_b", "type": "function", "function": {"name": "now"}}
    body = sse(
        chunk(part(role="assistant", content=None)),
        chunk(part(tool_calls=[first])),
        chunk(part(tool_calls=[{"index": 0, "function": {"name": "eather", "arguments": '{"c'}}])),
        chunk(part(tool_calls=[second])),
        chunk(part(tool_calls=[{"index": 0, "function": {"arguments": 'ity": "Oslo"}'}}])),
        chunk(
            part(finish="tool_calls", tool_calls=[{"index": 1, "function": {"arguments": "{}"}}])
        ),
    )
    message = orjson.loads(assemble(body))["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {
            "id": "call_a",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
        },
        {"id": "call_b", "type": "function", "function": {"name": "now", "arguments": "{}"}},
    ]
    assert orjson.loads(assemble(body))["choices"][0]["finish_reason"] == "tool_calls"


def test_several_choices_and_logprobs_stay_apart() -> None:
    token = {"token": "a", "logprob": -0.1, "bytes": [97], "top_logprobs": []}
    body = sse(
        chunk(part(0, role="assistant", content=""), part(1, role="assistant", content="")),
        chunk({**part(1, content="b"), "logprobs": {"content": [token]}}),
        chunk({**part(0, content="a"), "logprobs": {"content": [token]}}),
        chunk(part(0, finish="length", content="a"), part(1, finish="stop", content="")),
        chunk(usage=USAGE),
    )
    choices = orjson.loads(assemble(body))["choices"]
    assert [c["message"]["content"] for c in choices] == ["aa", "b"]
    assert [c["finish_reason"] for c in choices] == ["length", "stop"]
    assert choices[0]["logprobs"] == {"content": [token]}


@pytest.mark.parametrize(
    "body",
    [
        sse(chunk(part(content="Hi")), done=False),  # cut before [DONE]
        sse(chunk(part(content="Hi")), {"error": {"message": "engine dead"}}),
        b"data: {not json\n\ndata: [DONE]\n\n",
        sse(),  # [DONE] and nothing else
    ],
)
def test_an_unfinished_or_failed_stream_is_not_an_answer(body: bytes) -> None:
    with pytest.raises(IncompleteStreamError):
        assemble(body)


def test_streaming_body_asks_for_usage_and_keeps_the_rest() -> None:
    fitted = {"model": "m", "messages": [], "response_format": {"type": "json_object"}}
    assert streaming_body(fitted) == {
        **fitted,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert "stream" not in fitted
