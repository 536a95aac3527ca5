"""The archiver's door on the shared API-key check (real RabbitMQ, PostgreSQL): no key, a
wrong key and a key without the `query` scope are refused in the services' envelope and
counted; `/metrics`, closed as in production, answers only a key with the `metrics` scope
(sent as Bearer, as Prometheus does); the archiver reaches a gateway that requires a key with
its own `SIFT_GATEWAY_API_KEY`. The collector's door: tests/integration/test_collector_api.py.
"""

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.archiver import (
    FakeEmbeddings,
    archiver_settings,
    running_archiver,
    topology,
)
from tests.support.fake_upstream import running_fake
from tests.support.gateway import embed_profile, running_gateway
from tests.support.security import assert_refused, auth_failures

pytestmark = pytest.mark.integration
__all__ = ["topology"]

PUBLISHER_KEY = "p" * 40
ANALYST_KEY = "q" * 40
ARCHIVER_GATEWAY_KEY = "g" * 40
SCRAPER_KEY = "m" * 40


async def test_the_archiver_door_and_its_key_for_the_gateway(
    rabbit_url: str, namespace: str, fresh_database: str, tmp_path: Path, topology: Any
) -> None:
    gateway_keys = {ARCHIVER_GATEWAY_KEY: {"name": "archiver", "priority": "interactive"}}
    async with running_fake(FakeEmbeddings()) as fake:
        profiles = {"fake-embed": embed_profile(fake.url, served_model=fake.model)}
        async with running_gateway(
            tmp_path, profiles, {"embed": "fake-embed"}, gateway_api_keys=gateway_keys
        ) as gateway:
            keys = {
                ANALYST_KEY: "analyst",
                PUBLISHER_KEY: {"name": "wire", "scopes": ["ingest"]},
                SCRAPER_KEY: {"name": "prometheus", "scopes": ["metrics"]},
            }
            settings = archiver_settings(
                rabbit_url, namespace, fresh_database, gateway.url,
                archiver_api_keys=keys, gateway_api_key=ARCHIVER_GATEWAY_KEY,
                archiver_refresh_every_s=0, open_metrics=False,
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
                assert_refused(await http.get("/metrics"), 401, "missing_api_key")
                analyst = {"X-API-Key": ANALYST_KEY}
                assert_refused(await http.get("/metrics", headers=analyst), 403, "forbidden")
                scraper = {"Authorization": f"Bearer {SCRAPER_KEY}"}  # as Prometheus sends it
                metrics = (await http.get("/metrics", headers=scraper)).text
    assert auth_failures(metrics, "forbidden") == 2  # the publisher's search, the analyst's scrape
    assert auth_failures(metrics, "missing") == 2  # a search and a scrape without a key
    assert any("harbour" in json.dumps(r["body"]) for r in fake.requests)
