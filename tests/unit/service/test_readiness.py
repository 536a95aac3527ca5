"""`Readiness`: checks run at once, each under its own timeout, reported one by one."""

import asyncio
import logging
import re
import time

import pytest

from sift_common.service.readiness import NotReady, Readiness


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
        "checks": {
            name: {"ok": True, "error": None, "detail": None, "advisory": False}
            for name in ("broker", "redis")
        },
    }


async def test_a_failing_check_is_named_with_its_error() -> None:
    report = await Readiness({"broker": ok, "redis": refused}).report()
    assert report.status == "not_ready"
    assert report.checks["broker"].ok
    redis = report.checks["redis"].model_dump()
    assert re.fullmatch(r"failed \(ref [0-9a-f]{12}\)", redis.pop("error"))
    assert redis == {"ok": False, "detail": None, "advisory": False}


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


async def test_a_timeout_raised_by_the_check_itself_is_a_failure_not_the_probe_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def own_timeout() -> None:
        raise TimeoutError("socket read")

    report = await Readiness({"redis": own_timeout}, timeout_s=5).report()
    assert re.fullmatch(r"failed \(ref [0-9a-f]{12}\)", report.checks["redis"].error or "")
    assert "socket read" in caplog.text


async def test_the_answer_holds_no_exception_text_and_the_log_holds_it_under_a_ref(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def leaks() -> None:
        raise ConnectionError("http://10.0.0.7:8000/v1: connection refused by db.internal")

    caplog.set_level(logging.WARNING, "sift_common.readiness")
    report = await Readiness({"db": leaks}).report()
    error = report.checks["db"].error or ""
    assert "10.0.0.7" not in report.model_dump_json()
    assert "ConnectionError" not in error
    assert "refused" not in error
    ref = re.fullmatch(r"failed \(ref ([0-9a-f]{12})\)", error)
    assert ref is not None
    [record] = [r for r in caplog.records if getattr(r, "readiness_ref", None) == ref[1]]
    assert "http://10.0.0.7:8000/v1: connection refused" in record.getMessage()
    assert record.__dict__["check"] == "db"


async def test_a_not_ready_reason_is_public() -> None:
    async def counted() -> None:
        raise NotReady("0 of 2 replicas healthy")

    report = await Readiness({"profile": counted}).report()
    assert re.fullmatch(
        r"0 of 2 replicas healthy \(ref [0-9a-f]{12}\)", report.checks["profile"].error or ""
    )


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
        raise NotReady("x" * 1000)

    report = await Readiness({"db": verbose}).report()
    assert len(report.checks["db"].error or "") == 300


def test_a_timeout_for_an_unknown_check_is_refused() -> None:
    with pytest.raises(ValueError, match="redis"):
        Readiness({"broker": ok}, timeouts={"redis": 1.0})


async def test_an_advisory_check_is_reported_but_never_makes_it_unready() -> None:
    report = await Readiness({"engine": ok}, advisory={"request_log": refused}).report()
    assert report.ready
    assert report.checks["request_log"].ok is False
    assert report.checks["request_log"].advisory is True
    assert (report.checks["request_log"].error or "").startswith("failed (ref ")

    report = await Readiness({"engine": refused}, advisory={"request_log": ok}).report()
    assert report.status == "not_ready", "an advisory check that passes does not cover for others"


async def test_checks_given_as_a_function_are_read_at_every_report() -> None:
    current = {"a": ok}
    readiness = Readiness(lambda: current)
    assert set((await readiness.report()).checks) == {"a"}
    current = {"b": refused}
    report = await readiness.report()
    assert set(report.checks) == {"b"}
    assert not report.ready


async def test_a_check_that_returns_text_reports_it_as_detail() -> None:
    async def counted() -> str:
        return "3 buffered"

    report = await Readiness({"log": counted}).report()
    assert report.checks["log"].detail == "3 buffered"
