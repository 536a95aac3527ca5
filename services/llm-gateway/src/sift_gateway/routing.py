"""Shared steps of the OpenAI endpoints: measure the request, find the profile, open an upstream
call with fallback, relay a JSON answer, and turn upstream failures into OpenAI-shaped errors."""

import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from aiohttp import web

from sift_gateway.admission import PriorityClass
from sift_gateway.errors import (
    ApiError,
    model_not_found,
    request_id,
    unavailable,
    upstream_error,
)
from sift_gateway.outcome import CALLER_KEY, OUTCOME_KEY, Outcome
from sift_gateway.registry import ProfileRuntime
from sift_gateway.state import GatewayState
from sift_gateway.upstream import (
    NoReplicaError,
    UpstreamCall,
    UpstreamFailedError,
    UpstreamRejectedError,
)

MAX_REJECTION_CHARS = 500
BodyFor = Callable[[ProfileRuntime], Awaitable[tuple[bytes, int]]]


@contextmanager
def observed(state: GatewayState, request: web.Request, endpoint: str) -> Iterator[Outcome]:
    """The request's Outcome; recorded (metrics, request log) however the request ends."""
    outcome = Outcome(request_id(request), endpoint, "-", caller=request.get(CALLER_KEY))
    request[OUTCOME_KEY] = outcome  # the door charges its tokens to the caller's key
    try:
        yield outcome
    except ApiError as exc:
        outcome.status, outcome.error = exc.status, exc.detail or exc.message
        raise
    finally:
        outcome.record(state.metrics, state.request_log)


def relay_json(state: GatewayState, call: UpstreamCall, outcome: Outcome) -> web.Response:
    """Pass a complete upstream JSON answer through as it is, with the gateway's headers."""
    call.finish(state.metrics, ok=True)
    outcome.upstream_s = call.first_byte_at - call.sent_at
    if call.first_token_at is not None:  # assembled from a stream: its first token was timed
        outcome.ttft_s = call.first_token_at - call.sent_at
    outcome.status = 200
    outcome.prompt_tokens, outcome.completion_tokens = usage_of(call.first_chunk)
    overhead_ms = outcome.overhead_s(time.monotonic()) * 1000
    return web.Response(
        body=call.first_chunk,
        content_type="application/json",
        headers={"x-sift-overhead-ms": f"{overhead_ms:.3f}", "x-request-id": outcome.request_id},
    )


def resolve_profile(state: GatewayState, model: str, kind: str) -> ProfileRuntime:
    runtime = state.registry.resolve(model)
    if runtime is None:
        raise model_not_found(model, state.registry.model_names())
    if runtime.profile.kind != kind:
        raise ApiError(
            400,
            f"model {model!r} is a {runtime.profile.kind} model and cannot serve this endpoint",
            error_type="invalid_request_error",
            param="model",
            code="wrong_model_kind",
        )
    return runtime


async def open_with_fallback(
    state: GatewayState,
    runtime: ProfileRuntime,
    path: str,
    body_for: BodyFor,
    stream: bool,
    priority: PriorityClass,
    outcome: Outcome,
) -> UpstreamCall:
    """Open a call on `runtime`, or on its fallback chain when all its replicas are down."""
    deadline = outcome.started + runtime.profile.timeouts.total_s
    tried: list[str] = []
    candidate: ProfileRuntime | None = runtime
    while candidate is not None and candidate.name not in tried:
        tried.append(candidate.name)
        outcome.profile = candidate.name
        outcome.ttft_target_s = candidate.profile.ttft_target_ms / 1000
        body, cost = await body_for(candidate)
        try:
            call = await state.caller.open(
                candidate,
                path,
                body,
                stream=stream,
                priority=priority,
                cost_tokens=cost,
                deadline=deadline,
            )
        except NoReplicaError:
            candidate = state.registry.fallback_of(candidate)
            if candidate is not None:
                state.metrics.fallbacks.labels(runtime.name).inc()
            continue
        except UpstreamFailedError as exc:
            raise _failed(exc) from None
        except UpstreamRejectedError as exc:
            raise _rejected(exc) from None
        outcome.upstream = call.replica.url
        outcome.queue_wait_s = call.queue_wait_s
        outcome.retrying_s = call.retrying_s
        return call
    raise unavailable(f"no replica available for {' → '.join(tried)}", retry_after_s=5)


def _failed(exc: UpstreamFailedError) -> ApiError:
    """The client reads the public message; the replica's URL and answer go to the log."""
    if exc.status == 503:
        retry_after = max(1, round(exc.retry_after_s)) if exc.retry_after_s else 5
        code = "overloaded" if exc.overloaded else "upstream_unavailable"
        error = unavailable(exc.message, retry_after, code=code)
    else:
        code = "upstream_timeout" if exc.status == 504 else "upstream_error"
        error = upstream_error(exc.status, exc.message, code=code)
    error.detail = exc.detail
    return error


def _rejected(exc: UpstreamRejectedError) -> ApiError:
    """Pass the upstream's own 4xx on, keeping its message when it is OpenAI-shaped (it is
    about the client's request: a context too long, a parameter out of range), cut to
    `MAX_REJECTION_CHARS`; any other body goes to the log only."""
    message = f"the model server refused the request ({exc.status})"
    try:
        error = orjson.loads(exc.body).get("error", {})
        message = str(error.get("message", message)) if isinstance(error, dict) else message
    except (orjson.JSONDecodeError, AttributeError):
        pass
    return ApiError(
        exc.status,
        message[:MAX_REJECTION_CHARS],
        error_type="invalid_request_error",
        code="upstream_rejected",
        detail=f"upstream answered {exc.status}: {exc.body[:500].decode(errors='replace')}",
    )


def usage_of(body: bytes) -> tuple[int | None, int | None]:
    """(prompt_tokens, completion_tokens) from an OpenAI JSON response, if present."""
    try:
        usage: Any = orjson.loads(body).get("usage") or {}
    except (orjson.JSONDecodeError, AttributeError):
        return None, None
    return usage.get("prompt_tokens"), usage.get("completion_tokens")
