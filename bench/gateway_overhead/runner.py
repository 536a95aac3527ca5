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
    nginx = ensure_nginx()
    results: dict[str, Any] = {
        "machine": machine_info(nginx),
        "config": config_info(args),
        "targets": {},
        "verdicts": [],
    }
    upstream = start_upstream(nginx, workdir)
    try:
        bench = Bench(args, workdir, upstream)
        # direct first: every other target is compared with it.
        for name in [t for t in ALL_TARGETS if t == "direct" or t in args.targets]:
            results["targets"][name] = run_target(name, bench)
    finally:
        upstream.child.stop()
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    results["verdicts"] = all_verdicts(results["targets"])
    return results


def run_target(name: str, bench: Bench) -> dict[str, Any]:
    print(f"\n==> {name}", flush=True)
    steps: list[dict[str, Any]] = []
    result: dict[str, Any] = {"name": name, "status": "ok", "steps": steps}
    target = None
    try:
        target = start_target(name, bench)
        result["versions"] = target.versions
        probe(target)
        measure(target, bench, steps)
    except TargetUnavailable as exc:
        result["status"] = "not available" if not steps else "failed"
        result["reason"] = str(exc)
        print(f"{name}: {result['status']} ({exc})", flush=True)
    finally:
        if target is not None and target.child is not bench.upstream.child:
            target.child.stop()
    if steps:
        result["summary"] = target_summary(steps)
    return result


def start_target(name: str, bench: Bench) -> Target:
    if name == "direct":
        return direct(bench.upstream)
    if name == "litellm":
        return start_litellm(bench.workdir, bench.upstream, bench.args.gateway_cpu)
    return start_sift(name, bench.workdir, bench.upstream, bench.args.gateway_cpu)


def measure(target: Target, bench: Bench, steps: list[dict[str, Any]]) -> None:
    """Run each rate against one target, appending each step as it completes."""
    args = bench.args
    nginx = bench.upstream.child
    watched = Watched(
        target_pid=target.child.pid,
        nginx_pid=None if target.child is nginx else nginx.pid,
        postmaster_pid=embedded_postmaster() if target.name.startswith("sift") else None,
    )
    for rate in args.rates:
        load = Load(target.url, target.headers, rate, args.warmup, args.duration,
                    args.max_in_flight, args.timeout)  # fmt: skip
        step = run_step(target.name, load, watched, args)
        if target.name == "direct":
            bench.direct[rate] = step
        else:
            add_overhead([step], bench.direct)
        steps.append(step)
        print(format_row(step), flush=True)
        if not target.child.alive():
            raise TargetUnavailable(
                f"{target.name} died during the run:\n{target.child.log_tail()}"
            )


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
