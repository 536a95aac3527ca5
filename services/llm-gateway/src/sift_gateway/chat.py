"""POST /v1/chat/completions: validate, fit the context, route, relay (JSON or SSE)."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from sift_gateway.admission import PriorityClass
from sift_gateway.assemble import streaming_body
from sift_gateway.auth import request_priority
from sift_gateway.context import (
    ContextOverflowError,
    clamp_max_tokens,
    fits_without_counting,
    prompt_bytes_upper_bound,
)
from sift_gateway.errors import REQUEST_ID_HEADER, invalid_request
from sift_gateway.outcome import CALLER_KEY, Outcome
from sift_gateway.registry import ProfileRuntime
from sift_gateway.replay import How, Kept, replay_key
from sift_gateway.routing import (
    json_answer,
    observed,
    open_with_fallback,
    relay_json,
    resolve_profile,
)
from sift_gateway.split import PROFILE_HEADER, profile_header
from sift_gateway.state import STATE_KEY, GatewayState
from sift_gateway.upstream import JSON_HEADERS, UpstreamCall
from sift_gateway.validation import (
    optional_max_tokens,
    optional_n,
    optional_stream,
    parse_object,
    require_messages,
    require_model,
)

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
DONE_MARKER = b"data: [DONE]"
REPLAYED = "replay"  # the request log's upstream for an answer kept from an earlier call
REPLAYED_HEADER = "x-sift-replayed"  # kept | joined (the first call was still open)
logger = logging.getLogger("sift_gateway.chat")


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    with observed(state, request, "chat") as outcome:
        raw = await request.read()
        payload = parse_object(raw)
        outcome.model = require_model(payload)
        messages = require_messages(payload, state.limits.max_messages)
        optional_n(payload, state.limits.max_n)
        stream = optional_stream(payload)
        max_field, max_tokens = optional_max_tokens(payload, state.limits.max_tokens)
        priority = request_priority(request)

        async def answer() -> web.StreamResponse:
            runtime = resolve_profile(state, request, outcome, "chat")

            async def body_for(candidate: ProfileRuntime) -> tuple[bytes, int]:
                fitted, cost = await fit_context(
                    state, candidate, payload, messages, max_field, max_tokens
                )
                if not stream and _streams_upstream(candidate, payload):
                    fitted = streaming_body(fitted)
                return _upstream_body(candidate, fitted, priority), cost

            call = await open_with_fallback(
                state, runtime, "/v1/chat/completions", body_for, stream, priority, outcome
            )
            if stream:
                return await _relay_stream(request, state, call, outcome)
            return relay_json(state, call, outcome)

        key = None if stream else _replay_key(state, request, raw)
        if key is None:
            return await answer()
        return await _answered_once(state, outcome, key, answer)


async def _answered_once(
    state: GatewayState,
    outcome: Outcome,
    key: str,
    answer: Callable[[], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    """A retry of a call this replica answered, or is answering, gets that call's answer
    (`sift_gateway.replay`); otherwise `answer` makes the call and its answer is kept."""
    waited_from = time.monotonic()
    found = await state.replays.answer_for(key)
    outcome.queue_wait_s += time.monotonic() - waited_from  # for the open call: not overhead
    if found is not None:
        return replayed(state, outcome, *found)
    with state.replays.owning(key) as keeper:
        response = await answer()
        if isinstance(response, web.Response) and isinstance(response.body, bytes):
            keeper.keep(Kept(response.body, outcome.profile))
        return response


def _replay_key(state: GatewayState, request: web.Request, raw: bytes) -> str | None:
    """Only a request that named its own id can be a retry of an earlier one."""
    request_id = request.headers.get(REQUEST_ID_HEADER)
    if not request_id or not state.replays.enabled:
        return None
    return replay_key(request.get(CALLER_KEY), request_id, raw)


def replayed(state: GatewayState, outcome: Outcome, kept: Kept, how: How) -> web.Response:
    """A retry answered from the first call's answer: no upstream call, no tokens spent."""
    outcome.status, outcome.profile, outcome.upstream = 200, kept.profile, REPLAYED
    state.metrics.replays.labels(kept.profile, how).inc()
    return json_answer(kept.body, outcome, {REPLAYED_HEADER: how})


