"""The demo run: prerequisites, the store, vLLM, the four services, the feeding, the wait."""

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from scripts.demo.pipeline import Pipeline
from scripts.local_vllm.servers import servers as vllm_servers
from scripts.processes import LOCALHOST, reachable
from sift_analyzer.settings import AnalyzerSettings
from sift_analyzer.topology import analyzer_topology
from sift_common.messaging.topology import Topology
from sift_common.store.embedded import (
    DEFAULT_DATA_DIR,
    start_embedded_postgres,
    stop_embedded_postgres,
)

ROOT = Path(__file__).resolve().parents[2]
RABBIT_URL = "amqp://guest:guest@127.0.0.1:5672/"
LOCAL_VLLM = (sys.executable, "-m", "scripts.local_vllm")
# Where a document can end short of the store: the analysis and archiving work queues' DLQs.
ANALYSIS_QUEUES = ("analyzer.documents", "archiver.documents")
# Short retries, and enough of them that a busy moment of the CPU model (the gateway's queue
# timing out) never dead-letters: the demo shows a failure's outcome without five-minute waits.
DEMO_RETRIES = {
    "SIFT_ANALYZER_RETRY_DELAYS_MS": "1000,3000,10000",
    "SIFT_ANALYZER_MAX_RETRIES": "12",
}
HOW_TO_START = {
    "RabbitMQ (127.0.0.1:5672)": (
        "sudo apt-get install -y rabbitmq-server && sudo service rabbitmq-server start"
    ),
    "Redis (127.0.0.1:6379)": (
        "sudo apt-get install -y redis-server && sudo service redis-server start"
    ),
}


@dataclass
class Stack:
    pipeline: Pipeline
    database_url: str
    namespace: str
    started_postgres: bool
    started_vllm: list[str]


def check_brokers() -> None:
    missing = [
        name
        for name, (host, port) in {
            "RabbitMQ (127.0.0.1:5672)": ("127.0.0.1", 5672),
            "Redis (127.0.0.1:6379)": ("127.0.0.1", 6379),
        }.items()
        if not reachable(host, port)
    ]
    if missing:
        for name in missing:
            print(
                f"{name} is not reachable. Start it with:\n    {HOW_TO_START[name]}",
                file=sys.stderr,
            )
        raise SystemExit(2)


async def _create_database(admin_url: str, name: str) -> str:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def start_store(say: Any) -> tuple[str, bool]:
    """The embedded PostgreSQL (reused when running) and a fresh database for this run."""
    was_running = (DEFAULT_DATA_DIR / "postmaster.pid").exists()
    say("starting the embedded PostgreSQL + pgvector")
    admin = start_embedded_postgres(DEFAULT_DATA_DIR)
    url = asyncio.run(_create_database(admin, f"sift_demo_{time.strftime('%Y%m%d%H%M%S')}"))
    subprocess.run(
        ["sift-db", "upgrade"],  # noqa: S607 - the workspace venv's entry point
        env={**_env(), "SIFT_DATABASE_URL": url},
        check=True,
        capture_output=True,
    )
    return url, not was_running


def stop_store() -> None:
    stop_embedded_postgres(DEFAULT_DATA_DIR)


def start_vllm(say: Any) -> list[str]:
    """`scripts.local_vllm start` reuses running servers; the names of those it had to start."""
    ports = {name: server.port for name, server in vllm_servers().items()}
    missing = [name for name, port in ports.items() if not reachable(LOCALHOST, port)]
    say(
        "vLLM-CPU servers: "
        + (f"starting {', '.join(missing)} (first run prepares models)" if missing else "reusing")
    )
    subprocess.run([*LOCAL_VLLM, "start"], cwd=ROOT, check=True)  # noqa: S603
    return missing


def stop_vllm(names: list[str]) -> None:
    if names:
        subprocess.run([*LOCAL_VLLM, "stop", *names], cwd=ROOT, check=False)  # noqa: S603


def _env() -> dict[str, str]:
    return dict(os.environ)


def start_services(stack: Stack, sources: Path, say: Any) -> None:
    pipeline = stack.pipeline
    gateway = pipeline.add("gateway", {"SIFT_GATEWAY_SHUTDOWN_TIMEOUT_S": "10"})
    common = {"SIFT_GATEWAY_URL": gateway.url}
    pipeline.add("collector", {"SIFT_COLLECTOR_SOURCES": str(sources)})
    pipeline.add("analyzer", {**common, **DEMO_RETRIES})
    pipeline.add("archiver", common)
    for name in ("gateway", "archiver", "analyzer", "collector"):
        say(f"starting sift-{name} on :{pipeline.services[name].port}")
        pipeline.start(name)
        pipeline.wait_ready(name)


def status(archiver_url: str, patience_s: float = 90.0) -> dict[str, Any]:
    """The archiver's `/v1/status`, waiting out a busy moment (a 503 or a slow answer while
    both cores run the model) instead of ending the demo on one missed poll."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            answer = httpx.get(
                f"{archiver_url}/v1/status", headers={"X-API-Key": "dev-key"}, timeout=30
            )
            if answer.status_code < 500:
                answer.raise_for_status()
                result: dict[str, Any] = answer.json()
                return result
            problem = f"{answer.status_code} {answer.text[:300]}"
        except httpx.TransportError as error:
            problem = repr(error)
        if time.monotonic() > deadline:
            raise RuntimeError(f"archiver status unavailable for {patience_s:.0f} s: {problem}")
        print(f"    archiver status not available yet ({problem}); retrying", file=sys.stderr)
        time.sleep(3)


def settled(queues: dict[str, Any], store: dict[str, Any], expected: int) -> bool:
    """Every expected document is archived or dead-lettered, and no work queue holds more."""
    dead = sum(queues[name]["dlq"] or 0 for name in ANALYSIS_QUEUES)
    waiting = sum(queues[name]["messages"] or 0 for name in ANALYSIS_QUEUES)
    done = min(store["documents"], store["analyses"]) + dead
    return done >= expected and waiting == 0


def wait_archived(stack: Stack, expected: int, published: Any, timeout_s: float) -> dict[str, Any]:
    """Progress bars until every expected document is stored with analysis and embedding."""
    archiver = stack.pipeline.services["archiver"].url
    columns = (
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    deadline = time.monotonic() + timeout_s
    with Progress(*columns, transient=not sys.stdout.isatty()) as progress:
        bars = {
            name: progress.add_task(name, total=expected)
            for name in ("collected", "analysed", "archived")
        }
        while True:
            now = status(archiver)
            store: dict[str, Any] = now["store"]
            seen = {
                "collected": published(),
                "analysed": store["analyses"],
                "archived": min(store["documents"], store["analyses"]),
            }
            for name, value in seen.items():
                progress.update(bars[name], completed=value)
            if settled(now["queues"], store, expected) or time.monotonic() > deadline:
                return store
            time.sleep(2)


def topologies(
    namespace: str, retry_delays_ms: str = DEMO_RETRIES["SIFT_ANALYZER_RETRY_DELAYS_MS"]
) -> tuple[Topology, Topology]:
    """The namespace's queues as every service declares them (the analyzer's own retry ladder)."""
    analyzer = AnalyzerSettings(namespace=namespace, analyzer_retry_delays_ms=retry_delays_ms)
    return Topology(namespace), analyzer_topology(analyzer)[0]


def new_namespace() -> str:
    return f"demo-{uuid.uuid4().hex[:8]}."


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str) + "\n")
