"""The real `sift-collector` process against the real RabbitMQ and Redis: schemathesis on its
OpenAPI (no 5xx, every answer documented) and a graceful SIGTERM."""

import asyncio
import os
import signal
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from redis.asyncio import Redis
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from scripts.processes import Child, free_port
from sift_common.messaging.topology import Topology
from tests.support.fuzzing import CHECKS, LENIENT_CHECKS
from tests.support.rabbit import delete_topology

pytestmark = pytest.mark.integration

KEY = "schemathesis-key"
COLLECTOR = Path(sys.executable).parent / "sift-collector"


@asynccontextmanager
async def collector_process(
    rabbit_url: str, redis_url: str, log: Path, **env: str
) -> AsyncIterator[tuple[Child, str]]:
    """Run `sift-collector` on a free port in a fresh namespace until it is ready."""
    namespace, port = f"t{uuid.uuid4().hex[:10]}.", free_port()
    environ = {
        **os.environ,
        "SIFT_RABBIT_URL": rabbit_url,
        "SIFT_REDIS_URL": redis_url,
        "SIFT_NAMESPACE": namespace,
        "SIFT_COLLECTOR_PORT": str(port),
        "SIFT_COLLECTOR_API_KEYS": f'{{"{KEY}": "schemathesis"}}',
        "SIFT_COLLECTOR_RATE_LIMIT": "100000/minute",
        # The `ignored_auth` check sends wrong keys on purpose: do not throttle this address.
        "SIFT_AUTH_FAILURES_PER_MINUTE": "100000",
        "SIFT_COLLECTOR_MAX_REQUEST_BYTES": str(256 * 1024),
        **env,
    }
    base_url = f"http://127.0.0.1:{port}"
    collector = Child("sift-collector", [str(COLLECTOR)], log, environ).start()
    try:
        await asyncio.to_thread(collector.wait_ready, f"{base_url}/health/ready", 60)
        yield collector, base_url
    finally:
        collector.stop(signal.SIGINT)  # SIGINT: stop at once, no drain grace
        await delete_topology(rabbit_url, Topology(namespace))
        redis = Redis.from_url(redis_url)
        keys = [key async for key in redis.scan_iter(f"{namespace}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


@pytest.fixture(scope="module")
async def live_collector(
    rabbit_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    log = tmp_path_factory.mktemp("collector") / "collector.log"
    async with collector_process(rabbit_url, redis_url, log) as (_, base_url):
        yield base_url


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_answers_only_documented_statuses_and_never_5xx(
    live_collector: str, mode: GenerationMode
) -> None:
    # Hypothesis driven directly: schemathesis' pytest fixture loader needs pytest < 9.
    schema = schemathesis.openapi.from_url(f"{live_collector}/openapi.json")
    seen: Counter[tuple[str, int]] = Counter()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        if mode.is_negative and not len(operation.body) and not len(operation.headers):
            continue  # nothing to make invalid: the health endpoints take no input

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=60,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def conforms(case: schemathesis.Case[Any]) -> None:
            headers = {"X-API-Key": KEY}
            response = case.call(headers=headers, timeout=30)
            # A body over the size limit is refused (413) before its schema is read: a
            # rejection too, though schemathesis' negative check does not list 413.
            checks = LENIENT_CHECKS if response.status_code == 413 else CHECKS
            transport = {"headers": headers, "timeout": 30}
            case.validate_response(response, checks, headers=headers, transport_kwargs=transport)
            seen[(case.operation.label, response.status_code)] += 1

        conforms()
    print(dict(seen))
    # The run exercised the ingest route for real: accepted documents, or refused bodies
    # (which refusal the random invalid inputs hit varies from run to run).
    ingest = "POST /v1/documents"
    expected = (202,) if mode.is_positive else (400, 413, 415, 422)
    assert sum(seen[(ingest, status)] for status in expected) > 0, seen


async def test_sigterm_turns_readiness_off_then_exits_cleanly(
    rabbit_url: str, redis_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "collector.log"
    async with collector_process(rabbit_url, redis_url, log) as (collector, base_url):
        collector.signal(signal.SIGTERM)
        async with httpx.AsyncClient(base_url=base_url) as client:
            draining = await client.get("/health/ready")
            live = await client.get("/health/live")
        assert draining.status_code == 503
        assert draining.json() == {"status": "draining", "checks": {}}
        assert live.status_code == 200  # still serving during the grace period
        assert live.json() == {"status": "live"}
        returncode = await asyncio.to_thread(collector.wait, 60)
    assert returncode == 0, log.read_text()[-3000:]
    assert "collector stopped" in log.read_text()
