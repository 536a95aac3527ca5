"""Waking a stopped engine, so a profile can scale to zero without failing its first requests.

A request for a profile with `wake` (profiles.py) whose replicas are all down waits here
instead of getting a 503 or the fallback. The first such request starts the profile's wake:
the hook URL, if any, is POSTed once, then the replicas get the gateway's real probe every
`poll_s`. Requests arriving meanwhile join that wake (one per profile, however many wait).
It ends when a replica passes a probe (the requests then go through admission as usual),
after `timeout_s`, or when the hook refuses; each request is also bounded by its own deadline.
Without a hook URL the wake only waits and probes: an autoscaler that watches
`sift_gateway_demand` (which counts the requests waiting here) starts the engine.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson

from sift_gateway.metrics import GatewayMetrics
from sift_gateway.profiles import WakeSettings
from sift_gateway.registry import ProfileRuntime, Replica
from sift_gateway.upstream import JSON_HEADERS

logger = logging.getLogger(__name__)

Probe = Callable[[ProfileRuntime, Replica], Awaitable[None]]
WOKEN, TIMED_OUT, HOOK_FAILED = "woken", "timed_out", "hook_failed"
AWAKE = "awake"


class WakeFailedError(Exception):
    """The engine did not wake; the message is for the client (no URLs)."""


class HookFailedError(Exception):
    """The wake hook could not be reached or did not answer 2xx (the detail is for the log)."""


@dataclass
class Wake:
    """One profile's wake in progress."""

    profile: str
    hooked: bool
    started_at: float = field(default_factory=time.monotonic)
    started_wall: datetime = field(default_factory=lambda: datetime.now(UTC))
    waiting: int = 0
    failure: str | None = None  # set when it ended without a replica up
    task: "asyncio.Task[None] | None" = None

    def describe(self) -> str:
        by = "engine started by hook" if self.hooked else "waiting for the autoscaler"
        return f"waking: {by} at {_clock(self.started_wall)}, {self.waiting} requests waiting"


class Waker:
    """The wakes in progress, one per profile, and how the last failed one ended."""

    def __init__(self, session: aiohttp.ClientSession, metrics: GatewayMetrics, probe: Probe):
        self._session, self._metrics, self._probe = session, metrics, probe
        self._wakes: dict[str, Wake] = {}
        self._last_failure: dict[str, str] = {}

    def waiting(self, profile: str) -> int:
        wake = self._wakes.get(profile)
        return 0 if wake is None else wake.waiting

    async def wait_until_up(self, runtime: ProfileRuntime, deadline: float) -> None:
        """Start or join the profile's wake; return once a replica is up. Raises
        WakeFailedError when the wake failed, TimeoutError when `deadline` (time.monotonic())
        passes first; the wake goes on for the others either way."""
        wake = self._wakes.get(runtime.name) or self._start(runtime)
        assert wake.task is not None
        wake.waiting += 1
        try:
            loop = asyncio.get_running_loop()
            async with asyncio.timeout_at(loop.time() + deadline - time.monotonic()):
                await asyncio.shield(wake.task)
        finally:
            wake.waiting -= 1
        if wake.failure is not None:
            raise WakeFailedError(wake.failure)

    def status(self, runtime: ProfileRuntime) -> str | None:
        """Of a profile with `wake` (None without): `AWAKE` while a replica is available,
        else what readiness says: waking, or asleep (and how the last wake failed)."""
        if runtime.profile.wake is None:
            return None
        if (wake := self._wakes.get(runtime.name)) is not None:
            return wake.describe()
        if runtime.any_available(time.monotonic()):
            return AWAKE
        failed = self._last_failure.get(runtime.name)
        return "asleep: the next request wakes it" + (f" ({failed})" if failed else "")

    async def close(self) -> None:
        tasks = [wake.task for wake in self._wakes.values() if wake.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, runtime: ProfileRuntime) -> Wake:
        settings = runtime.profile.wake
        assert settings is not None, "only profiles with `wake` are woken"
        wake = Wake(runtime.name, hooked=settings.url is not None)
        wake.task = asyncio.create_task(self._run(runtime, settings, wake), name="wake")
        self._wakes[runtime.name] = wake
        logger.info("waking profile %s: no replica is up (%s)", runtime.name, wake.describe())
        return wake

    async def _run(self, runtime: ProfileRuntime, settings: WakeSettings, wake: Wake) -> None:
        try:
            async with asyncio.timeout(settings.timeout_s):
                if settings.url is not None:
                    await self._call_hook(runtime, settings, wake)
                while not runtime.any_available(time.monotonic()):
                    await asyncio.sleep(settings.poll_s)
                    await asyncio.gather(*(self._probe(runtime, r) for r in runtime.replicas))
            outcome = WOKEN
        except TimeoutError:
            outcome = TIMED_OUT
            wake.failure = (
                f"the engine of profile {runtime.name!r} did not wake within the wake timeout "
                f"({settings.timeout_s:g} s)"
            )
        except HookFailedError as exc:
            outcome = HOOK_FAILED
            wake.failure = f"the wake hook of profile {runtime.name!r} failed"
            logger.error("wake hook of profile %s failed: %s", runtime.name, exc)
        finally:
            del self._wakes[runtime.name]  # the next outage starts a wake of its own
        self._finished(runtime.name, wake, outcome)

    def _finished(self, profile: str, wake: Wake, outcome: str) -> None:
        took = time.monotonic() - wake.started_at
        self._metrics.wakes.labels(profile, outcome).inc()
        if wake.failure is None:
            self._last_failure.pop(profile, None)
            self._metrics.wake_seconds.labels(profile).observe(took)
            logger.info("profile %s woke in %.1f s", profile, took)
            return
        self._last_failure[profile] = f"the last wake failed at {_clock(datetime.now(UTC))}"
        logger.error("profile %s did not wake (%s after %.1f s)", profile, outcome, took)

    async def _call_hook(self, runtime: ProfileRuntime, settings: WakeSettings, wake: Wake) -> None:
        body: dict[str, Any] = {
            "profile": runtime.name,
            "served_model": runtime.profile.served_model,
            "waiting": wake.waiting,
        }
        try:
            async with (
                asyncio.timeout(settings.hook_timeout_s),
                self._session.post(
                    str(settings.url), data=orjson.dumps(body), headers=JSON_HEADERS
                ) as response,
            ):
                answer = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise HookFailedError(f"{settings.url}: {exc!r}") from exc
        if not 200 <= response.status < 300:
            raise HookFailedError(f"{settings.url} answered {response.status}: {answer[:200]}")


def _clock(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
