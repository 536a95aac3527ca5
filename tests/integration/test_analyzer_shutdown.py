"""SIGTERM on a real `sift-analyzer` process: readiness 503 first, the in-flight analysis
finishes and is published, exit 0. The LLM call is held open by a FAKE upstream's delay (the
real model cannot be made slow on cue)."""

import asyncio
import json
import signal
from pathlib import Path

import httpx
import pytest

from scripts.processes import Child, free_port
from sift_analyzer.settings import AnalyzerSettings
from sift_analyzer.topology import analyzer_topology
from sift_common.contracts import Document, DocumentCollected
from sift_common.messaging.broker import declare_topology, make_broker, publish_event
from sift_common.store import migrate
from tests.support.analyzer import analyzed, analyzer_env, analyzer_process, wait_ready
from tests.support.fake_upstream import Behaviour
from tests.support.gateway import StartFake, chat_profile, eventually, running_gateway
from tests.support.rabbit import delete_topology

pytestmark = pytest.mark.integration

VALID_NEWS = json.dumps(
    {"summary": "Acme held its meeting.", "sentiment": "neutral", "effect": "none", "companies": []}
)


async def test_sigterm_turns_readiness_off_finishes_in_flight_and_exits_0(
    rabbit_url: str,
    redis_url: str,
    namespace: str,
    fresh_database: str,
    fakes: StartFake,
    tmp_path: Path,
    children: list[Child],
) -> None:
    await migrate.upgrade(fresh_database)
    fake = await fakes(model="fake-chat", default=Behaviour(delay_s=4.0, content=VALID_NEWS))
    topology = analyzer_topology(AnalyzerSettings(namespace=namespace))[0]
    async with running_gateway(tmp_path, {"fake": chat_profile(fake.url)}, {"chat": "fake"}) as gw:
        port = free_port()
        env = analyzer_env(
            port,
            rabbit_url=rabbit_url,
            redis_url=redis_url,
            database_url=fresh_database,
            gateway_url=gw.url,
            namespace=namespace,
        )
        log = tmp_path / "analyzer.log"
        analyzer = analyzer_process(env, log).start()
        children.append(analyzer)
        await wait_ready(analyzer, port)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            live, ready = await http.get("/health/live"), await http.get("/health/ready")
        assert live.json() == {"status": "live"}
        assert ready.json() == {
            "status": "ready",
            "checks": {
                name: {"ok": True, "error": None, "detail": None, "advisory": False}
                for name in ("broker", "redis", "database", "gateway")
            },
        }
        document = Document.create(source="t", body="Acme held its annual meeting.", kind="news")
        broker = make_broker(rabbit_url)
        await broker.connect()
        await declare_topology(rabbit_url, topology)
        await publish_event(
            broker, topology, DocumentCollected(correlation_id=document.id, document=document)
        )
        await broker.stop()
        await eventually(lambda: len(fake.chat_requests()) >= 1, timeout=30)

        analyzer.signal(signal.SIGTERM)
        async with httpx.AsyncClient(timeout=5) as http:

            async def not_ready() -> bool:
                ready = await http.get(f"http://127.0.0.1:{port}/health/ready")
                if ready.status_code != 503:
                    return False
                assert ready.json() == {"status": "draining", "checks": {}}
                return True

            await eventually(not_ready, timeout=1.5)  # inside the drain grace, still serving
        assert analyzer.alive()  # the in-flight LLM call is still running
        code = await asyncio.to_thread(analyzer.wait, 30)

    assert code == 0, log.read_text()[-3000:]
    results = await analyzed(rabbit_url, topology)
    assert [r.document.id for r in results] == [document.id]
    assert len(fake.chat_requests()) == 1
    await delete_topology(rabbit_url, topology)
