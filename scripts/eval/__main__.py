"""`make eval`: `sift eval` on the default CPU runtime, with the stack it needs started here.

Starts (or reuses) the embedded PostgreSQL + pgvector with a fresh database, the local vLLM
servers, and a gateway and an archiver in a namespace of their own; runs `sift eval` with the
arms below (or EVAL_ARGS), writes bench/results/eval.json, and stops what it started.

The default arms show what each change moved: the profiles before this work (their entity
metrics with and without the checks come from the same answers), the profiles with worked
examples added, and the profiles as shipped.
"""

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

from scripts.demo import run
from scripts.demo.pipeline import Pipeline
from sift_common.messaging.teardown import delete_topology

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "results" / "eval.json"
ARMS = (  # the last arm's analyses are the ones stored for the search part
    "name=before: v2 prompts (numeric scores),profiles=eval/profiles/baseline.yaml,checks=off",
    "name=v3 + worked examples,examples=eval/profiles/examples.yaml",
    "name=v3: rubric labels + entity checks (as shipped)",
)


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def main(argv: list[str]) -> int:
    run.check_brokers()
    database_url, started_postgres = run.start_store(say)
    started_vllm = run.start_vllm(say)
    namespace = f"eval-{uuid.uuid4().hex[:8]}."
    pipeline = Pipeline(
        {"SIFT_DATABASE_URL": database_url, "SIFT_NAMESPACE": namespace},
        ROOT / ".sift" / "eval-logs",
    )
    try:
        gateway = pipeline.add("gateway", {"SIFT_GATEWAY_SHUTDOWN_TIMEOUT_S": "10"})
        archiver = pipeline.add("archiver", {"SIFT_GATEWAY_URL": gateway.url})
        for name in ("gateway", "archiver"):
            say(f"starting sift-{name} on :{pipeline.services[name].port}")
            pipeline.start(name)
            pipeline.wait_ready(name)
        args = argv or [arg for spec in ARMS for arg in ("--arm", spec)]
        out = OUT.relative_to(ROOT)  # relative: the JSON records the command
        command = [str(Path(sys.executable).parent / "sift"), "eval", "--out", str(out), *args]
        env = {
            **os.environ,
            "SIFT_GATEWAY_URL": gateway.url,
            "SIFT_ARCHIVER_URL": archiver.url,
            "SIFT_NAMESPACE": namespace,
        }
        say("sift eval " + " ".join(args))
        return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode  # noqa: S603
    finally:
        pipeline.stop_all()
        asyncio.run(delete_topology(run.RABBIT_URL, *run.topologies(namespace)))
        run.stop_vllm(started_vllm)
        if started_postgres:
            run.stop_store()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
