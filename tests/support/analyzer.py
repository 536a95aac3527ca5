"""Helpers for the analyzer's integration tests: the analyzer in-process or as real
`sift-analyzer` processes, a gateway on a chosen port (to stop and restart it), the downstream
queues read back, and LLM calls counted at the gateway."""

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from scripts.processes import Child
from sift_analyzer.app import Analyzer
from sift_analyzer.settings import AnalyzerSettings
from sift_common.contracts import DocumentAnalyzed, EntityDigested
from sift_common.messaging.topology import ARCHIVER_DIGESTS, ARCHIVER_DOCUMENTS, Topology
from sift_gateway.app import build_app
from sift_gateway.settings import GatewayServiceSettings
from tests.conftest import ROOT
from tests.support.gateway import write_profiles
from tests.support.rabbit import drain

# Short ladders and leases keep the fault tests quick; max_retries covers a slow LLM call.
TEST_SETTINGS: dict[str, Any] = {
    "analyzer_retry_delays_ms": "500,1000,2000",
    "analyzer_max_retries": 20,
    "analyzer_lock_lease_ms": 3000,
    "analyzer_lock_wait_s": 0.5,
    "analyzer_prefetch": 8,
}


def analyzer_settings(**values: Any) -> AnalyzerSettings:
    return AnalyzerSettings(**{**TEST_SETTINGS, **values})


@asynccontextmanager
async def running_analyzer(settings: AnalyzerSettings) -> AsyncIterator[Analyzer]:
    """The analyzer's consumers in this process (no HTTP listener)."""
    analyzer = Analyzer(settings)
    async with analyzer.lifespan(analyzer.api):
        yield analyzer


def analyzer_env(port: int, **values: Any) -> dict[str, str]:
    merged = {**TEST_SETTINGS, "analyzer_host": "127.0.0.1", "analyzer_port": port, **values}
    return {**os.environ, **{f"SIFT_{key.upper()}": str(value) for key, value in merged.items()}}


def analyzer_process(env: dict[str, str], log: Path) -> Child:
    """A real `sift-analyzer` process (the console script's module), logging to `log`."""
    return Child("sift-analyzer", [sys.executable, "-m", "sift_analyzer.app"], log, env, ROOT)


async def wait_ready(analyzer: Child, port: int, timeout_s: float = 60.0) -> None:
    url = f"http://127.0.0.1:{port}/health/ready"
    await asyncio.to_thread(analyzer.wait_ready, url, timeout_s)


@asynccontextmanager
async def gateway_on_port(
    directory: Path, profiles: dict[str, Any], aliases: dict[str, str], port: int
) -> AsyncIterator[str]:
    """The real gateway app on 127.0.0.1:`port`, so a test can stop and restart it there."""
    path = write_profiles(directory / "profiles.yaml", profiles, aliases)
    settings = GatewayServiceSettings(gateway_profiles=path, gateway_request_log=False)
    runner = web.AppRunner(build_app(settings), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def chat_requests(gateway_url: str) -> float:
    """Chat completions the gateway answered (any status), from its /metrics."""
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"{gateway_url}/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "sift_gateway_requests_total"
        and "chat" in sample.labels.get("endpoint", "")
    )


async def analyzed(rabbit_url: str, topology: Topology) -> list[DocumentAnalyzed]:
    """Every document.analyzed waiting for the archiver (taken off its queue)."""
    taken = await drain(rabbit_url, topology.work_queue(ARCHIVER_DOCUMENTS))
    return [DocumentAnalyzed.model_validate_json(message.body) for message in taken]


async def digested(rabbit_url: str, topology: Topology) -> list[EntityDigested]:
    taken = await drain(rabbit_url, topology.work_queue(ARCHIVER_DIGESTS))
    return [EntityDigested.model_validate_json(message.body) for message in taken]


async def scraped(url: str, name: str, **labels: str) -> float:
    """The sum of `name`'s samples at `url`/metrics whose labels include `labels`."""
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"{url}/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )
