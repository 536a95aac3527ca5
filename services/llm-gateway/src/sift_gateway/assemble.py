"""Non-streamed chat, streamed upstream: one `chat.completion` assembled from the chunks.

A JSON answer arrives all at once, so the gateway cannot tell when its first token was made.
Where the profile allows it (`stream_upstream`, on by default for chat), the gateway asks the
replica for the same completion as a stream with `stream_options.include_usage`, notes when
the first event arrives (TTFT, as for a client's own stream), and joins the chunks into the
answer a non-streamed request gets: content, tool calls, reasoning, logprobs, finish reason,
usage, ids. The client never sees the stream.

An upstream that answers the stream request with plain JSON anyway is passed through as is.
A stream without its `[DONE]`, or with an `error` event, is not an answer: the caller retries
it like a broken JSON body.
"""

import time
from typing import Any

import aiohttp
import orjson

STREAM_OPTIONS = {"include_usage": True}
_TEXT_KEYS = ("content", "reasoning", "reasoning_content", "refusal")
# The message fields OpenAI's (and vLLM's) JSON answer carries as null when unused.
_NULL_MESSAGE = {"content": None, "refusal": None, "annotations": None, "audio": None,
                 "function_call": None}  # fmt: skip
_DONE = b"[DONE]"


class IncompleteStreamError(Exception):
    """The stream ended early or carried an error event instead of an answer."""


def streaming_body(fitted: dict[str, Any]) -> dict[str, Any]:
    """The client's non-streamed request as a stream request that reports its usage."""
    options = fitted.get("stream_options")
    merged = {**options, **STREAM_OPTIONS} if isinstance(options, dict) else STREAM_OPTIONS
    return {**fitted, "stream": True, "stream_options": merged}


def is_event_stream(response: aiohttp.ClientResponse) -> bool:
    return response.content_type == "text/event-stream"


async def read_stream(response: aiohttp.ClientResponse) -> tuple[bytes, float]:
    """The whole SSE body, and when its first bytes came (the first token's event)."""
    first = await response.content.readany()
    first_at = time.monotonic()
    if not first:
        raise IncompleteStreamError("an empty stream")
    return first + await response.content.read(), first_at


def events(body: bytes) -> list[dict[str, Any]]:
    """The JSON events of an SSE body; IncompleteStreamError without `[DONE]` or on an error."""
    parsed: list[dict[str, Any]] = []
    done = False
    for line in body.splitlines():
        if not line.startswith(b"data:"):
            continue  # blank separators, comments, `event:` lines
        data = line[5:].strip()
        if data == _DONE:
            done = True
            break
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise IncompleteStreamError("an event that is not JSON") from None
        if not isinstance(event, dict) or "error" in event:
            raise IncompleteStreamError("an error event instead of an answer")
        parsed.append(event)
    if not done:
        raise IncompleteStreamError("the stream ended before [DONE]")
    return parsed


def assemble(body: bytes) -> bytes:
    """The `chat.completion` JSON the chunks of `body` add up to."""
    chunks = events(body)
    if not chunks:
        raise IncompleteStreamError("a stream without events")
    first = chunks[0]
    choices: dict[int, _Choice] = {}
    usage: Any = None
    tail: dict[str, Any] = {}  # vLLM sends its fingerprint with the usage, at the end
    for chunk in chunks:
        for part in chunk.get("choices") or ():
            index = part.get("index", 0)
            choices.setdefault(index, _Choice(index)).add(part)
        usage = chunk.get("usage") or usage
        tail |= {key: chunk[key] for key in ("system_fingerprint", "service_tier") if key in chunk}
    answer: dict[str, Any] = {
        "id": first.get("id"),
        "object": "chat.completion",
        "created": first.get("created"),
        "model": first.get("model"),
        "choices": [choices[index].as_json() for index in sorted(choices)],
        "usage": usage,
        **tail,
    }
    return orjson.dumps(answer)


class _Choice:
    """One choice's deltas, joined."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.role = "assistant"
        self.text: dict[str, list[str]] = {}  # content, reasoning, refusal
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.logprobs: list[Any] | None = None
        self.finish_reason: str | None = None
        self.extra: dict[str, Any] = {}  # vLLM's stop_reason

    def add(self, part: dict[str, Any]) -> None:
        delta = part.get("delta") or {}
        self.role = delta.get("role") or self.role
        for key in _TEXT_KEYS:
            if delta.get(key) is not None:
                self.text.setdefault(key, []).append(delta[key])
        for call in delta.get("tool_calls") or ():
            self._add_tool_call(call)
        logprobs = part.get("logprobs")
        if isinstance(logprobs, dict) and logprobs.get("content") is not None:
            self.logprobs = (self.logprobs or []) + list(logprobs["content"])
        self.finish_reason = part.get("finish_reason") or self.finish_reason
        if "stop_reason" in part:
            self.extra["stop_reason"] = part["stop_reason"]

    def _add_tool_call(self, call: dict[str, Any]) -> None:
        entry = self.tool_calls.setdefault(
            call.get("index", len(self.tool_calls)),
            {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
        )
        entry["id"] = call.get("id") or entry["id"]
        entry["type"] = call.get("type") or entry["type"]
        function = call.get("function") or {}
        entry["function"]["name"] += function.get("name") or ""
        entry["function"]["arguments"] += function.get("arguments") or ""

    def as_json(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": self.role, **_NULL_MESSAGE}
        for key, pieces in self.text.items():
            message[key] = "".join(pieces)
        if self.tool_calls:
            message["tool_calls"] = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        logprobs = None if self.logprobs is None else {"content": self.logprobs}
        return {
            "index": self.index,
            "message": message,
            "logprobs": logprobs,
            "finish_reason": self.finish_reason,
            **self.extra,
        }
