"""SIGTERM to each service mid-run: it drains and exits 0; once restarted, nothing is lost and
nothing is doubled."""

import asyncio
from collections.abc import Callable

import pytest

from scripts.demo.pipeline import Pipeline
from tests.e2e.conftest import start_all, subset
from tests.e2e.flow import assert_exactly_once, feed, wait_for

# Restarts and kills under load: run with `make test-e2e`, not in `make test` (see README).
pytestmark = pytest.mark.chaos


def _at_least(documents: int) -> Callable[[dict[str, int]], bool]:
    return lambda counts: counts["documents"] >= documents


async def test_sigterm_each_service_mid_run(
    pipeline: Pipeline, fresh_database: str, namespace: str
) -> None:
    api, amqp, expected = subset()
    start_all(pipeline)
    await feed(pipeline, namespace, api, amqp)
    thresholds = {"analyzer": 5, "archiver": 15, "gateway": 25, "collector": 35}
    for name, documents in thresholds.items():
        await wait_for(fresh_database, _at_least(documents))
        code = await asyncio.to_thread(pipeline.stop, name)
        assert code == 0, f"{name} exited {code} on SIGTERM"
        await asyncio.to_thread(pipeline.restart, name)
    await assert_exactly_once(pipeline, fresh_database, namespace, expected)
