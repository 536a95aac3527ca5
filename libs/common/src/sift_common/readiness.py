"""The readiness report behind `/health/ready`: named dependency checks, plus `draining`
(set on SIGTERM, see `sift_common.draining`) so a stopping service turns unready first."""

from collections.abc import Awaitable, Callable, Mapping

Check = Callable[[], Awaitable[None]]  # raises when the dependency is not usable


class Readiness:
    """Ready when every dependency check passes and the service is not draining."""

    def __init__(self, checks: Mapping[str, Check]) -> None:
        self._checks = dict(checks)
        self.draining = False

    async def report(self) -> tuple[bool, dict[str, str]]:
        results: dict[str, str] = {}
        for name, check in self._checks.items():
            try:
                await check()
                results[name] = "ok"
            except Exception as exc:  # reported, not raised: this is the health endpoint
                results[name] = f"{type(exc).__name__}: {exc}"[:300]
        if self.draining:
            results["shutdown"] = "draining: not taking new work"
        return all(value == "ok" for value in results.values()), results
