"""The operator routes every FastAPI service serves: `/health/live`, `/health/ready`, `/metrics`.

One body shape for all of them: live is `{"status": "live"}`; ready is a `ReadinessReport`
(200 when ready, 503 when a check fails or the service is draining). Health stays open (an
orchestrator's probe carries no key, and the answers hold names and counts only); `/metrics`
needs a key with the `metrics` scope when the service passes its guard (production)."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from sift_common.security.guard import KeyGuard
from sift_common.security.keys import METRICS_SCOPE
from sift_common.service.api_keys import authenticate
from sift_common.service.readiness import Liveness, Readiness, ReadinessReport

NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": ReadinessReport, "description": "A dependency is down, or shutting down"}
}


def ops_router(
    readiness: Readiness, registry: CollectorRegistry, metrics_guard: KeyGuard | None = None
) -> APIRouter:
    """`metrics_guard`: where given, `/metrics` answers only a key with the `metrics` scope."""
    router = APIRouter(tags=["ops"])

    @router.get("/health/live")
    async def live() -> Liveness:
        """The process is up and serving."""
        return Liveness()

    @router.get("/health/ready", response_model=ReadinessReport, responses=NOT_READY)
    async def ready() -> JSONResponse:
        """Every dependency answers and the service is not draining; 503 says which does not."""
        report = await readiness.report()
        return JSONResponse(report.model_dump(), 200 if report.ready else 503)

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if metrics_guard is not None:
            authenticate(request, metrics_guard, METRICS_SCOPE)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
