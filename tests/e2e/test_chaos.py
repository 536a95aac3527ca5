"""Chaos: kill -9 the analyzer and the archiver mid-run, restart RabbitMQ's application;
every document still ends in the store exactly once."""

import asyncio
import shutil
import subprocess
import time

import pytest

from scripts.demo.pipeline import Pipeline
from tests.e2e.conftest import start_all, subset
from tests.e2e.flow import assert_exactly_once, feed, wait_for

# Restarts and kills under load: run with `make test-e2e`, not in `make test` (see README).
pytestmark = pytest.mark.chaos


def _rabbitmqctl(*args: str, attempts: int = 5) -> None:
    """Run rabbitmqctl; a node still busy stopping answers 69 (unavailable) for a moment."""
    for attempt in range(1, attempts + 1):
        run = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=120)
        if run.returncode == 0:
            return
        if attempt == attempts:
            raise AssertionError(f"rabbitmqctl {' '.join(args)}: {run.stdout}{run.stderr}")
        time.sleep(2)


async def test_kill9_and_broker_restart_lose_and_double_nothing(
    pipeline: Pipeline, fresh_database: str, namespace: str
) -> None:
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed here: the broker restart cannot be driven")
    api, amqp, expected = subset()
    start_all(pipeline)
    await feed(pipeline, namespace, api, amqp)

    await wait_for(fresh_database, lambda c: c["analyses"] >= 5)
    pipeline.kill9("analyzer")
    await asyncio.to_thread(pipeline.restart, "analyzer")

    await wait_for(fresh_database, lambda c: c["documents"] >= 15)
    pipeline.kill9("archiver")
    await asyncio.to_thread(pipeline.restart, "archiver")

    await wait_for(fresh_database, lambda c: c["documents"] >= 30)
    _rabbitmqctl("stop_app")
    _rabbitmqctl("start_app")
    _rabbitmqctl("await_startup")
    for name in ("collector", "analyzer", "archiver"):
        await asyncio.to_thread(pipeline.wait_ready, name)

    await assert_exactly_once(pipeline, fresh_database, namespace, expected)
    assert pipeline.services["analyzer"].starts == 2
    assert pipeline.services["archiver"].starts == 2
