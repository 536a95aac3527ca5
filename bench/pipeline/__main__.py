"""`python -m bench.pipeline [--smoke] [--parts overhead,storm,scaling] ...`: see the package's
docstring (bench/pipeline/__init__.py) for what each part measures."""

import argparse
import asyncio
import json
import os
import shlex
import sys
import tempfile
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.machine import describe
from bench.pipeline import REPO_ROOT
from bench.pipeline.bed import start_bed
from bench.pipeline.limit import Engine, limit, limit_profile
from bench.pipeline.parts import overhead, scaling, storm
from bench.pipeline.report import lines
from tests.faults.rig import REAL_CHAT

PARTS = {"overhead": overhead, "storm": storm, "scaling": scaling, "limit": limit}
SMOKE = {"docs": 120, "storm_docs": 40, "scale_docs": 60, "replicas": [1, 2],
         "ceiling_rows": 200, "limit_docs": 6, "raw_docs": 6, "raw_concurrency": [3]}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__)
    ints = lambda text: [int(x) for x in text.split(",")]  # noqa: E731
    parser.add_argument("--parts", default="overhead,storm,scaling,limit")
    parser.add_argument("--docs", type=int, default=20_000, help="overhead: documents fed")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="offered documents/s (0: as fast as the ingest API takes them)",
    )
    parser.add_argument("--batch", type=int, default=50, help="documents per ingest request")
    parser.add_argument("--storm-docs", type=int, default=1_000)
    parser.add_argument("--scale-docs", type=int, default=4_000)
    parser.add_argument("--replicas", type=ints, default=[1, 2, 4])
    parser.add_argument(
        "--ceiling-rows",
        type=int,
        default=3_000,
        help="rows inserted to measure the store's HNSW write ceiling",
    )
    parser.add_argument("--limit-docs", type=int, default=240, help="limit: pipeline documents")
    parser.add_argument("--raw-docs", type=int, default=96, help="limit: requests per level")
    parser.add_argument("--raw-concurrency", type=ints, default=[8, 16, 32, 64])
    parser.add_argument(
        "--chat-url",
        default=None,
        help="limit: a running vLLM chat server (e.g. `make vllm-up`'s); unset: a private "
        "one is started for the part",
    )
    parser.add_argument(
        "--timeout", type=float, default=1_800.0, help="seconds a part may wait for the store"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="py-spy every Python service while each part feeds; raw stacks "
        "and a summary of the top frames go here (and into the JSON)",
    )
    parser.add_argument("--smoke", action="store_true", help="every part at a tiny size")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench/results/pipeline.json")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    args.parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    return args


def recorded(args: argparse.Namespace) -> dict[str, Any]:
    """The arguments as the JSON keeps them (paths as text; the command line is kept apart)."""
    skip = {"argv", "engine"}
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k not in skip}


async def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """Start the bed, run the parts in order, stop everything; the results."""
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "-m", "bench.pipeline", *args.argv]),
        "machine": describe(),
        "args": recorded(args),
    }
    async with AsyncExitStack() as stack:
        extra = None
        if "limit" in args.parts:
            args.engine = Engine.choose(root, args.chat_url)
            stack.callback(args.engine.stop)
            extra = {REAL_CHAT: limit_profile(args.engine.url, args.engine.model)}
        rig = await start_bed(root, stack, extra_profiles=extra)
        result["startup_s"] = rig.startup_s
        for part in args.parts:
            print(f"{part} ...", flush=True)
            result[part] = await PARTS[part](rig, args)
            save(args.out, result)  # a later part that fails keeps this one's numbers
    result["machine"]["loadavg_at_end"] = os.getloadavg()
    return result


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="sift-bench-pipeline-") as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    print("\n".join(lines(result)))
    save(args.out, result)
    print(f"\nwrote {args.out}")


def save(out: Path, result: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
