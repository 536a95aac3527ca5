"""`Readiness`: checks run at once, each under its own timeout, reported one by one."""

import asyncio
import time

import pytest

from sift_common.service.readiness import Readiness


async def ok() -> None:
    return None


async def refused() -> None:
    raise ConnectionError("connection refused")


async def hangs() -> None:
    await asyncio.sleep(60)


async def test_ready_when_every_check_passes() -> None:
    report = await Readiness({"broker": ok, "redis": ok}).report()
    assert report.ready
    assert report.model_dump() == {
        "status": "ready",
        "checks": {"broker": {"ok": True, "error": None}, "redis": {"ok": True, "error": None}},
    }


async def test_a_failing_check_is_named_with_its_error() -> None:
    report = await Readiness({"broker": ok, "redis": refused}).report()
    assert report.status == "not_ready"
    assert report.checks["broker"].ok
    assert report.checks["redis"].model_dump() == {
        "ok": False,
        "error": "ConnectionError: connection refused",
    }


async def test_checks_run_concurrently() -> None:
    async def slow() -> None:
        await asyncio.sleep(0.3)

    readiness = Readiness({name: slow for name in ("a", "b", "c", "d")}, timeout_s=5)
    started = time.monotonic()
    report = await readiness.report()
    assert report.ready
    assert time.monotonic() - started < 0.9  # one check's time, not four


async def test_each_check_has_its_own_timeout() -> None:
    async def takes_half_a_second() -> None:
        await asyncio.sleep(0.5)

    readiness = Readiness(
        {"redis": hangs, "gateway": takes_half_a_second, "broker": ok},
        timeout_s=0.2,
        timeouts={"gateway": 2.0},
    )
    started = time.monotonic()
    report = await readiness.report()
    assert time.monotonic() - started < 1.5
    assert report.status == "not_ready"
    assert report.checks["redis"].error == "no answer within 0.2 s"
    assert report.checks["gateway"].ok  # its longer timeout let it finish
    assert report.checks["broker"].ok


async def test_a_timeout_raised_by_the_check_itself_is_reported_as_its_error() -> None:
    async def own_timeout() -> None:
        raise TimeoutError("socket read")

    report = await Readiness({"redis": own_timeout}, timeout_s=5).report()
    assert report.checks["redis"].error == "TimeoutError: socket read"


async def test_draining_is_unready_without_running_the_checks() -> None:
    ran: list[str] = []

    async def counted() -> None:
        ran.append("check")

    readiness = Readiness({"broker": counted})
    readiness.draining = True
    report = await readiness.report()
    assert report.model_dump() == {"status": "draining", "checks": {}}
    assert not report.ready
    assert ran == []


async def test_long_errors_are_cut() -> None:
    async def verbose() -> None:
        raise RuntimeError("x" * 1000)

    report = await Readiness({"db": verbose}).report()
    assert len(report.checks["db"].error or "") == 300


def test_a_timeout_for_an_unknown_check_is_refused() -> None:
    with pytest.raises(ValueError, match="redis"):
        Readiness({"broker": ok}, timeouts={"redis": 1.0})
