"""The real Prometheus (Debian's, from `make ops-tools`) scraping the real archiver with the
job, key file and rules of deploy/prometheus: the Bearer key with the `metrics` scope gets the
queue gauges in, a job without it is down, and the alert rules evaluate on what was scraped
(a declared queue nobody consumes turns SiftQueueWithoutConsumers pending) and none fails to
evaluate."""

import asyncio
import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from sift_common.messaging.topology import ANALYZER_ENTITY_REFRESH, ARCHIVER_DOCUMENTS
from tests.support.archiver import archiver_settings, fake_embedding_gateway, running_archiver
from tests.support.archiver import topology as archiver_queues
from tests.support.gateway import free_port
from tests.support.ops_tools import DEPLOY, ops_tool

pytestmark = pytest.mark.integration
__all__ = ["archiver_queues"]

SCRAPER_KEY = "s" * 40
SECRET = "/run/secrets/prometheus_key"


def _config(tmp_path: Path, archiver: str) -> Path:
    """deploy/prometheus's archiver job and rules, aimed at the test's archiver, scraping every
    second; plus the same job without its key, every 10 s."""
    key = tmp_path / "prometheus_key"
    key.write_text(SCRAPER_KEY)
    shipped = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    [job] = [job for job in shipped["scrape_configs"] if job["job_name"] == "archiver"]
    assert job["authorization"] == {"credentials_file": SECRET}
    job = {**job, "authorization": {"credentials_file": str(key)}}
    job["static_configs"] = [{"targets": [archiver]}]
    # Every 10 s: its refusals spend the address's failed-attempt budget (10 a minute, both
    # jobs scrape from 127.0.0.1), and at 1 s it locked the keyed job out ("throttled").
    keyless = {
        "job_name": "archiver-keyless",
        "scrape_interval": "10s",
        "static_configs": job["static_configs"],
    }
    (tmp_path / "alerts.yml").write_text((DEPLOY / "prometheus" / "alerts.yml").read_text())
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": shipped["rule_files"],
        "scrape_configs": [job, keyless],
    }
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def running_prometheus(config: Path, port: int) -> Iterator[str]:
    command = [
        ops_tool("prometheus"), f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
        f"--storage.tsdb.path={config.parent / 'data'}",
    ]  # fmt: skip
    log = (config.parent / "prometheus.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=5) as response:
            result: list[dict[str, Any]] = json.load(response)["data"]["result"]
            return result
    except OSError:  # not listening yet
        return []


async def _until(url: str, expr: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while not (found := await asyncio.to_thread(_query, url, expr)):
        assert time.monotonic() < deadline, f"Prometheus never answered {expr}"
        await asyncio.sleep(0.5)
    return found


async def test_prometheus_scrapes_the_archiver_with_its_key_and_evaluates_the_rules(
    rabbit_url: str, namespace: str, fresh_database: str, tmp_path: Path, archiver_queues: Any
) -> None:
    keys = {"q" * 40: "analyst", SCRAPER_KEY: {"name": "prometheus", "scopes": ["metrics"]}}
    async with fake_embedding_gateway(tmp_path) as gateway:
        settings = archiver_settings(
            rabbit_url, namespace, fresh_database, gateway.url,
            archiver_api_keys=keys, archiver_refresh_every_s=0, open_metrics=False,
        )  # fmt: skip
        async with running_archiver(settings) as running:
            archiver = running.url.removeprefix("http://")
            with running_prometheus(_config(tmp_path, archiver), free_port()) as prometheus:
                documents = archiver_queues.work_queue(ARCHIVER_DOCUMENTS)
                idle = archiver_queues.work_queue(ANALYZER_ENTITY_REFRESH)
                consumers = await _until(prometheus, f'sift_queue_consumers{{queue="{documents}"}}')
                down = await _until(prometheus, 'up{job="archiver-keyless"} == 0')
                up = await _until(prometheus, 'up{job="archiver"} == 1')
                pending = await _until(
                    prometheus,
                    f'ALERTS{{alertname="SiftQueueWithoutConsumers", queue="{idle}"}}',
                )
                rate = await _until(
                    prometheus, f'sift:queue_delivered:rate5m{{queue="{documents}"}}'
                )
    log = (tmp_path / "prometheus.log").read_text()
    assert "Evaluating rule failed" not in log, log[-3000:]
    assert consumers[0]["value"][1] == "1"  # the archiver consumes its own queue
    assert down
    assert up
    assert pending[0]["metric"]["alertstate"] == "pending"  # `for: 5m` not yet over
    assert pending[0]["metric"]["severity"] == "critical"
    assert rate[0]["value"][1] == "0"  # nothing delivered yet: the series is there, at 0
