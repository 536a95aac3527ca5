"""A FAKE vLLM upstream that misbehaves on cue, for the gateway's fault tests.

The real vLLM cannot be made to answer 503 three times, stall mid-stream or hang on demand, so
this aiohttp server speaks just enough of vLLM's OpenAI API (`/v1/models`, `/tokenize`,
`/v1/chat/completions` with and without streaming, `/v1/embeddings`, `/metrics`) and follows a
script of `Behaviour`s the test sets. It records every request it receives (`/tokenize` too).

`down = True` makes every endpoint answer 503, like an engine that is not serving; the
`running_requests` / `generated_tokens` values are what its `/metrics` reports, so a test can
fake a hung engine (requests running, token counter not moving).

For pipeline runs (tests/faults): `schema_answers = True` answers a chat request that carries a
`response_format` JSON schema with a small schema-valid instance (`minimal_instance`) instead of
`Behaviour.content`; `embedding_dim` sizes the vectors (the store's is 384); `open_calls` counts
the chat/embedding requests being answered right now and `answered` those finished, so a test
can strike while calls are in flight (each recorded request gets a `done` time when it ends).
A `Behaviour.delay_s` on `default` slows every answer.
"""

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.support.served import served

DEFAULT_CONTENT = "Hello from the fake upstream."


@dataclass
class Behaviour:
    """What the next chat/embedding request gets. Defaults: a normal, quick answer."""

    status: int = 200
    retry_after: str | None = None
    delay_s: float = 0.0  # before anything is sent (TTFT)
    stall_after_chunks: int | None = None  # stream: stop sending (but keep open) after N chunks
    cut_after_chunks: int | None = None  # stream: drop the connection after N chunks
    not_json: bool = False  # answer 200 with content that is not JSON
    content: str = DEFAULT_CONTENT


