"""The whole pipeline as processes, started the way `make demo` starts it (scripts/demo)."""

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from scripts.demo.pipeline import Pipeline
from scripts.demo.run import topologies
from sift_collector.normalise import normalise
from sift_common.contracts import IncomingDocument
from sift_common.messaging.teardown import delete_topology
from tests.support.vllm import VllmServers

DATA = Path(__file__).resolve().parents[2] / "data"
RETRY_DELAYS_MS = "500,1000,5000"  # short: the tests wait out a fault, not minutes
SUBSET = 30  # documents per entry point (API and AMQP) in the chaos and SIGTERM runs


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.vllm)


def subset() -> tuple[dict[str, Any], dict[str, Any], int]:
    """A slice of the API and AMQP corpus (with their duplicates and malformed records) and
    how many unique valid documents it holds, counted with the collector's own normalisation."""
    api = json.loads((DATA / "api.json").read_text())
    amqp = json.loads((DATA / "amqp.json").read_text())
    api["documents"] = api["documents"][:SUBSET] + api["documents"][-4:]
    amqp["documents"] = amqp["documents"][:SUBSET] + amqp["documents"][-3:]
    hashes = {
        normalise(IncomingDocument.model_validate({"source": "s", **doc})).content_hash
        for doc in api["documents"] + amqp["documents"]
    }
    return api, amqp, len(hashes)


async def store_counts(database_url: str) -> dict[str, int]:
    """Rows in the store: documents, distinct content, analyses, documents with embeddings."""
    engine = create_async_engine(database_url)
    queries = {
        "documents": "SELECT count(*) FROM documents",
        "distinct_content": "SELECT count(DISTINCT content_hash) FROM documents",
        "analyses": "SELECT count(*) FROM analyses",
        "analysed_documents": "SELECT count(DISTINCT document_id) FROM analyses",
        "embedded_documents": "SELECT count(DISTINCT document_id) FROM embeddings",
    }
    try:
        async with engine.connect() as conn:
            return {k: int((await conn.execute(text(q))).scalar_one()) for k, q in queries.items()}
    finally:
        await engine.dispose()


@pytest.fixture
def pipeline(
    fresh_database: str, namespace: str, rabbit_url: str, vllm_servers: VllmServers, tmp_path: Path
) -> Iterator[Pipeline]:
    """The four services as processes (not yet started) on a fresh database and namespace."""
    env = {
        "SIFT_NAMESPACE": namespace,
        "SIFT_DATABASE_URL": fresh_database,
        "SIFT_VLLM_CHAT_URL": vllm_servers.chat_url,
        "SIFT_VLLM_EMBED_URL": vllm_servers.embed_url,
        "SIFT_ANALYZER_RETRY_DELAYS_MS": RETRY_DELAYS_MS,
        "SIFT_ANALYZER_MAX_RETRIES": "12",
        "SIFT_ANALYZER_LOCK_LEASE_MS": "3000",
        "SIFT_GATEWAY_SHUTDOWN_TIMEOUT_S": "10",
    }
    stack = Pipeline(env, tmp_path / "logs")
    gateway = stack.add("gateway")
    stack.add("collector")
    stack.add("analyzer", {"SIFT_GATEWAY_URL": gateway.url})
    stack.add("archiver", {"SIFT_GATEWAY_URL": gateway.url})
    try:
        yield stack
    finally:
        stack.stop_all()
        asyncio.run(delete_topology(rabbit_url, *topologies(namespace, RETRY_DELAYS_MS)))


def start_all(stack: Pipeline) -> None:
    for name in ("gateway", "archiver", "analyzer", "collector"):
        stack.start(name)
        stack.wait_ready(name)
