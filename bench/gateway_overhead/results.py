"""One step's numbers and one target's summary, as they go into the JSON (bench/README.md)."""

import math
from typing import Any

from .load import Load, Tally
from .measuring import ProcSample

SUSTAINED_SHARE = 0.95


def percentile_ms(sorted_s: list[float], q: float) -> float | None:
    if not sorted_s:
        return None
    rank = max(1, math.ceil(q * len(sorted_s)))  # nearest rank
    return round(sorted_s[rank - 1] * 1000, 3)


def summarise(
    name: str,
    load: Load,
    tally: Tally,
    window: tuple[ProcSample, ProcSample],
    peak_rss_mb: float,
) -> dict[str, Any]:
    lat = sorted(tally.latencies_s)
    ok = len(lat)
    answered = ok + sum(n for kind, n in tally.errors.items() if kind != "shed_in_flight_cap")
    span = tally.last_done - tally.window_start
    achieved = ok / span if span > 0 else 0.0
    return {
        "target": name,
        "offered_rps": load.rate,
        "achieved_rps": round(achieved, 1),
        # Zero errors is not enough: a target serving 80 of 100 RPS builds a queue that an
        # 8 s step may end before it overflows. Keeping up is part of "error-free".
        "sustained": not tally.errors and ok > 0 and achieved >= SUSTAINED_SHARE * load.rate,
        "scheduled": tally.scheduled,
        "ok": ok,
        "errors": sum(tally.errors.values()),
        "error_kinds": dict(tally.errors),
        "p50_ms": percentile_ms(lat, 0.50),
        "p99_ms": percentile_ms(lat, 0.99),
        "p999_ms": percentile_ms(lat, 0.999),
        "max_ms": percentile_ms(lat, 1.0),
        **cpu_fields(window, answered, peak_rss_mb),
        "driver_send_lag_p99_ms": percentile_ms(sorted(tally.send_lags_s), 0.99),
    }


def cpu_fields(
    window: tuple[ProcSample, ProcSample], requests: int, peak_rss_mb: float
) -> dict[str, Any]:
    """Per-request CPU of the target (and of the PG it logs to), and who else was busy."""
    start, end = window
    wall = end.wall_s - start.wall_s
    target = end.target_cpu_s - start.target_cpu_s
    nginx = end.nginx_cpu_s - start.nginx_cpu_s
    driver = end.driver_cpu_s - start.driver_cpu_s
    postgres = None
    if end.postgres_cpu_s is not None and start.postgres_cpu_s is not None:
        postgres = end.postgres_cpu_s - start.postgres_cpu_s
    ours = target + nginx + driver + (postgres or 0.0)
    return {
        "cpu_ms_per_req": _per_req_ms(target, requests),
        "postgres_cpu_ms_per_req": None if postgres is None else _per_req_ms(postgres, requests),
        # What a request costs with its log row written: the gateway's CPU plus PostgreSQL's.
        "cpu_ms_per_req_with_log": (
            None if postgres is None else _per_req_ms(target + postgres, requests)
        ),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "driver_cpu_share": round(driver / wall, 2),
        # Cores' worth of CPU used by other work on the machine during the step: noise.
        "background_cores": round((end.machine_busy_s - start.machine_busy_s - ours) / wall, 2),
    }


def _per_req_ms(cpu_s: float, requests: int) -> float | None:
    return round(cpu_s * 1000 / requests, 3) if requests else None


def add_overhead(steps: list[dict[str, Any]], direct: dict[float, dict[str, Any]]) -> None:
    """Added latency = target percentile - direct percentile at the same rate, same run."""
    for step in steps:
        base = direct.get(step["offered_rps"])
        base = base if base and base["valid"] else None
        for key in ("p50", "p99", "p999"):
            mine, theirs = step[f"{key}_ms"], base and base[f"{key}_ms"]
            added = None if mine is None or theirs is None else round(mine - theirs, 3)
            step[f"added_{key}_ms"] = added


def target_summary(all_steps: list[dict[str, Any]]) -> dict[str, Any]:
    steps = [s for s in all_steps if s["valid"]]  # a held-up driver says nothing of the target
    clean = [s["offered_rps"] for s in steps if s["sustained"]]
    failing = [s["offered_rps"] for s in steps if not s["sustained"]]
    return {
        "highest_error_free_rps": max(clean, default=None),
        "lowest_failing_rps": min(failing, default=None),
        "max_achieved_rps": max((s["achieved_rps"] for s in steps), default=None),
        "peak_rss_mb": max((s["peak_rss_mb"] for s in all_steps), default=None),
        "invalid_rates_rps": [s["offered_rps"] for s in all_steps if not s["valid"]],
    }
