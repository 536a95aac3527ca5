"""The collector's and the archiver's doors on the shared API-key check (real RabbitMQ, Redis,
PostgreSQL): no key, a wrong key and a key without the door's scope are refused in the
services' envelope; failed attempts are counted and throttled per address; keys rotate through
the key file while the service runs. The archiver reaches a gateway that requires a key with
its own `SIFT_GATEWAY_API_KEY`.
"""

import contextlib
import hashlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sift_collector.app import Collector
from sift_collector.settings import CollectorSettings
from tests.support.archiver import (
    FakeEmbeddings,
    archiver_settings,
    running_archiver,
    topology,
)
from tests.support.fake_upstream import running_fake
from tests.support.gateway import embed_profile, running_gateway

pytestmark = pytest.mark.integration
__all__ = ["topology"]

PUBLISHER_KEY = "p" * 40
ANALYST_KEY = "q" * 40
ARCHIVER_GATEWAY_KEY = "g" * 40
DOCUMENT = {
    "source": "wire",
    "title": "Harbour",
    "body": "The harbour reopened today.",
    "kind": "news",
}
StartCollector = Callable[..., Awaitable[Collector]]


@pytest.fixture
async def start_collector(
    rabbit_url: str, redis_url: str, namespace: str
) -> AsyncIterator[StartCollector]:
    async with contextlib.AsyncExitStack() as stack:

        async def start(**overrides: Any) -> Collector:
            fields = {
                "rabbit_url": rabbit_url,
                "redis_url": redis_url,
                "namespace": namespace,
                "auth_failures_per_minute": 4,
                **overrides,
            }
            collector = Collector(CollectorSettings(**fields))
            await stack.enter_async_context(collector.lifespan(collector.api))
            return collector

        yield start


def http_for(app: Any, base_url: str = "http://service") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


def failures(metrics_text: str, reason: str) -> float:
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "sift_auth_failures_total" and sample.labels["reason"] == reason:
                return float(sample.value)
    return 0.0


def assert_refused(response: httpx.Response, status: int, kind: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["type"] == kind


async def test_the_collector_door(start_collector: StartCollector) -> None:
    keys = {PUBLISHER_KEY: "wire", ANALYST_KEY: {"name": "analyst", "scopes": ["query"]}}
    collector = await start_collector(collector_api_keys=keys)
    async with http_for(collector.api) as http:

        async def post(key: str | None) -> httpx.Response:
            headers = {"X-API-Key": key} if key is not None else {}
            return await http.post("/v1/documents", json=DOCUMENT, headers=headers)

        missing = await post(None)
        assert_refused(missing, 401, "missing_api_key")
        assert missing.headers["WWW-Authenticate"] == "ApiKey"
        assert_refused(await post("x" * 40), 401, "unknown_api_key")
        assert_refused(await post(ANALYST_KEY), 403, "forbidden")  # a query key cannot ingest
        assert (await post(PUBLISHER_KEY)).status_code == 202
        throttled = await post("y" * 40)  # the fourth failure from this address is still a 401
        assert_refused(throttled, 401, "unknown_api_key")
        throttled = await post(PUBLISHER_KEY)  # no token left: even the right key waits
        assert_refused(throttled, 429, "too_many_failed_attempts")
        assert int(throttled.headers["Retry-After"]) >= 1
        metrics = (await http.get("/metrics")).text
    for reason in ("missing", "unknown", "forbidden", "throttled"):
        assert failures(metrics, reason) == (2 if reason == "unknown" else 1), reason


async def test_collector_keys_rotate_through_the_key_file(
    start_collector: StartCollector, tmp_path: Path
) -> None:
    old, new = "o" * 40, "n" * 40
    path = tmp_path / "collector-keys.json"

    def write(table: dict[str, str], mtime_s: int) -> None:
        path.write_text(json.dumps(table))
        os.utime(path, (mtime_s, mtime_s))

    write({old: "wire"}, 1_000_000)
    collector = await start_collector(collector_api_keys_file=path, auth_failures_per_minute=100)
    async with http_for(collector.api) as http:

        async def status(key: str) -> int:
            response = await http.post("/v1/documents", json=DOCUMENT, headers={"X-API-Key": key})
            return response.status_code

        # The file alone: the development default key is not valid beside it.
        assert (await status(old), await status(new), await status("dev-key")) == (202, 401, 401)
        new_hash = "sha256:" + hashlib.sha256(new.encode()).hexdigest()
        write({old: "wire", new_hash: "wire"}, 2_000_000)
        assert (await status(old), await status(new)) == (202, 202)
        write({new_hash: "wire"}, 3_000_000)
        assert (await status(old), await status(new)) == (401, 202)


async def test_the_archiver_door_and_its_key_for_the_gateway(
    rabbit_url: str, namespace: str, fresh_database: str, tmp_path: Path, topology: Any
) -> None:
    gateway_keys = {ARCHIVER_GATEWAY_KEY: {"name": "archiver", "priority": "interactive"}}
    async with running_fake(FakeEmbeddings()) as fake:
        profiles = {"fake-embed": embed_profile(fake.url, served_model=fake.model)}
        async with running_gateway(
            tmp_path, profiles, {"embed": "fake-embed"}, gateway_api_keys=gateway_keys
        ) as gateway:
            keys = {ANALYST_KEY: "analyst", PUBLISHER_KEY: {"name": "wire", "scopes": ["ingest"]}}
            settings = archiver_settings(
                rabbit_url, namespace, fresh_database, gateway.url,
                archiver_api_keys=keys, gateway_api_key=ARCHIVER_GATEWAY_KEY,
                archiver_refresh_every_s=0,
            )  # fmt: skip
            async with (
                running_archiver(settings) as running,
                httpx.AsyncClient(base_url=running.url, timeout=60) as http,
            ):

                async def search(headers: dict[str, str]) -> httpx.Response:
                    return await http.get("/v1/search", params={"q": "harbour"}, headers=headers)

                assert_refused(await search({}), 401, "missing_api_key")
                assert_refused(await search({"X-API-Key": "x" * 40}), 401, "unknown_api_key")
                assert_refused(await search({"X-API-Key": PUBLISHER_KEY}), 403, "forbidden")
                found = await search({"X-API-Key": ANALYST_KEY})
                assert found.status_code == 200, found.text  # embedded through the gateway
                assert (await http.get("/health/live")).status_code == 200
                metrics = (await http.get("/metrics")).text
    assert failures(metrics, "forbidden") == 1
    assert any("harbour" in json.dumps(r["body"]) for r in fake.requests)
