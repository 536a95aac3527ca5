"""The LLM gateway run in-process for tests: a profiles YAML written to a temp directory, the
real app (`build_app`) served on a free port, everything torn down afterwards.

Test profiles use small timeouts, retry delays and breaker windows so fault tests stay fast;
`chat_profile(...)` / `embed_profile(...)` take overrides, nested dictionaries merged.
Also here: the httpx helpers the gateway integration tests share (`client`, `chat`,
`stream_chat`, `assert_openai_error`, `metric`, `upstreams`), and `logged_rows`, the request
log read back.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from scripts.processes import free_port as free_port  # the tests import it from here
from sift_archiver.pool import asyncpg_dsn
from sift_common.store import migrate
from sift_gateway import ops
from sift_gateway.app import build_app
from sift_gateway.probes import Prober
from sift_gateway.registry import ProfileRuntime
from sift_gateway.settings import GatewayServiceSettings
from sift_gateway.state import STATE_KEY, GatewayState
from tests.support.fake_upstream import FakeUpstream
from tests.support.served import served

StartFake = Callable[..., Awaitable[FakeUpstream]]
"""The `fakes` fixture (tests/integration/conftest.py): start a FAKE upstream."""

HI = [{"role": "user", "content": "hi"}]

FAST_PROFILE: dict[str, Any] = {
    "max_queue_wait_s": 5.0,
    "timeouts": {"connect_s": 1.0, "ttft_s": 5.0, "stall_s": 5.0, "total_s": 15.0},
    "retries": {"max_attempts": 4, "base_delay_s": 0.02, "max_delay_s": 0.5},
    "breaker": {"failure_threshold": 5, "success_threshold": 1, "open_for_s": 1.0},
}


def _merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def chat_profile(
    *replicas: str, served_model: str = "fake-chat", **overrides: Any
) -> dict[str, Any]:
    profile = {"kind": "chat", "served_model": served_model, "replicas": list(replicas)}
    return _merged({**FAST_PROFILE, **profile}, overrides)


def embed_profile(
    *replicas: str, served_model: str = "fake-embed", **overrides: Any
) -> dict[str, Any]:
    profile = {"kind": "embeddings", "served_model": served_model, "replicas": list(replicas)}
    return _merged({**FAST_PROFILE, **profile}, overrides)


@dataclass
class RunningGateway:
    url: str
    app: web.Application

    @property
    def state(self) -> GatewayState:
        return self.app[STATE_KEY]

    @property
    def prober(self) -> Prober:
        return self.app[ops.PROBER_KEY]

    def runtime(self, profile: str) -> ProfileRuntime:
        return self.state.registry.profiles[profile]


def write_profiles(
    path: Path, profiles: dict[str, dict[str, Any]], aliases: dict[str, str] | None = None
) -> Path:
    path.write_text(yaml.safe_dump({"profiles": profiles, "aliases": aliases or {}}))
    return path


@asynccontextmanager
async def running_gateway(
    directory: Path,
    profiles: dict[str, dict[str, Any]],
    aliases: dict[str, str] | None = None,
    **settings: Any,
) -> AsyncIterator[RunningGateway]:
    """Serve the gateway on 127.0.0.1:<free port>; `settings` override GatewayServiceSettings
    (request logging is off unless asked for)."""
    path = write_profiles(directory / "profiles.yaml", profiles, aliases)
    settings.setdefault("gateway_request_log", False)
    app = build_app(GatewayServiceSettings(gateway_profiles=path, **settings))
    async with served(app, shutdown_timeout=2.0) as url:
        yield RunningGateway(url, app)


@asynccontextmanager
async def logging_gateway(
    directory: Path, chat_url: str, database_url: str
) -> AsyncIterator[RunningGateway]:
    """One chat profile (`main`, alias `chat`) on `chat_url`, its request log written to
    `database_url` (migrated here)."""
    await migrate.upgrade(database_url)
    profiles = {"main": chat_profile(chat_url)}
    settings = {"database_url": database_url, "gateway_request_log": True}
    async with running_gateway(directory, profiles, {"chat": "main"}, **settings) as gw:
        yield gw


@asynccontextmanager
async def gateway_replicas(
    directory: Path,
    profiles: dict[str, dict[str, Any]],
    aliases: dict[str, str],
    database_url: str,
    **settings: Any,
) -> AsyncIterator[tuple[RunningGateway, RunningGateway]]:
    """Two gateway replicas on one database, a profiles file each (as two hosts have)."""
    async with AsyncExitStack() as stack:
        gateways = []
        for name in ("a", "b"):
            (directory / name).mkdir(exist_ok=True)
            replica = running_gateway(
                directory / name, profiles, aliases, database_url=database_url, **settings
            )
            gateways.append(await stack.enter_async_context(replica))
        yield gateways[0], gateways[1]


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0, every: float = 0.05
) -> None:
    """Poll `condition` (plain or async) until it holds; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(every)


def dead_url() -> str:
    """A replica URL where nothing listens: connections are refused."""
    return f"http://127.0.0.1:{free_port()}"


def client(gateway: RunningGateway) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gateway.url, timeout=30)


async def chat(
    http: httpx.AsyncClient, headers: dict[str, str] | None = None, **body: Any
) -> httpx.Response:
    return await http.post(
        "/v1/chat/completions", json={"model": "chat", "messages": HI, **body}, headers=headers
    )


async def stream_chat(http: httpx.AsyncClient, **body: Any) -> tuple[httpx.Response, bytes]:
    payload = {"model": "chat", "messages": HI, "stream": True, **body}
    async with http.stream("POST", "/v1/chat/completions", json=payload) as response:
        return response, await response.aread()


def assert_openai_error(
    response: httpx.Response, status: int, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str)
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    return error


async def metric(http: httpx.AsyncClient, name: str, **labels: str) -> float:
    """One sample from /metrics (0 when the labelled series does not exist yet)."""
    text = (await http.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


async def upstreams(http: httpx.AsyncClient) -> dict[str, list[dict[str, Any]]]:
    response = await http.get("/admin/upstreams")
    assert response.status_code == 200
    result: dict[str, list[dict[str, Any]]] = response.json()
    return result


async def logged_rows(database_url: str, count: int, columns: str) -> list[asyncpg.Record]:
    """`columns` of the gateway's request-log rows, oldest first, once `count` are written
    (the writer copies them in batches, off the request path)."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:

        async def written() -> bool:
            total = await connection.fetchval("SELECT count(*) FROM gateway.request_logs")
            return bool(total == count)

        await eventually(written, timeout=15)
        return list(
            await connection.fetch(
                f"SELECT {columns} FROM gateway.request_logs ORDER BY created_at, id"
            )
        )
    finally:
        await connection.close()
