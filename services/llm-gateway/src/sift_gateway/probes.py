"""Knowing whether each replica really works, not just whether it answers /health.

Every `interval_s` each replica of each profile gets: GET /v1/models (which also tells the
model's `max_model_len`) and a real 1-token completion (or a 1-text embedding). A replica that
fails is marked unhealthy and taken out of routing until a probe passes again. For chat replicas
the engine watchdog also reads vLLM's /metrics: requests running while the generated-token
counter does not move for `stall_after_s` means a hung engine, whatever /health says.
"""

import asyncio
import logging
import time
from dataclasses import dataclass, field

import aiohttp
import orjson

from sift_gateway.registry import ProfileRuntime, Registry, Replica
from sift_gateway.upstream import JSON_HEADERS

logger = logging.getLogger(__name__)

RUNNING_METRIC = "vllm:num_requests_running"
GENERATED_METRIC = "vllm:generation_tokens_total"


@dataclass
class EngineProgress:
    tokens: float
    changed_at: float


@dataclass
class Prober:
    registry: Registry
    session: aiohttp.ClientSession
    interval_s: float = 10.0
    timeout_s: float = 30.0
    stall_after_s: float = 60.0
    progress: dict[str, EngineProgress] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="upstream-prober")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def probe_all(self) -> None:
        checks = [
            self.probe(runtime, replica)
            for runtime in self.registry.profiles.values()
            for replica in runtime.replicas
        ]
        for failure in await asyncio.gather(*checks, return_exceptions=True):
            if isinstance(failure, Exception):  # probing must go on whatever one replica says
                logger.error("probe crashed", exc_info=failure)

    def ready(self, runtime: ProfileRuntime, now: float) -> bool:
        """A profile is ready when a replica passed a real probe recently."""
        fresh = self.interval_s * 3 + self.timeout_s
        return any(
            r.healthy and r.last_probe_ok_at is not None and now - r.last_probe_ok_at <= fresh
            for r in runtime.replicas
        )

    async def probe(self, runtime: ProfileRuntime, replica: Replica) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._read_model_card(runtime, replica)
                if runtime.profile.kind == "chat":
                    self._check_engine_progress(replica, await self._read_metrics(replica))
                await self._smallest_request(runtime, replica)
        except (
            aiohttp.ClientError,
            TimeoutError,
            ProbeFailedError,
            ValueError,
            AttributeError,
        ) as exc:
            reason = str(exc) or type(exc).__name__
            if replica.healthy:
                logger.warning("replica %s failed its probe: %s", replica.url, reason)
            replica.healthy, replica.last_error = False, f"probe: {reason}"
            return
        if not replica.healthy:
            logger.info("replica %s passed its probe again", replica.url)
        replica.healthy, replica.last_probe_ok_at = True, time.monotonic()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.probe_all()

    async def _read_model_card(self, runtime: ProfileRuntime, replica: Replica) -> None:
        async with self.session.get(replica.url + "/v1/models") as response:
            if response.status != 200:
                raise ProbeFailedError(f"/v1/models answered {response.status}")
            cards = orjson.loads(await response.read()).get("data", [])
        for card in cards:
            if card.get("id") == runtime.profile.served_model:
                length = card.get("max_model_len")
                replica.max_model_len = length if isinstance(length, int) else None
                return
        raise ProbeFailedError(f"{runtime.profile.served_model!r} is not served there")

    async def _smallest_request(self, runtime: ProfileRuntime, replica: Replica) -> None:
        model = runtime.profile.served_model
        if runtime.profile.kind == "chat":
            path = "/v1/chat/completions"
            body = {
                "model": model,
                "messages": [{"role": "user", "content": "ping"}],
                "max_tokens": 1,
            }
        else:
            path, body = "/v1/embeddings", {"model": model, "input": "ping"}
        async with self.session.post(
            replica.url + path, data=orjson.dumps(body), headers=JSON_HEADERS
        ) as response:
            if response.status != 200:
                raise ProbeFailedError(f"{path} answered {response.status}")
            await response.read()

    async def _read_metrics(self, replica: Replica) -> dict[str, float]:
        async with self.session.get(replica.url + "/metrics") as response:
            if response.status != 200:
                return {}  # an upstream without metrics cannot be watched; not a failure
            return parse_prometheus_totals(
                await response.text(), (RUNNING_METRIC, GENERATED_METRIC)
            )

    def _check_engine_progress(self, replica: Replica, totals: dict[str, float]) -> None:
        if GENERATED_METRIC not in totals:
            return
        now, tokens = time.monotonic(), totals[GENERATED_METRIC]
        previous = self.progress.get(replica.url)
        if previous is None or tokens != previous.tokens or totals.get(RUNNING_METRIC, 0) == 0:
            self.progress[replica.url] = EngineProgress(tokens, now)
            return
        if now - previous.changed_at >= self.stall_after_s:
            raise ProbeFailedError(
                f"engine hung: requests running but no token generated for "
                f"{now - previous.changed_at:.0f} s"
            )


class ProbeFailedError(Exception):
    pass


def parse_prometheus_totals(text: str, names: tuple[str, ...]) -> dict[str, float]:
    """Sum the samples of each named metric over all its label sets."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in names:
            try:
                totals[name] = totals.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
            except (IndexError, ValueError):
                continue
    return totals