@dataclass
class FakeUpstream:
    model: str = "fake-chat"
    max_model_len: int = 2048
    script: list[Behaviour] = field(default_factory=list)
    default: Behaviour = field(default_factory=Behaviour)
    requests: list[dict[str, Any]] = field(default_factory=list)
    tokens_per_word: int = 1
    down: bool = False
    running_requests: int = 0
    generated_tokens: int = 0
    url: str = ""
    schema_answers: bool = False
    embedding_dim: int = 8
    open_calls: int = 0
    answered: int = 0

    def next_behaviour(self) -> Behaviour:
        return self.script.pop(0) if self.script else self.default

    def chat_requests(self) -> list[dict[str, Any]]:
        return [
            r for r in self.requests if r["path"] == "/v1/chat/completions" and not _is_probe(r)
        ]

    def tokenize_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == "/tokenize"]

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._down_middleware])
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/tokenize", self._tokenize)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/metrics", self._metrics)
        return app

    @web.middleware
    async def _down_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.down:
            return web.json_response({"error": {"message": "fake upstream is down"}}, status=503)
        response: web.StreamResponse = await handler(request)
        return response

    async def _models(self, request: web.Request) -> web.Response:
        card = {"id": self.model, "object": "model", "max_model_len": self.max_model_len}
        return web.json_response({"object": "list", "data": [card]})

    async def _tokenize(self, request: web.Request) -> web.Response:
        body = (await self._record(request))["body"]
        words = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        count = words * self.tokens_per_word + 4
        return web.json_response(
            {"count": count, "max_model_len": self.max_model_len, "tokens": []}
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        text = (
            f'vllm:num_requests_running{{model_name="{self.model}"}} {self.running_requests}\n'
            f'vllm:generation_tokens_total{{model_name="{self.model}"}} '
            f"{float(self.generated_tokens)}\n"
        )
        return web.Response(text=text)

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        if _is_probe(body):
            return self._embedded(body, Behaviour())
        self.open_calls += 1
        try:
            behaviour = self.next_behaviour()
            if failure := await _fail_early(behaviour):
                return failure
            return self._embedded(body, behaviour)
        finally:
            self._finished(body)

    def _embedded(self, body: dict[str, Any], behaviour: Behaviour) -> web.Response:
        inputs = body["body"]["input"]
        inputs = inputs if isinstance(inputs, list) else [inputs]
        vector = [0.1] * self.embedding_dim
        data = [
            {"object": "embedding", "index": i, "embedding": vector} for i in range(len(inputs))
        ]
        usage = {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}
        return web.json_response(
            {"object": "list", "data": data, "model": self.model, "usage": usage}
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        record = await self._record(request)
        if _is_probe(record):
            return await self._answer(request, record, Behaviour())
        self.open_calls += 1
        try:
            return await self._answer(request, record, self.next_behaviour())
        finally:
            self._finished(record)

    def _finished(self, record: dict[str, Any]) -> None:
        """A counted request ended (answered, failed, or the client hung up): `done` is when."""
        record["done"] = time.monotonic()
        self.open_calls -= 1
        self.answered += 1

    async def _answer(
        self, request: web.Request, record: dict[str, Any], behaviour: Behaviour
    ) -> web.StreamResponse:
        if failure := await _fail_early(behaviour):
            return failure
        if behaviour.not_json:
            return web.json_response(_completion(self.model, "{not json at all"))
        content = self._content(record, behaviour)
        if record["body"].get("stream"):
            return await self._stream(request, behaviour, content, record["body"])
        return web.json_response(_completion(self.model, content))

    def _content(self, record: dict[str, Any], behaviour: Behaviour) -> str:
        schema = _response_schema(record["body"])
        if not self.schema_answers or schema is None or behaviour.content != DEFAULT_CONTENT:
            return behaviour.content
        return orjson.dumps(minimal_instance(schema)).decode()

    async def _stream(
        self, request: web.Request, behaviour: Behaviour, content: str, body: dict[str, Any]
    ) -> web.StreamResponse:
        """vLLM's shape: a role event, one event per word (the last one finishing), and with
        `stream_options.include_usage` a usage event; the pieces join to `content`."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunks = [_chunk(self.model, {"role": "assistant", "content": ""})]
        chunks += [_chunk(self.model, {"content": piece}) for piece in _PIECE.findall(content)]
        chunks[-1]["choices"][0]["finish_reason"] = "stop"
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = _completion(self.model, content)["usage"]
            chunks.append({**_chunk(self.model, {}), "choices": [], "usage": usage})
        for index, chunk in enumerate(chunks):
            if behaviour.stall_after_chunks is not None and index >= behaviour.stall_after_chunks:
                await asyncio.sleep(3600)
            if behaviour.cut_after_chunks is not None and index >= behaviour.cut_after_chunks:
                assert request.transport is not None
                request.transport.close()
                return response
            await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
            await asyncio.sleep(0.01)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _record(self, request: web.Request) -> dict[str, Any]:
        entry = {"path": request.path, "body": await request.json(), "at": time.monotonic()}
        self.requests.append(entry)
        return entry


def _response_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    response_format = body.get("response_format") or {}
    schema = (response_format.get("json_schema") or {}).get("schema")
    return schema if isinstance(schema, dict) else None


_PIECE = re.compile(r"\S+\s*|\s+")  # a word and the space after it
_STRING_CANDIDATES = ("Fake answer for the test.", "X", "", "FAKE")


def minimal_instance(schema: dict[str, Any]) -> Any:
    """A small value valid under `schema` (the subset the analysis profiles use: objects with
    required properties, enums, bounded strings with patterns, arrays, numbers)."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: minimal_instance(properties[name]) for name in schema.get("required", [])}
    if kind == "array":
        return [minimal_instance(schema.get("items", {})) for _ in range(schema.get("minItems", 0))]
    if kind in ("integer", "number"):
        low, high = schema.get("minimum", 0), schema.get("maximum", 100)
        return (low + high) // 2 if kind == "integer" else (low + high) / 2
    if kind == "boolean":
        return False
    return next(text for text in _STRING_CANDIDATES if _string_fits(schema, text))


def _string_fits(schema: dict[str, Any], text: str) -> bool:
    if not schema.get("minLength", 0) <= len(text) <= schema.get("maxLength", len(text)):
        return False
    pattern = schema.get("pattern")
    return pattern is None or re.search(pattern, text) is not None


def _is_probe(record: dict[str, Any]) -> bool:
    body = record["body"]
    return bool(
        (body.get("max_tokens") == 1 and body.get("messages", [{}])[0].get("content") == "ping")
        or body.get("input") == "ping"
    )


async def _fail_early(behaviour: Behaviour) -> web.Response | None:
    if behaviour.delay_s:
        await asyncio.sleep(behaviour.delay_s)
    if behaviour.status == 200:
        return None
    headers = {"Retry-After": behaviour.retry_after} if behaviour.retry_after else {}
    error = {"error": {"message": f"fake upstream says {behaviour.status}", "type": "fake"}}
    return web.json_response(error, status=behaviour.status, headers=headers)


def _completion(model: str, content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": len(content.split()), "total_tokens": 5},
    }


def _chunk(model: str, delta: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }


@asynccontextmanager
async def running_fake(fake: FakeUpstream) -> AsyncIterator[FakeUpstream]:
    # A stalled or delayed handler stops when the gateway hangs up, and never holds teardown long.
    async with served(fake.app(), handler_cancellation=True, shutdown_timeout=1.0) as url:
        fake.url = url
        yield fake
