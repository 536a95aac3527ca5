"""Where the tests find RabbitMQ, Redis and PostgreSQL+pgvector, and how each test is isolated.

Order of preference for every service: the `SIFT_*` environment variable; a testcontainers
container where a Docker engine answers; otherwise the local service on its default port (and,
for PostgreSQL, the embedded pgvector server). Each test gets its own queue/exchange namespace,
its own Redis key prefix and, when it asks for one, its own freshly created database.
"""

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sift_common.messaging.teardown import delete_topology
from sift_common.messaging.topology import Topology
from sift_common.settings import DatabaseSettings, RabbitSettings, RedisSettings, load_settings
from sift_common.store.embedded import (
    start_embedded_postgres,
    stop_embedded_postgres,
    to_asyncpg_url,
)
from tests.support.databases import new_database
from tests.support.rabbit import sweep_test_queues
from tests.support.vllm import vllm_servers  # noqa: F401  (a session fixture)

ROOT = Path(__file__).resolve().parents[1]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
# Starts every namespace of this test run, so the end-of-run sweep never touches another run.
RUN_TAG = uuid.uuid4().hex[:4]
# Starting the vLLM servers cold (compile included) takes minutes on 2 cores.
VLLM_TEST_TIMEOUT_S = 1200
TEST_PGDATA = ROOT / ".sift" / "pgdata-test"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("vllm") is not None:
            item.add_marker(pytest.mark.timeout(VLLM_TEST_TIMEOUT_S))


def _docker_engine_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        probe = subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


@pytest.fixture(scope="session")
def containers() -> Iterator[ExitStack | None]:
    """An ExitStack for testcontainers when a Docker engine exists, else None."""
    if not _docker_engine_available():
        yield None
        return
    with ExitStack() as stack:
        yield stack


@pytest.fixture(scope="session")
def rabbit_url(containers: ExitStack | None) -> Iterator[str]:
    if "SIFT_RABBIT_URL" in os.environ or containers is None:
        url = str(load_settings(RabbitSettings).rabbit_url)
        yield url
        # A broker that outlives test runs keeps what they leave: this run leaves nothing.
        if urlsplit(url).hostname in LOCAL_HOSTS:
            asyncio.run(sweep_test_queues(url, f"t{RUN_TAG}"))
        return
    from testcontainers.rabbitmq import RabbitMqContainer

    rabbit = containers.enter_context(RabbitMqContainer("rabbitmq:3.13"))
    host, port = rabbit.get_container_host_ip(), rabbit.get_exposed_port(5672)
    yield f"amqp://guest:guest@{host}:{port}/"


@pytest.fixture(scope="session")
def redis_url(containers: ExitStack | None) -> str:
    if "SIFT_REDIS_URL" in os.environ or containers is None:
        return str(load_settings(RedisSettings).redis_url)
    from testcontainers.redis import RedisContainer

    redis = containers.enter_context(RedisContainer("redis:7"))
    host, port = redis.get_container_host_ip(), redis.get_exposed_port(6379)
    return f"redis://{host}:{port}/0"


@pytest.fixture(scope="session")
def database_url(containers: ExitStack | None) -> Iterator[str]:
    """URL of a PostgreSQL server with pgvector (asyncpg driver), the admin database."""
    configured = load_settings(DatabaseSettings).database_url
    if configured is not None:
        yield to_asyncpg_url(configured)
    elif containers is not None:
        from testcontainers.postgres import PostgresContainer

        postgres = containers.enter_context(PostgresContainer("pgvector/pgvector:pg17"))
        yield to_asyncpg_url(postgres.get_connection_url())
    else:
        # Stopped at the end so no server outlives the test run (CI waits on its children).
        yield start_embedded_postgres(TEST_PGDATA)
        stop_embedded_postgres(TEST_PGDATA)


@pytest.fixture
def namespace(request: pytest.FixtureRequest) -> Iterator[str]:
    """A unique prefix for this test's exchanges, queues and Redis keys. After a test that used
    RabbitMQ, the namespace's default topology is deleted (a test with other retry ladders
    deletes those itself): leftover quorum queues pile up and slow the broker for everyone."""
    name = f"t{RUN_TAG}{uuid.uuid4().hex[:6]}."
    yield name
    if "rabbit_url" in request.fixturenames:
        asyncio.run(delete_topology(request.getfixturevalue("rabbit_url"), Topology(name)))


@pytest.fixture
async def fresh_database(database_url: str) -> AsyncIterator[str]:
    """A newly created, empty database for this test; dropped afterwards."""
    async with new_database(database_url) as url:
        yield url
