"""The analyzer's HTTP side: /metrics, /health/live and /health/ready (real dependencies)."""

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Check = Callable[[], Awaitable[None]]
CHECK_TIMEOUT_S = 3.0


class Readiness:
    """Named dependency checks; `draining` (set on SIGTERM) makes readiness fail first."""

    def __init__(self, checks: dict[str, Check]) -> None:
        self.checks = checks
        self.draining = False

    async def report(self) -> tuple[bool, dict[str, str]]:
        if self.draining:
            return False, {"status": "draining"}
        results = await asyncio.gather(*(self._run(check) for check in self.checks.values()))
        report = dict(zip(self.checks, results, strict=True))
        return all(result == "ok" for result in results), report

    async def _run(self, check: Check) -> str:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await check()
        except Exception as exc:  # reported, not raised: readiness says what is down
            return f"down: {type(exc).__name__}: {exc}"[:300]
        return "ok"


def create_api(
    readiness: Readiness,
    registry: CollectorRegistry,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
) -> FastAPI:
    app = FastAPI(title="Sift analyzer", lifespan=lifespan)

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/health/ready")
    async def ready() -> Any:
        ok, report = await readiness.report()
        return JSONResponse(report, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
