"""Feeding a subset and waiting on the store, shared by the chaos and SIGTERM tests."""

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from scripts.demo import feeding, report
from scripts.demo.pipeline import Pipeline
from sift_common.messaging.topology import ANALYZER_DOCUMENTS, COLLECTOR_INTAKE, Topology
from tests.e2e.conftest import store_counts

RABBIT_URL = "amqp://guest:guest@127.0.0.1:5672/"
WAIT_S = 600.0


async def feed(stack: Pipeline, namespace: str, api: dict[str, Any], amqp: dict[str, Any]) -> None:
    fed = feeding.Fed()
    collector = stack.services["collector"].url
    await asyncio.to_thread(feeding.submit_api, collector, api, fed)
    await feeding.publish_amqp(RABBIT_URL, Topology(namespace).exchange, amqp, fed)
    assert len(fed.refused) == len(api["malformed"])


async def wait_for(
    database_url: str, done: Callable[[dict[str, int]], bool], wait_s: float = WAIT_S
) -> dict[str, int]:
    """Poll the store until `done(counts)`; the last counts either way (the caller asserts)."""
    deadline = time.monotonic() + wait_s
    while True:
        counts = await store_counts(database_url)
        if done(counts) or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(1)


async def queues(stack: Pipeline) -> dict[str, Any]:
    answer = await asyncio.to_thread(
        httpx.get,
        f"{stack.services['archiver'].url}/v1/status",
        headers={"X-API-Key": "dev-key"},
        timeout=30,
    )
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()["queues"]
    return result


async def analysis_dead_letters(namespace: str) -> int:
    topology = Topology(namespace)
    return len(
        await report.dead_letters(RABBIT_URL, topology.dead_letter_queue(ANALYZER_DOCUMENTS))
    )


async def assert_exactly_once(
    stack: Pipeline, database_url: str, namespace: str, expected: int
) -> None:
    """Each unique document stored once with analysis and embedding, or dead-lettered with a
    reason by the analyzer (the weak CPU model), never both, never twice."""

    def settled(counts: dict[str, int]) -> bool:
        return counts["embedded_documents"] + counts["dead"] >= expected

    async def counts_with_dead() -> dict[str, int]:
        return {**await store_counts(database_url), "dead": await analysis_dead_letters(namespace)}

    deadline = asyncio.get_running_loop().time() + WAIT_S
    counts = await counts_with_dead()
    while not settled(counts) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(1)
        counts = await counts_with_dead()
    await asyncio.sleep(5)  # a doubled effect arriving late would show in the recount
    counts = await counts_with_dead()
    stored = expected - counts.pop("dead")
    assert counts == {
        "documents": stored,
        "distinct_content": stored,
        "analyses": stored,
        "analysed_documents": stored,
        "embedded_documents": stored,
    }
    depths = await queues(stack)
    work = {name: q["messages"] for name, q in depths.items() if name != "analyzer.entity-refresh"}
    assert set(work.values()) <= {0, None}, depths
    intake = Topology(namespace).dead_letter_queue(COLLECTOR_INTAKE)
    dlq = await report.dead_letters(RABBIT_URL, intake)
    assert len(dlq) == 4  # the two malformed documents and the two malformed raw messages
    assert all(item["reason"] != "(no reason header)" for item in dlq)
    assert depths["archiver.documents"]["dlq"] == 0, depths
