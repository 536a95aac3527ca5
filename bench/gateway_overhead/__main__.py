"""What the llm-gateway adds on top of a zero-delay upstream, next to going direct and LiteLLM.

`python -m bench.gateway_overhead --help` from the repository root; method and JSON fields in
bench/README.md.
"""

import argparse
import json
import os
import signal
import tempfile
from pathlib import Path

from . import REPO_ROOT
from .report import print_report
from .runner import ALL_TARGETS, run

DEFAULT_RATES = (100, 250, 500, 1_000, 1_500, 2_000)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gateway_overhead", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument("--rates", default=",".join(map(str, DEFAULT_RATES)),
                        help="offered rates in requests/s, comma separated")  # fmt: skip
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per step")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument("--targets", default="direct,sift,litellm",
                        help=f"comma separated, from {','.join(ALL_TARGETS)}")  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "bench/results/gateway_overhead.json"
    )
    parser.add_argument("--max-in-flight", type=int, default=256)
    parser.add_argument("--timeout", type=float, default=5.0, help="per request, seconds")
    parser.add_argument("--retries", type=int, default=2, help="re-runs of an invalid step")
    parser.add_argument("--max-driver-lag-ms", type=float, default=10.0,
                        help="a step whose p99 send lag is above this is invalid")  # fmt: skip
    parser.add_argument("--driver-cpu", type=int, default=0)
    parser.add_argument("--gateway-cpu", type=int, default=1)
    args = parser.parse_args()
    args.rates = [float(r) for r in args.rates.split(",")]
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(args.targets) - set(ALL_TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    if (os.cpu_count() or 1) < 2:  # nothing to separate on one core
        args.driver_cpu = args.gateway_cpu = None
    return args


def _interrupt(signum: int, _frame: object) -> None:
    # Raised wherever we are, so every `finally` stops what it started. Also for SIGINT:
    # asyncio.Runner's own handler only cancels the step, which the run would outlive.
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main() -> None:
    args = parse_args()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    if args.driver_cpu is not None:
        os.sched_setaffinity(0, {args.driver_cpu})
    try:
        with tempfile.TemporaryDirectory(prefix="sift-bench-") as tmp:
            results = run(args, Path(tmp))
    except KeyboardInterrupt as exc:
        raise SystemExit(f"interrupted ({exc}); everything started here was stopped") from None
    print_report(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
