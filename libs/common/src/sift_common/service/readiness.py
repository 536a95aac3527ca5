"""The readiness report behind `/health/ready`.

Named dependency checks run at once, each bounded by its own timeout, so one dependency that
hangs costs the probe its timeout, not the sum of them all, and the report says which one it
was. `draining` (set on SIGTERM by `sift_common.service.draining`, and when the lifespan ends)
turns the service unready before its listener closes; the checks are not run then.

Checks may be given as a function returning them, for a service whose dependencies change while
it runs (the gateway's profiles follow its aliases). An advisory check is reported but never
makes the service unready (the gateway's request log: serving matters more than its log). A
check that returns a string reports it as the result's `detail`.

Answers are unauthenticated, so a failed check reports what is safe to show anyone: a timeout
as such, a `NotReady` with its own reason (written for the public: counts, never URLs), and any
other exception as `failed (ref <id>)`. The exception itself is logged at WARNING with that
reference id (`readiness_ref`), so an operator finds the detail from the answer.

Framework-free on purpose: FastAPI services serve it through `sift_common.service.ops`, the
aiohttp gateway through its own two routes, in the same body shape.
"""

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal

from pydantic import BaseModel, Field

Check = Callable[[], Awaitable[object]]  # raises when the dependency is not usable
Checks = Mapping[str, Check] | Callable[[], Mapping[str, Check]]
DEFAULT_TIMEOUT_S = 2.0
MAX_ERROR_CHARS = 300
logger = logging.getLogger("sift_common.readiness")


class NotReady(Exception):
    """A check's failure whose message is safe to answer publicly (no URLs, no exception text)."""


class Liveness(BaseModel):
    status: Literal["live"] = "live"


class CheckResult(BaseModel):
    ok: bool
    error: str | None = Field(default=None, description="Why not, when `ok` is false.")
    detail: str | None = Field(default=None, description="What the check reported, if anything.")
    advisory: bool = Field(default=False, description="Reported only; never makes it unready.")


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
        checks: Checks,
        *,
        advisory: Mapping[str, Check] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        timeouts: Mapping[str, float] | None = None,
    ) -> None:
        self._checks = checks
        self._advisory = dict(advisory or {})
        self._timeout_s = timeout_s
        self._timeouts = dict(timeouts or {})
        if not callable(checks) and (unknown := set(self._timeouts) - {*checks, *self._advisory}):
            raise ValueError(f"timeouts for checks that do not exist: {sorted(unknown)}")
        self.draining = False

    async def report(self) -> ReadinessReport:
        if self.draining:
            return ReadinessReport(status="draining", checks={})
        required = self._checks() if callable(self._checks) else self._checks
        runs = [(name, check, False) for name, check in required.items()]
        runs += [(name, check, True) for name, check in self._advisory.items()]
        results = await asyncio.gather(*(self._run(*run) for run in runs))
        ok = all(result.ok or result.advisory for result in results)
        names = [name for name, _, _ in runs]
        return ReadinessReport(
            status="ready" if ok else "not_ready", checks=dict(zip(names, results, strict=True))
        )

    async def _run(self, name: str, check: Check, advisory: bool) -> CheckResult:
        limit_s = self._timeouts.get(name, self._timeout_s)
        timeout = asyncio.timeout(limit_s)
        try:
            async with timeout:
                answer = await check()
        except Exception as exc:  # reported, not raised: readiness says what is down
            error = _public_reason(name, exc, limit_s if timeout.expired() else None)
            return CheckResult(ok=False, error=error[:MAX_ERROR_CHARS], advisory=advisory)
        detail = answer[:MAX_ERROR_CHARS] if isinstance(answer, str) else None
        return CheckResult(ok=True, detail=detail, advisory=advisory)


def _public_reason(name: str, exc: Exception, timed_out_after_s: float | None) -> str:
    """What the answer says about a failed check; the detail goes to the log under a ref id."""
    if isinstance(exc, TimeoutError) and timed_out_after_s is not None:
        return f"no answer within {timed_out_after_s:g} s"
    ref = uuid.uuid4().hex[:12]
    detail = f"{type(exc).__name__}: {exc}"
    if exc.__cause__ is not None:  # a NotReady's cause holds what only the log may say
        detail += f" (cause: {type(exc.__cause__).__name__}: {exc.__cause__})"
    logger.warning(
        "readiness check %s failed (ref %s): %s",
        name,
        ref,
        detail,
        extra={"check": name, "readiness_ref": ref},
    )
    if isinstance(exc, NotReady):
        return f"{exc} (ref {ref})"
    return f"failed (ref {ref})"
