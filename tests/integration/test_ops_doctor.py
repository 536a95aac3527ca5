"""`sift doctor` as an operator runs it (its own process, `--json`), against a healthy set-up and
then with one thing broken at a time.

Real: RabbitMQ with Sift's whole topology declared in a private namespace, the consumer that
dead-letters, the LLM gateway (in-process) with its request log's database (a fresh migrated
PostgreSQL holding rows the test writes). FAKES: the vLLM engine behind the gateway (an
upstream that fails on cue, tests/support/fake_upstream.py) and the collector's, analyzer's
and archiver's `/health/ready` (`FakeReadiness`: starting those services is heavy, and a 503
with a named failing check is what is needed on cue).
"""

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from sift_common.errors import InvalidMessageError
from sift_common.messaging.broker import declare_topology, make_broker, publish_event
from sift_common.messaging.topology import ANALYZER_DOCUMENTS, Topology
from sift_common.ops.doctor_model import DoctorReport, Finding
from sift_common.service.readiness import CheckResult, ReadinessReport
from sift_common.store.migrate import upgrade
from sift_common.store.models import RequestLog
from tests.conftest import ROOT
from tests.support.fake_upstream import Behaviour, FakeUpstream, running_fake
from tests.support.gateway import (
    RunningGateway,
    chat,
    chat_profile,
    client,
    eventually,
    free_port,
    running_gateway,
)
from tests.support.private_services import PrivateRabbit
from tests.support.rabbit import ready_count, running_consumer, sample_event, wait_until_ready
from tests.support.served import served

pytestmark = pytest.mark.integration

SIFT = Path(sys.executable).with_name("sift")  # the installed console script
PROFILE = "main"


@dataclass
class FakeReadiness:
    """FAKE `/health/ready` of a service not started here: answers `report` (503 unless ready)."""

    report: ReadinessReport = field(
        default_factory=lambda: ReadinessReport(
            status="ready", checks={"rabbit": CheckResult(ok=True)}
        )
    )
    url: str = ""

    async def ready(self, request: web.Request) -> web.Response:
        status = 200 if self.report.ready else 503
        return web.json_response(self.report.model_dump(), status=status)


@dataclass
class Stack:
    topology: Topology
    rabbit_url: str
    database_url: str
    engine: FakeUpstream
    engine_server: AsyncExitStack  # closing it stops the engine: connections refused
    gateway: RunningGateway
    services: dict[str, FakeReadiness]
    profiles: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            "SIFT_RABBIT_URL": self.rabbit_url,
            "SIFT_NAMESPACE": self.topology.namespace,
            "SIFT_DATABASE_URL": self.database_url,
            "SIFT_GATEWAY_URL": self.gateway.url,
            "SIFT_GATEWAY_PROFILES": str(self.profiles),
            **{f"SIFT_{name.upper()}_URL": fake.url for name, fake in self.services.items()},
        }


async def serve_readiness(stack: AsyncExitStack, fake: FakeReadiness) -> FakeReadiness:
    app = web.Application()
    app.router.add_get("/health/ready", fake.ready)
    fake.url = await stack.enter_async_context(served(app))
    return fake


@pytest.fixture
async def stack(
    tmp_path: Path, rabbit_url: str, namespace: str, fresh_database: str
) -> AsyncIterator[Stack]:
    """The healthy set-up: every queue declared and empty, a ready gateway on a FAKE engine
    (its breaker opens after 2 failures and stays open a minute), an empty request log."""
    topology = Topology(namespace)
    await declare_topology(rabbit_url, topology)
    await upgrade(fresh_database)
    async with AsyncExitStack() as exits:
        engine_server = await exits.enter_async_context(AsyncExitStack())
        engine = await engine_server.enter_async_context(running_fake(FakeUpstream()))
        profile = chat_profile(engine.url, breaker={"failure_threshold": 2, "open_for_s": 60.0})
        gateway = await exits.enter_async_context(
            running_gateway(tmp_path, {PROFILE: profile}, {"chat": PROFILE},
                            gateway_probe_interval_s=0.2)
        )  # fmt: skip
        async with client(gateway) as http:
            await eventually(lambda: _ready(http))
        services = {
            name: await serve_readiness(exits, FakeReadiness())
            for name in ("collector", "analyzer", "archiver")
        }
        yield Stack(topology, rabbit_url, fresh_database, engine, engine_server, gateway, services,
                    tmp_path / "profiles.yaml")  # fmt: skip


