"""POST /v1/embeddings and GET /v1/models."""

import time
import uuid

import orjson
from aiohttp import web

from sift_gateway.admission import PriorityClass
from sift_gateway.errors import ApiError
from sift_gateway.outcome import Outcome
from sift_gateway.registry import ProfileRuntime
from sift_gateway.routing import open_with_fallback, resolve_profile, usage_of
from sift_gateway.state import STATE_KEY
from sift_gateway.validation import (
    parse_object,
    priority_class,
    require_embedding_input,
    require_model,
)


async def embeddings(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    outcome = Outcome(request.headers.get("x-request-id") or uuid.uuid4().hex, "embeddings", "-")
    try:
        payload = parse_object(await request.read())
        outcome.model = require_model(payload)
        inputs = require_embedding_input(payload)
        priority: PriorityClass = priority_class(request.headers)
        runtime = resolve_profile(state, outcome.model, "embeddings")

        async def body_for(candidate: ProfileRuntime) -> tuple[bytes, int]:
            body = orjson.dumps({**payload, "model": candidate.profile.served_model})
            return body, inputs

        call = await open_with_fallback(
            state, runtime, "/v1/embeddings", body_for, False, priority, outcome
        )
        call.finish(state.metrics, ok=True)
        outcome.upstream_s = call.first_byte_at - call.sent_at
        outcome.status = 200
        outcome.prompt_tokens, _ = usage_of(call.first_chunk)
        overhead_ms = outcome.overhead_s(time.monotonic()) * 1000
        return web.Response(
            body=call.first_chunk,
            content_type="application/json",
            headers={
                "x-sift-overhead-ms": f"{overhead_ms:.3f}",
                "x-request-id": outcome.request_id,
            },
        )
    except ApiError as exc:
        outcome.status, outcome.error = exc.status, exc.message
        raise
    finally:
        outcome.record(state.metrics, state.request_log)


async def list_models(request: web.Request) -> web.Response:
    registry = request.app[STATE_KEY].registry
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "sift"}
        for name in registry.model_names()
    ]
    return web.json_response({"object": "list", "data": data}, dumps=_dumps)


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()
