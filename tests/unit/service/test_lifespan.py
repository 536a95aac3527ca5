"""`serving`: what was opened stops in reverse order, every stop runs, readiness drains first."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest

from sift_common.service.lifespan import serving
from sift_common.service.readiness import Readiness


async def test_stops_run_in_reverse_even_when_one_fails(caplog: pytest.LogCaptureFixture) -> None:
    readiness = Readiness({})
    order: list[str] = []

    def step(name: str, fails: bool = False) -> Callable[[], Awaitable[None]]:
        async def stop() -> None:
            order.append(f"{name} (draining={readiness.draining})")
            if fails:
                raise ConnectionError(f"{name} already gone")

        return stop

    async with serving("test", readiness) as shutdown:
        shutdown.on_stop("clients", step("clients"))
        shutdown.on_stop("broker", step("broker", fails=True))
        shutdown.on_stop("messages in flight", step("drain"))
        shutdown.on_stop("intake", lambda: order.append("stop accepting"))  # a plain function
    assert order == [
        "stop accepting",
        "drain (draining=True)",
        "broker (draining=True)",
        "clients (draining=True)",
    ]
    assert "stopping the broker failed" in caplog.text


async def test_a_failed_start_stops_what_was_opened() -> None:
    stopped: list[str] = []

    async def close() -> None:
        stopped.append("redis")

    async def start() -> None:
        async with serving("test", Readiness({})) as shutdown:
            shutdown.on_stop("redis", close)
            raise ConnectionError("broker refused")

    with pytest.raises(ConnectionError):
        await start()
    assert stopped == ["redis"]


async def test_background_tasks_stop_on_their_event_and_failures_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    finished: list[str] = []

    async def polite(stop: asyncio.Event) -> None:
        await stop.wait()
        finished.append("polite")

    async def crashes(stop: asyncio.Event) -> None:
        raise RuntimeError("source config broke")

    with caplog.at_level(logging.ERROR):
        async with serving("test", Readiness({})) as shutdown:
            shutdown.background("scheduler", polite)
            shutdown.background("refresh schedule", crashes)
            await asyncio.sleep(0.05)
    assert finished == ["polite"]
    assert "the refresh schedule stopped: RuntimeError('source config broke')" in caplog.text
