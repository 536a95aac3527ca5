"""The LLM gateway run in-process for tests: a profiles YAML written to a temp directory, the
real app (`build_app`) served on a free port, everything torn down afterwards.

Test profiles use small timeouts, retry delays and breaker windows so fault tests stay fast;
`chat_profile(...)` / `embed_profile(...)` take overrides, nested dictionaries merged.
Also here: the httpx helpers the gateway integration tests share (`client`, `chat`,
`stream_chat`, `assert_openai_error`, `metric`, `upstreams`).
"""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from scripts.processes import free_port as free_port  # the tests import it from here
from sift_gateway import ops
from sift_gateway.app import build_app
from sift_gateway.probes import Prober
from sift_gateway.registry import ProfileRuntime
from sift_gateway.settings import GatewayServiceSettings
from sift_gateway.state import STATE_KEY, GatewayState
from tests.support.fake_upstream import FakeUpstream

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
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield RunningGateway(f"http://127.0.0.1:{port}", app)
    finally:
        await runner.cleanup()


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
