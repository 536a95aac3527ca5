"""The LLM gateway's health (FAKE upstreams): readiness following the probes, the engine-hang
watchdog, and request logs written to PostgreSQL (and serving on when it is unreachable).
"""

from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from sift_archiver.pool import asyncpg_dsn
from tests.support.gateway import (
    StartFake,
    chat,
    chat_profile,
    client,
    eventually,
    logged_rows,
    logging_gateway,
    running_gateway,
    upstreams,
)

pytestmark = pytest.mark.integration


# --- readiness, engine watchdog ----------------------------------------------------------------


async def test_readiness_follows_the_probes(
    tmp_path: Path, fakes: StartFake, caplog: pytest.LogCaptureFixture
) -> None:
    fake = await fakes()
    async with (
        running_gateway(
            tmp_path,
            {"main": chat_profile(fake.url)},
            {"chat": "main"},
            gateway_probe_interval_s=0.2,
        ) as gw,
        client(gw) as http,
    ):
        assert (await http.get("/health/live")).status_code == 200
        ready = await http.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready"
        assert set(ready.json()["checks"]) == {"profile:main"}, "no request log: none reported"
        assert ready.json()["checks"]["profile:main"]["detail"] == "1 of 1 replicas healthy"

        fake.down = True  # the only replica stops serving

        async def not_ready() -> bool:
            return (await http.get("/health/ready")).status_code == 503

        await eventually(not_ready)
        details = (await http.get("/health/ready")).json()
        assert details["status"] == "not_ready"
        assert details["checks"]["profile:main"]["ok"] is False
        error = details["checks"]["profile:main"]["error"]
        assert error.startswith("0 of 1 replicas healthy, none passed a probe recently (ref ")
        assert fake.url not in str(details), "the open answer holds no internals"
        assert "probe:" not in str(details)
        ref = error.rsplit("ref ", 1)[1].rstrip(")")
        [logged] = [r for r in caplog.records if getattr(r, "readiness_ref", None) == ref]
        assert fake.url in logged.getMessage()
        assert "probe:" in logged.getMessage()
        [replica] = (await upstreams(http))["main"]
        assert replica["healthy"] is False
        assert replica["last_error"].startswith("probe:")
        assert (await chat(http)).status_code == 503  # not routed to an unhealthy replica

        fake.down = False

        async def ready_again() -> bool:
            return (await http.get("/health/ready")).status_code == 200

        await eventually(ready_again)
        assert (await chat(http)).status_code == 200


async def test_engine_hang_marks_the_replica_unhealthy(tmp_path: Path, fakes: StartFake) -> None:
    fake = await fakes()
    async with (
        running_gateway(
            tmp_path,
            {"main": chat_profile(fake.url)},
            {"chat": "main"},
            gateway_probe_interval_s=0.1,
        ) as gw,
        client(gw) as http,
    ):
        gw.prober.stall_after_s = 0.5
        assert (await http.get("/health/ready")).status_code == 200
        fake.running_requests, fake.generated_tokens = 3, 1234  # busy, but no token comes out

        async def hung() -> bool:
            [replica] = (await upstreams(http))["main"]
            return replica["healthy"] is False

        await eventually(hung)
        [replica] = (await upstreams(http))["main"]
        assert "engine hung" in replica["last_error"]
        assert (await http.get("/health/ready")).status_code == 503

        fake.generated_tokens += 10  # tokens flow again

        async def recovered() -> bool:
            return (await http.get("/health/ready")).status_code == 200

        await eventually(recovered)


# --- request logs in PostgreSQL ------------------------------------------------------------------


async def test_request_logs_land_in_postgres(
    tmp_path: Path, fakes: StartFake, fresh_database: str
) -> None:
    fake = await fakes()
    async with (
        logging_gateway(tmp_path, fake.url, fresh_database) as gw,
        client(gw) as http,
    ):
        for index in range(4):
            response = await chat(http, headers={"x-request-id": f"log-{index}"})
            assert response.status_code == 200
        assert (
            await chat(http, model="nope", headers={"x-request-id": "log-404"})
        ).status_code == 404
        columns = "request_id, profile, model, upstream, status_code, latency_ms, error"
        rows = await logged_rows(fresh_database, 5, columns)
        by_id = {row["request_id"]: row for row in rows}
        assert set(by_id) == {"log-0", "log-1", "log-2", "log-3", "log-404"}
        assert by_id["log-0"]["status_code"] == 200
        assert by_id["log-0"]["profile"] == "main"
        assert by_id["log-0"]["model"] == "chat"
        assert by_id["log-0"]["upstream"] == fake.url
        assert by_id["log-0"]["latency_ms"] > 0
        assert by_id["log-404"]["status_code"] == 404
        assert "nope" in by_id["log-404"]["error"]
        ready = (await http.get("/health/ready")).json()
        assert ready["checks"]["request_log"]["ok"] is True
        assert ready["checks"]["request_log"]["detail"] == "0 buffered, 0 dropped"


async def test_gateway_serves_when_postgres_is_unreachable(
    tmp_path: Path, fakes: StartFake
) -> None:
    fake = await fakes()
    nowhere = tmp_path / "no-postgres-here"
    nowhere.mkdir()
    async with (
        running_gateway(
            tmp_path,
            {"main": chat_profile(fake.url)},
            {"chat": "main"},
            database_url=f"postgresql://sift@/sift?host={nowhere}",
            gateway_request_log=True,
        ) as gw,
        client(gw) as http,
    ):
        for _ in range(3):
            assert (await chat(http)).status_code == 200

        async def log_reports_failure() -> bool:
            details = (await http.get("/health/ready")).json()
            return details["checks"]["request_log"]["ok"] is False

        await eventually(log_reports_failure, timeout=15)
        ready = await http.get("/health/ready")
        assert ready.status_code == 200  # the request log never blocks serving
        log_status = ready.json()["checks"]["request_log"]
        assert log_status["advisory"] is True
        assert log_status["error"].startswith("writes failing (3 buffered, 0 dropped) (ref ")
        assert str(nowhere) not in str(ready.json()), "the database's address stays in the log"
        assert (await chat(http)).status_code == 200


async def test_gateway_serves_when_the_log_database_is_dropped(
    tmp_path: Path, fakes: StartFake, database_url: str, fresh_database: str
) -> None:
    fake = await fakes()
    async with (
        logging_gateway(tmp_path, fake.url, fresh_database) as gw,
        client(gw) as http,
    ):
        assert (await chat(http)).status_code == 200

        async def written() -> bool:
            return bool(gw.state.request_log and gw.state.request_log.last_write_at)

        await eventually(written, timeout=15)
        admin = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            name = make_url(fresh_database).database
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()
        for _ in range(2):
            assert (await chat(http)).status_code == 200

        async def log_reports_failure() -> bool:
            details = (await http.get("/health/ready")).json()
            return details["checks"]["request_log"]["ok"] is False

        await eventually(log_reports_failure, timeout=15)
        assert (await http.get("/health/ready")).status_code == 200
        assert (await chat(http)).status_code == 200
