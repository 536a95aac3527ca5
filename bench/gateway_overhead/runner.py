"""The whole run: the mock upstream, then each target in turn, every rate against it."""

import argparse
import importlib.metadata
import json
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from bench.machine import describe

from .litellm import start_litellm
from .load import CHAT_BODY, Load, run_load
from .measuring import PeakRss, ProcSample, Watched, embedded_postmaster, sample
from .report import format_row
from .results import add_overhead, summarise, target_summary
from .targets import Target, TargetUnavailable, direct, probe, start_sift
from .upstream import Upstream, ensure_nginx, nginx_version, start_upstream
from .verdicts import all_verdicts

ALL_TARGETS = ("direct", "sift", "sift-nolog", "litellm")


@dataclass
class Bench:
    """What every target's run shares: options, the temp dir, the mock, the baseline."""

    args: argparse.Namespace
    workdir: Path
    upstream: Upstream
    direct: dict[float, dict[str, Any]] = field(default_factory=dict)


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Every target started first, then the rates in turn, and within each rate every target
    one after another (the order rotating from rate to rate): whatever else the machine is
    doing at a moment hits all targets alike, and `direct` is measured next to the others."""
    nginx = ensure_nginx()
    results: dict[str, Any] = {
        "machine": machine_info(nginx),
        "config": config_info(args),
        "targets": {},
        "verdicts": [],
    }
    upstream = start_upstream(nginx, workdir)
    started: list[Started] = []
    try:
        bench = Bench(args, workdir, upstream)
        for name in [t for t in ALL_TARGETS if t == "direct" or t in args.targets]:
            result = results["targets"][name] = {"name": name, "status": "ok", "steps": []}
            if (target := start_measured(name, bench, result)) is not None:
                started.append(Started(target, result, watched(target, upstream)))
        for turn, rate in enumerate(args.rates):
            measure_rate(
                rate, started[turn % len(started) :] + started[: turn % len(started)], bench
            )
    finally:
        for each in started:
            if each.target.child is not upstream.child:
                each.target.child.stop()
        upstream.child.stop()
    for each in started:
        if each.result["steps"]:
            each.result["summary"] = target_summary(each.result["steps"])
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    results["verdicts"] = all_verdicts(results["targets"])
    return results


@dataclass
class Started:
    target: Target
    result: dict[str, Any]
    watched: Watched


def start_measured(name: str, bench: Bench, result: dict[str, Any]) -> Target | None:
    """The target started and probed, or None with the reason in its result."""
    print(f"==> starting {name}", flush=True)
    try:
        target = start_target(name, bench)
    except TargetUnavailable as exc:
        result.update(status="not available", reason=str(exc))
        print(f"{name}: not available ({exc})", flush=True)
        return None
    result["versions"] = target.versions
    try:
        probe(target)
    except TargetUnavailable as exc:
        result.update(status="not available", reason=str(exc))
        print(f"{name}: not available ({exc})", flush=True)
        if target.child is not bench.upstream.child:
            target.child.stop()
        return None
    return target


def start_target(name: str, bench: Bench) -> Target:
    if name == "direct":
        return direct(bench.upstream)
    if name == "litellm":
        return start_litellm(bench.workdir, bench.upstream, bench.args.gateway_cpu)
    return start_sift(name, bench.workdir, bench.upstream, bench.args.gateway_cpu)


def watched(target: Target, upstream: Upstream) -> Watched:
    return Watched(
        target_pid=target.child.pid,
        nginx_pid=None if target.child is upstream.child else upstream.child.pid,
        postmaster_pid=embedded_postmaster() if target.name.startswith("sift") else None,
    )


def measure_rate(rate: float, order: list[Started], bench: Bench) -> None:
    """One rate against every target still standing, in `order`; the added latency of each
    against `direct`'s step of this same round."""
    args = bench.args
    print(f"\n--- {rate:g} RPS: {', '.join(s.target.name for s in order)}", flush=True)
    steps: dict[str, dict[str, Any]] = {}
    for each in order:
        if each.result["status"] != "ok":
            continue
        target = each.target
        load = Load(target.url, target.headers, rate, args.warmup, args.duration,
                    args.max_in_flight, args.timeout)  # fmt: skip
        steps[target.name] = step = run_step(target.name, load, each.watched, args)
        each.result["steps"].append(step)
        if not target.child.alive():
            each.result.update(status="failed", reason=f"died during the run:\n"
                               f"{target.child.log_tail()}")  # fmt: skip
            print(f"{target.name}: died during the run", flush=True)
    if "direct" in steps:
        bench.direct[rate] = steps["direct"]
    add_overhead([step for name, step in steps.items() if name != "direct"], bench.direct)
    for step in steps.values():
        print(format_row(step), flush=True)


def run_step(name: str, load: Load, watched: Watched, args: argparse.Namespace) -> dict[str, Any]:
    """One rate; measured again while the driver itself was held up (up to --retries)."""
    for attempt in range(1, args.retries + 2):
        window: list[ProcSample] = []  # filled when the first measured request is due
        with PeakRss(watched.target_pid) as rss:
            tally = run_load(load, partial(_append_sample, window, watched))
            end = sample(watched)
        step = summarise(name, load, tally, (window[0], end), rss.peak_mb)
        # A driver that was itself held up (neighbours on its core) sends its backlog in
        # one burst: latency and sheds would be charged to the target. Measure again.
        step["attempts"] = attempt
        step["valid"] = step["driver_send_lag_p99_ms"] <= args.max_driver_lag_ms
        if step["valid"]:
            break
        print(format_row(step) + "  -> again", flush=True)
    return step


def _append_sample(into: list[ProcSample], watched: Watched) -> None:
    into.append(sample(watched))


def machine_info(nginx: str) -> dict[str, Any]:
    return describe(
        nginx=nginx_version(nginx),
        aiohttp=aiohttp.__version__,
        uvloop=importlib.metadata.version("uvloop"),
    )


def config_info(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "rates_rps": args.rates,
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "max_in_flight": args.max_in_flight,
        "timeout_s": args.timeout,
        "retries": args.retries,
        "max_driver_lag_ms": args.max_driver_lag_ms,
        "driver_and_nginx_cpu": args.driver_cpu,
        "gateway_cpu": args.gateway_cpu,
        "request_body": json.loads(CHAT_BODY),
    }
