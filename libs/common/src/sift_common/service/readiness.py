"""The readiness report behind `/health/ready`.

Named dependency checks run at once, each bounded by its own timeout, so one dependency that
hangs costs the probe its timeout, not the sum of them all, and the report says which one it
was. `draining` (set on SIGTERM by `sift_common.service.draining`, and when the lifespan ends)
turns the service unready before its listener closes; the checks are not run then.
"""

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal

from pydantic import BaseModel, Field

Check = Callable[[], Awaitable[object]]  # raises when the dependency is not usable
DEFAULT_TIMEOUT_S = 2.0
MAX_ERROR_CHARS = 300


class CheckResult(BaseModel):
    ok: bool
    error: str | None = Field(default=None, description="Why not, when `ok` is false.")


class ReadinessReport(BaseModel):
    status: Literal["ready", "not_ready", "draining"] = Field(
        description="`draining`: shutting down, taking no new work (the checks are not run)."
    )
    checks: dict[str, CheckResult] = Field(description="One entry per dependency.")

    @property
    def ready(self) -> bool:
        return self.status == "ready"


class Readiness:
    """Ready when every check passes within its timeout and the service is not draining."""

    def __init__(
        self,
        checks: Mapping[str, Check],
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        timeouts: Mapping[str, float] | None = None,
    ) -> None:
        timeouts = dict(timeouts or {})
        if unknown := set(timeouts) - set(checks):
            raise ValueError(f"timeouts for checks that do not exist: {sorted(unknown)}")
        self._checks = dict(checks)
        self._timeouts = {name: timeouts.get(name, timeout_s) for name in self._checks}
        self.draining = False

    async def report(self) -> ReadinessReport:
        if self.draining:
            return ReadinessReport(status="draining", checks={})
        names = list(self._checks)
        results = await asyncio.gather(*(self._run(name) for name in names))
        ok = all(result.ok for result in results)
        return ReadinessReport(
            status="ready" if ok else "not_ready", checks=dict(zip(names, results, strict=True))
        )

    async def _run(self, name: str) -> CheckResult:
        limit_s = self._timeouts[name]
        timeout = asyncio.timeout(limit_s)
        try:
            async with timeout:
                await self._checks[name]()
        except Exception as exc:  # reported, not raised: readiness says what is down
            if isinstance(exc, TimeoutError) and timeout.expired():
                return CheckResult(ok=False, error=f"no answer within {limit_s:g} s")
            return CheckResult(ok=False, error=f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS])
        return CheckResult(ok=True)
