"""POST /v1/embeddings and GET /v1/models."""

import orjson
from aiohttp import web

from sift_gateway.admission import PriorityClass
from sift_gateway.auth import request_priority
from sift_gateway.registry import ProfileRuntime
from sift_gateway.routing import observed, open_with_fallback, relay_json, resolve_profile
from sift_gateway.state import STATE_KEY
from sift_gateway.validation import (
    parse_object,
    require_embedding_input,
    require_model,
)


async def embeddings(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    with observed(state, request, "embeddings") as outcome:
        payload = parse_object(await request.read())
        outcome.model = require_model(payload)
        inputs = require_embedding_input(payload)
        priority: PriorityClass = request_priority(request)
        runtime = resolve_profile(state, request, outcome, "embeddings")

        async def body_for(candidate: ProfileRuntime) -> tuple[bytes, int]:
            body = orjson.dumps({**payload, "model": candidate.profile.served_model})
            return body, inputs

        call = await open_with_fallback(
            state, runtime, "/v1/embeddings", body_for, False, priority, outcome
        )
        return relay_json(state, call, outcome)


async def list_models(request: web.Request) -> web.Response:
    registry = request.app[STATE_KEY].registry
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "sift"}
        for name in registry.model_names()
    ]
    return web.json_response({"object": "list", "data": data}, dumps=_dumps)


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()