async def _ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/health/ready")).status_code == 200


async def doctor(env: dict[str, str]) -> tuple[int, DoctorReport]:
    """`sift doctor --json` in a process of its own, while this loop serves the gateway."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SIFT_")}
    process = await asyncio.create_subprocess_exec(
        str(SIFT), "doctor", "--json", cwd=ROOT, env={**clean, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    assert out, err.decode()
    return process.returncode, DoctorReport.model_validate_json(out)


def failing(report: DoctorReport) -> list[Finding]:
    return [finding for finding in report.findings if finding.status == "fail"]


def only_failure(report: DoctorReport) -> Finding:
    failures = failing(report)
    assert len(failures) == 1, failures
    assert failures[0].fix, failures[0]
    return failures[0]


async def test_a_healthy_set_up_is_all_ok_and_exits_0(stack: Stack) -> None:
    code, report = await doctor(stack.env)
    assert code == 0, failing(report)
    assert report.exit_code == 0
    not_ok = [f for f in report.findings if f.status != "ok" and f.area != "host"]
    assert not_ok == []
    assert all(f.status != "fail" for f in report.findings if f.area == "host")
    names = {(f.area, f.name) for f in report.findings}
    assert {("services", s) for s in ("collector", "analyzer", "archiver", "gateway")} <= names
    assert ("queues", stack.topology.work_queue(ANALYZER_DOCUMENTS)) in names
    assert ("queues", stack.topology.dead_letter_queue(ANALYZER_DOCUMENTS)) in names
    assert ("engines", f"{PROFILE} {stack.engine.url}") in names
    disk = next(f for f in report.findings if f.name == "disk")
    assert "the database's data directory" in disk.what


async def test_a_queue_with_messages_and_no_consumer_fails(stack: Stack) -> None:
    broker = make_broker(stack.rabbit_url)
    await broker.connect()
    await publish_event(broker, stack.topology, sample_event())
    await broker.stop()
    work = stack.topology.work_queue(ANALYZER_DOCUMENTS)
    await wait_until_ready(stack.rabbit_url, work, 1)

    code, report = await doctor(stack.env)
    assert code == 1
    finding = only_failure(report)
    assert finding.name == work
    assert "1 ready, 0 consumer(s)" in finding.what
    assert "docker compose up -d analyzer" in (finding.fix or "")


async def test_a_fresh_dead_letter_is_a_growing_dlq_named_with_its_reason(stack: Stack) -> None:
    async def refuse(_: object) -> None:
        raise InvalidMessageError("unsupported language: fr")

    dlq = stack.topology.dead_letter_queue(ANALYZER_DOCUMENTS)
    async with running_consumer(stack.rabbit_url, stack.topology, ANALYZER_DOCUMENTS, refuse) as b:
        await publish_event(b, stack.topology, sample_event())
        await wait_until_ready(stack.rabbit_url, dlq, 1)

    code, report = await doctor(stack.env)
    assert code == 1
    finding = only_failure(report)
    assert finding.name == dlq
    assert "growing" in finding.what
    assert "unsupported language: fr (1)" in finding.what
    assert "sift dlq list --queue analyzer.documents" in (finding.fix or "")
    await eventually(lambda: _still_there(stack.rabbit_url, dlq), timeout=10)


async def _still_there(rabbit_url: str, dlq: str) -> bool:
    return await ready_count(rabbit_url, dlq) == 1  # the doctor read it and put it back


async def test_a_service_answering_503_fails_naming_its_failing_check(stack: Stack) -> None:
    stack.services["analyzer"].report = ReadinessReport(
        status="not_ready",
        checks={
            "rabbit": CheckResult(ok=True),
            "redis": CheckResult(ok=False, error="no answer within 2 s"),
        },
    )
    code, report = await doctor(stack.env)
    assert code == 1
    finding = only_failure(report)
    assert (finding.area, finding.name) == ("services", "analyzer")
    assert "HTTP 503" in finding.what
    assert "redis: no answer within 2 s" in finding.what
    assert "docker compose logs --tail 100 analyzer" in (finding.fix or "")


async def test_an_open_breaker_fails_naming_the_engine(stack: Stack) -> None:
    stack.engine.default = Behaviour(status=500)  # real requests fail; the probes still pass
    async with client(stack.gateway) as http:
        assert (await chat(http)).status_code >= 500

    code, report = await doctor(stack.env)
    assert code == 1
    finding = only_failure(report)
    assert (finding.area, finding.name) == ("breakers", stack.engine.url)
    assert "breaker open" in finding.what
    assert "/admin/upstreams" in (finding.fix or "")


async def test_a_stopped_engine_fails_naming_its_url(stack: Stack) -> None:
    await stack.engine_server.aclose()  # the chat server stops: its port refuses connections
    runtime = stack.gateway.runtime(PROFILE)
    await eventually(lambda: not runtime.replicas[0].healthy)

    code, report = await doctor(stack.env)
    assert code == 1
    by_name = {(f.area, f.name): f for f in failing(report)}
    engine = by_name[("engines", f"{PROFILE} {stack.engine.url}")]
    assert f"cannot read {stack.engine.url}/metrics (ConnectError" in engine.what
    assert f"curl -sf {stack.engine.url}/health" in (engine.fix or "")
    gateway = by_name[("services", "gateway")]  # no replica passes a probe: not ready
    assert f"profile:{PROFILE}" in gateway.what


async def test_ten_percent_errors_in_the_last_hour_fail_the_profile(stack: Stack) -> None:
    await write_request_logs(stack.database_url, ok=18, errors=2)
    code, report = await doctor(stack.env)
    assert code == 1
    finding = only_failure(report)
    assert (finding.area, finding.name) == ("requests", PROFILE)
    assert "20 requests in the last 1h, 2 errors (10.0%)" in finding.what
    assert "sift report --since 1h" in (finding.fix or "")


async def test_four_percent_errors_pass_with_the_latency_percentiles(stack: Stack) -> None:
    await write_request_logs(stack.database_url, ok=24, errors=1)
    code, report = await doctor(stack.env)
    assert code == 0, failing(report)
    finding = next(f for f in report.findings if f.area == "requests")
    assert "1 errors (4.0%)" in finding.what
    assert "p50 130 ms, p95 " in finding.what  # latencies 10, 20, ... 250 ms: the median 130


async def test_an_unreachable_broker_fails_naming_its_variable(stack: Stack) -> None:
    env = {**stack.env, "SIFT_RABBIT_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/"}
    code, report = await doctor(env)
    assert code == 1
    finding = only_failure(report)
    assert (finding.area, finding.name) == ("queues", "broker")
    assert "SIFT_RABBIT_URL" in finding.what
    assert "guest" not in finding.what  # no credentials in the output


async def test_rabbitmq_app_stopped_fails_naming_the_broker_and_its_fix(
    stack: Stack, tmp_path: Path
) -> None:
    """On a private broker node (the shared one is never stopped): healthy, then `stop_app`."""
    try:
        rabbit = PrivateRabbit(tmp_path / "rabbit")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    await asyncio.to_thread(rabbit.start)
    try:
        await declare_topology(rabbit.url, stack.topology)
        env = {**stack.env, "SIFT_RABBIT_URL": rabbit.url}
        code, report = await doctor(env)
        assert code == 0, failing(report)
        stopped = await asyncio.to_thread(rabbit.ctl, "stop_app", timeout_s=120)
        assert stopped.returncode == 0, stopped.stderr

        code, report = await doctor(env)
    finally:
        await asyncio.to_thread(rabbit.stop)
    assert code == 1
    finding = only_failure(report)
    assert (finding.area, finding.name) == ("queues", "broker")
    assert f"127.0.0.1:{rabbit.port}" in finding.what
    assert "SIFT_RABBIT_URL" in finding.what
    assert "rabbitmq-diagnostics -q status" in (finding.fix or "")


async def write_request_logs(database_url: str, *, ok: int, errors: int) -> None:
    """Rows for the last hour: `ok` 200s and `errors` 503s, latencies 10, 20, 30, ... ms."""
    now = datetime.now(UTC)
    statuses = [200] * ok + [503] * errors
    rows = [
        RequestLog(request_id=f"r{n}", profile=PROFILE, model="fake-chat", upstream=None,
                   status_code=status, prompt_tokens=3, completion_tokens=5,
                   latency_ms=10.0 * (n + 1), ttft_ms=None,
                   error=None if status == 200 else "upstream 503", created_at=now)
        for n, status in enumerate(statuses)
    ]  # fmt: skip
    engine = create_async_engine(database_url)
    try:
        async with AsyncSession(engine) as session:
            session.add_all(rows)
            await session.commit()
    finally:
        await engine.dispose()
