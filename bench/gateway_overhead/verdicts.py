"""The issue's targets for Sift, checked against the measured results."""

from typing import Any


def all_verdicts(targets: dict[str, Any]) -> list[dict[str, Any]]:
    litellm = targets.get("litellm")
    litellm = litellm if litellm and litellm.get("summary") else None
    checks = []
    for name in ("sift", "sift-nolog"):
        if name in targets and targets[name].get("summary"):
            checks += sift_verdicts(name, targets[name], litellm)
    return checks


def sift_verdicts(
    name: str, result: dict[str, Any], litellm: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The issue's targets for one Sift variant; `pass` is None where it was not measured."""
    steps, summary = result["steps"], result["summary"]
    at500 = _at(steps, 500) or {}
    p50, p99 = at500.get("added_p50_ms"), at500.get("added_p99_ms")
    errors, cpu = at500.get("errors"), at500.get("cpu_ms_per_req")
    best, rss = summary["highest_error_free_rps"], summary["peak_rss_mb"]
    checks = [
        _check(f"{name}: added p50 at 500 RPS", p50, "<= 1 ms", None if p50 is None else p50 <= 1),
        _check(f"{name}: added p99 at 500 RPS", p99, "<= 3 ms", None if p99 is None else p99 <= 3),
        _check(
            f"{name}: errors at 500 RPS", errors, "== 0", None if errors is None else not errors
        ),
        _check(f"{name}: highest error-free rate", best, ">= 1500 RPS", (best or 0) >= 1500),
        _check(
            f"{name}: CPU per request at 500 RPS",
            cpu,
            "<= 0.5 ms",
            None if cpu is None else cpu <= 0.5,
        ),
        _check(f"{name}: peak RSS", rss, "<= 150 MB", None if rss is None else rss <= 150),
    ]
    if litellm is not None:
        checks.append(_ratio_check(name, best, litellm["summary"]))
    return checks


def _at(steps: list[dict[str, Any]], rate: float) -> dict[str, Any] | None:
    return next((s for s in steps if s["offered_rps"] == rate and s["valid"]), None)


def _check(name: str, measured: Any, limit: str, ok: bool | None) -> dict[str, Any]:
    return {"check": name, "measured": measured, "limit": limit, "pass": ok}


def _ratio_check(name: str, best: float | None, litellm: dict[str, Any]) -> dict[str, Any]:
    """Highest error-free rate >= 10x LiteLLM's, both as measured on the rate grid.

    If LiteLLM is not error-free even at the lowest rate, its capacity is below that rate,
    so Sift's best divided by it is a lower bound on the ratio.
    """
    clean, failing = litellm["highest_error_free_rps"], litellm["lowest_failing_rps"]
    ratio = None
    if best and clean:
        ratio = best / clean
    elif best and failing:
        ratio = best / failing  # lower bound
    measured = {"sift_rps": best, "litellm_rps": clean, "ratio": _round(ratio)}
    if not clean:
        measured["litellm_rps"] = f"< {failing}"
    return _check(f"{name}: vs LiteLLM error-free rate", measured, ">= 10x", (ratio or 0) >= 10)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