async def fit_context(
    state: GatewayState,
    runtime: ProfileRuntime,
    payload: dict[str, Any],
    messages: list[dict[str, Any]],
    max_field: str,
    max_tokens: int | None,
) -> tuple[dict[str, Any], int]:
    """The payload for `runtime` with `max_tokens` clamped when the context would overflow,
    and the estimated prefill cost in tokens (for admission ordering)."""
    bound = prompt_bytes_upper_bound(messages)
    fitted = {**payload, "model": runtime.profile.served_model}
    limit = runtime.max_model_len()
    if limit is None or fits_without_counting(bound, max_tokens, limit):
        return fitted, bound
    prompt_tokens = await count_prompt_tokens(state, runtime, messages)
    if prompt_tokens is None:
        return fitted, bound  # cannot count: let vLLM judge rather than guess
    try:
        clamp = clamp_max_tokens(prompt_tokens, max_tokens, limit)
    except ContextOverflowError as exc:
        raise invalid_request(str(exc), "messages", "context_length_exceeded") from None
    if clamp.clamped:
        state.metrics.clamped.labels(runtime.name).inc()
    fitted[max_field] = clamp.max_tokens
    return fitted, prompt_tokens


async def count_prompt_tokens(
    state: GatewayState, runtime: ProfileRuntime, messages: list[dict[str, Any]]
) -> int | None:
    """The exact prompt size from vLLM's /tokenize (chat template applied)."""
    replica = runtime.pick(time.monotonic())
    if replica is None:
        return None
    body = {"model": runtime.profile.served_model, "messages": messages}
    try:
        async with state.session.post(
            replica.url + "/tokenize",
            data=orjson.dumps(body),
            headers=JSON_HEADERS,
            timeout=aiohttp.ClientTimeout(total=runtime.profile.timeouts.connect_s + 5),
        ) as response:
            if response.status != 200:
                return None
            answer = orjson.loads(await response.read())
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
        return None
    count = answer.get("count")
    return count if isinstance(count, int) else None


def _streams_upstream(runtime: ProfileRuntime, payload: dict[str, Any]) -> bool:
    """A non-streamed request goes upstream as a stream where the profile allows it; one
    carrying its own `stream_options` goes as sent, for vLLM to judge."""
    return runtime.profile.stream_upstream and "stream_options" not in payload


def _upstream_body(
    runtime: ProfileRuntime, fitted: dict[str, Any], priority: PriorityClass
) -> bytes:
    if runtime.profile.priority_scheduling:
        fitted["priority"] = int(priority)
    return orjson.dumps(fitted)


async def _relay_stream(
    request: web.Request, state: GatewayState, call: UpstreamCall, outcome: Outcome
) -> web.StreamResponse:
    outcome.ttft_s = call.first_byte_at - call.sent_at
    overhead_ms = (outcome.overhead_s(time.monotonic()) - outcome.ttft_s) * 1000
    response = web.StreamResponse(
        headers={
            **SSE_HEADERS,
            "x-sift-overhead-ms": f"{overhead_ms:.3f}",
            "x-request-id": outcome.request_id,
            PROFILE_HEADER: profile_header(outcome.profile),
        }
    )
    outcome.status = 200
    ok = True
    try:
        await response.prepare(request)
        error = await _pump(response, call, outcome)
        if error is not None:
            ok = False
            outcome.error = error
            await response.write(sse_error(error))
        await response.write_eof()
    except (ConnectionResetError, asyncio.CancelledError):
        outcome.status, outcome.error = 499, "client went away mid-stream"
        raise
    finally:
        outcome.upstream_s = time.monotonic() - call.sent_at
        call.finish(state.metrics, ok=ok)
    return response


async def _pump(response: web.StreamResponse, call: UpstreamCall, outcome: Outcome) -> str | None:
    """Copy upstream chunks to the client; the reason if the stream broke, else None."""
    stall_s = call.runtime.profile.timeouts.stall_s
    chunk, tail, events = call.first_chunk, b"", 0
    while chunk:
        events += chunk.count(b"data: {")
        tail = (tail + chunk)[-64:]
        await response.write(chunk)
        try:
            async with asyncio.timeout(stall_s):
                chunk = await call.response.content.readany()
        except TimeoutError:
            return f"upstream stalled: no data for {stall_s:g} s"
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            logger.warning(
                "stream from %s broke: %r",
                call.replica.url,
                exc,
                extra={"request_id": outcome.request_id},
            )
            return f"upstream stream broke (request id {outcome.request_id})"
    # vLLM sends one event per token after a first event that carries only the role.
    outcome.completion_tokens = max(events - 1, 0)
    if DONE_MARKER not in tail:
        return "upstream stream ended before completion"
    return None


def sse_error(message: str) -> bytes:
    error = {"error": {"message": message, "type": "upstream_error", "code": "stream_interrupted"}}
    return b"data: " + orjson.dumps(error) + b"\n\n"
