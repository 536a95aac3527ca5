"""The scheduler across replicas and failures, against the real RabbitMQ and Redis.

Two collector processes on one config poll each source once per interval in total and never
at the same time; two in-process replicas likewise; a failing source backs off (the gaps
between its requests grow) and `status()` and the metrics report it. Timings are generous:
the machine has two shared cores.
"""

import asyncio
import json
import os
import signal
import sys
import time
from itertools import pairwise
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from sift_collector.scheduler import Scheduler, SchedulingOptions
from sift_common.messaging.topology import Topology
from tests.integration import test_collector_sources as shared
from tests.integration.test_collector_sources import (
    ACME,
    REVIEW,
    FeedServer,
    MakeScheduler,
    api_source,
    collected,
    drop_source,
    rss_source,
)
from tests.support.gateway import free_port
from tests.support.rabbit import delete_topology

pytestmark = pytest.mark.integration

# The test HTTP server and the pipeline fixtures of the sources tests.
server, redis, publisher, http, make_scheduler = (
    shared.server,
    shared.redis,
    shared.publisher,
    shared.http,
    shared.make_scheduler,
)

INTERVAL_S = 2.0
RUN_S = 8.0


async def _run_for(seconds: float, *schedulers: Scheduler) -> None:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(scheduler.run_forever(stop)) for scheduler in schedulers]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)


async def _first_request(server: FeedServer, path: str, within_s: float) -> float:
    deadline = time.monotonic() + within_s
    while not server.requests(path):
        assert time.monotonic() < deadline, f"no request for {path} within {within_s} s"
        await asyncio.sleep(0.05)
    return server.requests(path)[0].at


def _write_config(tmp_path: Path, server: FeedServer, drop: Path) -> Path:
    # Each answer takes 0.3 s, so two overlapping polls of a source would be seen.
    sources = [
        {**rss_source(server, "wire", [ACME]), "interval_s": INTERVAL_S, "jitter": 0},
        {**api_source(server, "reviews", [REVIEW]), "interval_s": INTERVAL_S, "jitter": 0},
        {**drop_source(drop), "interval_s": INTERVAL_S, "jitter": 0},
    ]
    for path in ("/wire", "/reviews"):
        server.resources[path].delay_s = 0.3
    config = tmp_path / "sources.yaml"
    config.write_text(json.dumps({"sources": sources}))  # JSON is YAML
    return config


@pytest.mark.usefixtures("redis")  # removes the processes' keys afterwards
async def test_two_collector_processes_poll_each_source_once_per_interval(
    server: FeedServer, rabbit_url: str, redis_url: str, namespace: str, tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "one.jsonl").write_text(json.dumps({"body": "Dropped once.", "external_id": "d1"}))
    env = {
        **os.environ,
        "SIFT_RABBIT_URL": rabbit_url,
        "SIFT_REDIS_URL": redis_url,
        "SIFT_NAMESPACE": namespace,
        "SIFT_COLLECTOR_SOURCES": str(_write_config(tmp_path, server, drop)),
    }
    logs = [(tmp_path / f"collector-{i}.log").open("wb") for i in range(2)]
    processes = [  # the whole collector, as `sift-collector` runs it, each on its own port
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sift_collector.app",
            env={**env, "SIFT_COLLECTOR_PORT": str(free_port())},
            stderr=log,
            stdout=log,
        )
        for log in logs
    ]
    try:
        started = await _first_request(server, "/wire", within_s=90)
        await asyncio.sleep(RUN_S)
        assert all(process.returncode is None for process in processes), "a collector died"
        for process in processes:
            process.send_signal(signal.SIGTERM)
        codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in processes)), 30)
        window = time.monotonic() - started
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
        for log in logs:
            log.close()
        published = await collected(rabbit_url, namespace)
        await delete_topology(rabbit_url, Topology(namespace))

    assert codes == [0, 0], [p.read_text()[-2000:] for p in tmp_path.glob("collector-*.log")]
    for path in ("/wire", "/reviews"):
        polls = len(server.requests(path))
        assert 2 <= polls <= window / INTERVAL_S + 1, (path, polls, window)
        assert server.most_in_flight[path] == 1, f"overlapping polls of {path}"
    assert sorted(d.source for d in published) == ["drops", "reviews", "wire"]
    assert (drop / "done" / "one.jsonl").exists()


async def test_two_replicas_in_one_process_never_overlap(
    server: FeedServer, make_scheduler: MakeScheduler
) -> None:
    slow = {**rss_source(server, "wire", [ACME]), "interval_s": 1.0}
    server.resources["/wire"].delay_s = 0.5
    replicas = [make_scheduler([slow], options=SchedulingOptions(tick_s=0.05)) for _ in range(2)]

    await _run_for(5.0, *replicas)

    polls = server.requests("/wire")
    assert 3 <= len(polls) <= 5.0 / 1.0 + 1
    assert server.most_in_flight["/wire"] == 1
    assert all(later.at - earlier.at >= 1.0 for earlier, later in pairwise(polls))


async def test_a_failing_source_backs_off_and_is_reported(
    server: FeedServer, make_scheduler: MakeScheduler
) -> None:
    broken = {
        "name": "broken",
        "type": "rss",
        "url": server.serve("/broken", b"", "text/plain", status=500),
        "interval_s": 1.0,
    }
    healthy = {**rss_source(server, "wire", [ACME]), "interval_s": 1.0}
    registry = CollectorRegistry()
    scheduler = make_scheduler(
        [broken, healthy], options=SchedulingOptions(tick_s=0.1), registry=registry
    )

    await _run_for(8.5, scheduler)

    failures = server.requests("/broken")
    gaps = [later.at - earlier.at for earlier, later in pairwise(failures)]
    # interval × 1, 2, 4: requests at about 0, 1, 3 and 7 s.
    assert 3 <= len(failures) <= 5, gaps
    assert all(later >= 1.5 * earlier for earlier, later in pairwise(gaps)), gaps
    assert len(server.requests("/wire")) >= 6  # the healthy source kept its pace

    status = scheduler.status()
    assert status["broken"]["consecutive_failures"] == len(failures)
    assert "HTTP 500" in status["broken"]["last_error"]
    assert status["broken"]["last_success_at"] is None
    assert status["broken"]["next_due_at"] is not None
    assert status["wire"]["consecutive_failures"] == 0
    errors = registry.get_sample_value(
        "sift_collector_polls_total", {"source": "broken", "outcome": "error"}
    )
    assert errors == len(failures)
    assert registry.get_sample_value(
        "sift_collector_source_consecutive_failures", {"source": "broken"}
    ) == len(failures)
