"""Calling a profile's vLLM replicas: admission, routing, retries, breakers, timeouts.

`UpstreamCaller.open` returns an `UpstreamCall` whose response is ready to read: for a stream,
its first chunk has already arrived. Everything before that point may be retried (another
replica, backoff with jitter, `Retry-After` honoured, one total deadline); nothing after it is,
because the client may already have bytes. A non-streamed chat request asked as a stream
(`sift_gateway.assemble`) is read whole within the attempt, like a JSON answer: a stream that
breaks before its end is retried, and only the total deadline bounds it.
"""

import asyncio
import random
import time
from dataclasses import dataclass

import aiohttp

from sift_gateway.admission import PriorityClass, QueueTimeoutError
from sift_gateway.assemble import IncompleteStreamError, assemble, is_event_stream, read_stream
from sift_gateway.backoff import RETRYABLE_STATUS, RetryPolicy, parse_retry_after
from sift_gateway.metrics import GatewayMetrics
from sift_gateway.registry import ProfileRuntime, Replica

JSON_HEADERS = {"Content-Type": "application/json"}
UPSTREAM_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)


class NoReplicaError(Exception):
    """Every replica of the profile is down (breaker open or failing its probes)."""


class UpstreamFailedError(Exception):
    """Retries could not get an answer; `status` is what the client should see. `overloaded`:
    nothing is broken, the capacity is taken (a full queue, an upstream's 429). The message is
    for the client (no URLs, no upstream bodies or exception text); `detail`, for the logs,
    names the replica and what it said."""

    def __init__(
        self,
        status: int,
        message: str,
        retry_after_s: float | None = None,
        *,
        overloaded: bool = False,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s
        self.overloaded = overloaded
        self.detail = detail or message


class UpstreamRejectedError(Exception):
    """The upstream refused the request itself (a 4xx other than 408/429): passed on as is."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"upstream answered {status}")
        self.status = status
        self.body = body


@dataclass
class UpstreamCall:
    runtime: ProfileRuntime
    replica: Replica
    response: aiohttp.ClientResponse
    first_chunk: bytes
    sent_at: float
    first_byte_at: float
    queue_wait_s: float
    attempts: int
    retrying_s: float = 0.0
    first_token_at: float | None = None  # a non-streamed answer assembled from a stream
    _finished: bool = False

    def finish(self, metrics: GatewayMetrics, ok: bool) -> None:
        """Release the slot and record the outcome; idempotent."""
        if not self._finished:
            self._finished = True
            settle(metrics, self.runtime, self.replica, self.response, ok=ok)


class UpstreamCaller:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        metrics: GatewayMetrics,
        rng: random.Random | None = None,
    ) -> None:
        self._session = session
        self._metrics = metrics
        self._rng = rng or random.Random()

    async def open(
        self,
        runtime: ProfileRuntime,
        path: str,
        body: bytes,
        *,
        stream: bool,
        priority: PriorityClass,
        cost_tokens: int,
        deadline: float,
    ) -> UpstreamCall:
        attempt = 0
        queue_wait_total = 0.0
        retrying_s = 0.0  # failed attempts and backoff: upstream's fault, not gateway overhead
        while True:
            attempt += 1
            # Admit only as many as the replicas that are up can take, so that with one
            # replica down the rest queue instead of being admitted with nowhere to go.
            capacity = runtime.available_capacity(time.monotonic())
            if capacity == 0:
                raise NoReplicaError(f"no replica of profile {runtime.name!r} is available")
            runtime.admission.resize(capacity)
            queue_wait_total += await self._admit(runtime, priority, cost_tokens, deadline)
            replica = runtime.pick(time.monotonic())
            if replica is None or not replica.breaker.allows(time.monotonic()):
                runtime.admission.release()
                raise NoReplicaError(f"no replica of profile {runtime.name!r} is available")
            replica.outstanding += 1
            attempt_started = time.monotonic()
            outcome = await self._attempt(runtime, replica, path, body, stream, deadline)
            if isinstance(outcome, UpstreamCall):
                outcome.queue_wait_s, outcome.attempts = queue_wait_total, attempt
                outcome.retrying_s = retrying_s
                return outcome
            remaining = deadline - time.monotonic()
            policy = RetryPolicy(**runtime.profile.retries.model_dump())
            delay = policy.next_delay_s(attempt, outcome.retry_after_s, remaining, self._rng)
            if delay is None:
                raise UpstreamFailedError(
                    outcome.status,
                    outcome.message,
                    outcome.retry_after_s,
                    overloaded=outcome.overloaded,
                    detail=outcome.detail,
                )
            self._metrics.retries.labels(runtime.name, str(outcome.status)).inc()
            await asyncio.sleep(delay)
            retrying_s += time.monotonic() - attempt_started

    async def _admit(
        self, runtime: ProfileRuntime, priority: PriorityClass, cost: int, deadline: float
    ) -> float:
        if runtime.admission.try_acquire():
            return 0.0  # no timer, no metric: the hot path of an unsaturated gateway
        started = time.monotonic()
        try:
            async with asyncio.timeout_at(_loop_deadline(deadline)):
                await runtime.admission.acquire(priority, cost)
        except TimeoutError:
            raise UpstreamFailedError(504, "deadline passed while queued") from None
        except QueueTimeoutError as exc:
            raise UpstreamFailedError(503, str(exc), exc.retry_after_s, overloaded=True) from None
        waited = time.monotonic() - started
        self._metrics.queue_wait.labels(runtime.name).observe(waited)
        return waited

    async def _attempt(
        self,
        runtime: ProfileRuntime,
        replica: Replica,
        path: str,
        body: bytes,
        stream: bool,
        deadline: float,
    ) -> "UpstreamCall | Failure":
        """One try: the open call, or a Failure saying what the client would see."""
        timeouts = runtime.profile.timeouts
        sent_at = time.monotonic()
        remaining = max(deadline - sent_at, 0.001)
        limit = min(remaining, timeouts.ttft_s) if stream else remaining
        connect = aiohttp.ClientTimeout(total=None, connect=min(timeouts.connect_s, remaining))
        response: aiohttp.ClientResponse | None = None
        try:
            async with asyncio.timeout(limit):
                response = await self._session.post(
                    replica.url + path, data=body, headers=JSON_HEADERS, timeout=connect
                )
                if response.status == 200:
                    return await _answered(runtime, replica, response, sent_at, stream)
                payload = await response.read()
        except IncompleteStreamError as exc:
            failure = Failure(502, "the model server's answer broke off", detail=str(exc))
            return self._failed(runtime, replica, response, failure)
        except UPSTREAM_ERRORS as exc:
            if isinstance(exc, TimeoutError) and not isinstance(exc, aiohttp.ServerTimeoutError):
                # This request's own deadline, not a dead replica (connect and read timeouts
                # are aiohttp's): one slow request must not open the breaker for everyone.
                reason = f"timed out waiting for the {'first token' if stream else 'response'}"
                settle(self._metrics, runtime, replica, response, ok=None)
                return Failure(504, reason, detail=f"{replica.url}: {reason}")
            if isinstance(exc, aiohttp.ClientConnectorError) and runtime.profile.wake:
                replica.healthy = False  # nothing listens: asleep until a probe passes (wake.py)
            failure = Failure(
                502, "the model server could not be reached", detail=str(exc) or repr(exc)
            )
            return self._failed(runtime, replica, response, failure)
        status = response.status
        if status not in RETRYABLE_STATUS:
            settle(self._metrics, runtime, replica, response, ok=True)  # the upstream is fine
            raise UpstreamRejectedError(status, payload)
        retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
        public = f"the model server answered {status}"
        reason = f"upstream answered {status}: {payload[:200].decode(errors='replace')}"
        if status == 429:  # busy, not broken: must not open the breaker
            settle(self._metrics, runtime, replica, response, ok=True)
            detail = f"{replica.url}: {reason}"
            return Failure(503, public, retry_after, overloaded=True, detail=detail)
        failure = Failure(503 if status == 503 else 502, public, retry_after, detail=reason)
        return self._failed(runtime, replica, response, failure)

    def _failed(
        self,
        runtime: ProfileRuntime,
        replica: Replica,
        response: aiohttp.ClientResponse | None,
        failure: "Failure",
    ) -> "Failure":
        replica.last_error = failure.detail  # served on the authenticated /admin/upstreams
        settle(self._metrics, runtime, replica, response, ok=False)
        detail = f"{replica.url}: {failure.detail}"
        return Failure(failure.status, failure.message, failure.retry_after_s, detail=detail)


async def _answered(
    runtime: ProfileRuntime,
    replica: Replica,
    response: aiohttp.ClientResponse,
    sent_at: float,
    stream: bool,
) -> UpstreamCall:
    """A 200 read as far as the call needs: a stream's first chunk, or the whole answer (a
    stream asked for a non-streamed request assembled into one, after the clock stops)."""
    first_token_at: float | None = None
    if stream:
        first = await response.content.readany()
    elif is_event_stream(response):
        first, first_token_at = await read_stream(response)
    else:
        first = await response.read()
    call = UpstreamCall(runtime, replica, response, first, sent_at, time.monotonic(), 0.0, 0)
    if first_token_at is not None:
        call.first_token_at = first_token_at
        call.first_chunk = assemble(first)
    return call


@dataclass(frozen=True)
class Failure:
    """One failed try: `message` is what a client may read, `detail` what the logs get."""

    status: int
    message: str
    retry_after_s: float | None = None
    overloaded: bool = False
    detail: str | None = None


def settle(
    metrics: GatewayMetrics,
    runtime: ProfileRuntime,
    replica: Replica,
    response: aiohttp.ClientResponse | None,
    *,
    ok: bool | None,
) -> None:
    """Give back the admission slot and the replica's outstanding count; feed the breaker
    (`ok=None`: the outcome says nothing about the replica's health)."""
    replica.outstanding -= 1
    runtime.admission.release()
    if ok:
        replica.breaker.record_success()
    elif ok is False:
        replica.breaker.record_failure(time.monotonic())
    else:
        replica.breaker.record_inconclusive()
    metrics.breaker_state.labels(replica.url).set(0 if replica.breaker.state == "closed" else 1)
    if response is not None:
        response.release()


def _loop_deadline(deadline: float) -> float:
    """Convert a time.monotonic() deadline to the event loop's clock."""
    loop = asyncio.get_running_loop()
    return loop.time() + (deadline - time.monotonic())
