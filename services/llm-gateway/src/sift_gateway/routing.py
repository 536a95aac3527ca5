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
from sift_gateway.split import PROFILE_HEADER, profile_header, sticky_key_of
from sift_gateway.state import GatewayState
from sift_gateway.upstream import (
    NoReplicaError,
    UpstreamCall,
    UpstreamFailedError,
    UpstreamRejectedError,
)
from sift_gateway.wake import WakeFailedError

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
    return json_answer(call.first_chunk, outcome)


def json_answer(body: bytes, outcome: Outcome, extra: dict[str, str] | None = None) -> web.Response:
    """A complete JSON answer with the gateway's headers: its overhead so far, the request id
    and the profile that answered."""
    overhead_ms = outcome.overhead_s(time.monotonic()) * 1000
    headers = {
        "x-sift-overhead-ms": f"{overhead_ms:.3f}",
        "x-request-id": outcome.request_id,
        PROFILE_HEADER: profile_header(outcome.profile),
    }
    return web.Response(body=body, content_type="application/json", headers=headers | (extra or {}))


def resolve_profile(
    state: GatewayState, request: web.Request, outcome: Outcome, kind: str
) -> ProfileRuntime:
    """The profile for the model asked for; an alias under an A/B split gives the arm of the
    request's sticky key (`split.py`), and the outcome notes the alias for per-arm metrics."""
    model = outcome.model
    runtime = state.registry.resolve(model, sticky_key_of(request.headers))
    if model in state.registry.splits:
        outcome.split_alias = model
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
    """Open a call on `runtime`, or on its fallback chain when all its replicas are down; a
    profile with `wake` waits for its engine instead, once per request."""
    deadline = outcome.started + runtime.profile.timeouts.total_s
    tried: list[str] = []
    woken: set[str] = set()
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
            if candidate.name not in woken and await _woke(state, candidate, deadline, outcome):
                woken.add(candidate.name)
                tried.pop()  # the same profile again, now that a replica is up
                continue
            candidate = state.registry.fallback_of(candidate)
            if candidate is not None:
                state.metrics.fallbacks.labels(runtime.name).inc()
            continue
        except UpstreamFailedError as exc:
            raise _failed(exc) from None
        except UpstreamRejectedError as exc:
            raise _rejected(exc) from None
        outcome.upstream = call.replica.url
        outcome.queue_wait_s += call.queue_wait_s  # after any wait for a wake
        outcome.retrying_s = call.retrying_s
        return call
    raise unavailable(f"no replica available for {' → '.join(tried)}", retry_after_s=5)


async def _woke(
    state: GatewayState, runtime: ProfileRuntime, deadline: float, outcome: Outcome
) -> bool:
    """Wait for a stopped engine to wake: True once a replica is up (at once if a probe
    just found one: worth one more try); False when the profile has no `wake`."""
    if runtime.profile.wake is None:
        return False
    if runtime.any_available(time.monotonic()):
        return True
    started = time.monotonic()
    try:
        await state.waker.wait_until_up(runtime, deadline)
    except WakeFailedError as exc:
        raise unavailable(str(exc), retry_after_s=30, code="engine_not_woken") from None
    except TimeoutError:
        message = "deadline passed while the engine woke"
        raise upstream_error(504, message, code="upstream_timeout") from None
    finally:
        outcome.queue_wait_s += time.monotonic() - started  # deliberate waiting, not overhead
    return True


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
