"""What the driver sends to: nginx itself (`direct`) or a gateway started in front of it."""

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scripts.processes import Child, ChildExited, free_port

from . import REPO_ROOT
from .load import CHAT_BODY
from .upstream import Upstream

JSON_HEADERS = {"Content-Type": "application/json"}
READY_TIMEOUT_S = 180.0  # the first start of Sift may create the embedded PostgreSQL


class TargetUnavailable(RuntimeError):
    """The target could not be installed or started; the run goes on without it."""


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    headers: dict[str, str]
    child: Child
    versions: dict[str, str] = field(default_factory=dict)


def direct(upstream: Upstream) -> Target:
    url = f"{upstream.base_url}/v1/chat/completions"
    return Target("direct", url, JSON_HEADERS, upstream.child)


def pinned(command: list[str], cpu: int | None) -> list[str]:
    return command if cpu is None else ["taskset", "-c", str(cpu), *command]


def start_ready(
    name: str,
    command: Sequence[str],
    workdir: Path,
    ready_url: str,
    env: Mapping[str, str] | None = None,
    unset: tuple[str, ...] = (),
) -> Child:
    """Start a gateway in a session of its own and wait until `ready_url` answers 200; stopped
    again and TargetUnavailable when it does not."""
    child_env = {k: v for k, v in os.environ.items() if k not in unset} | dict(env or {})
    child = Child(name, command, workdir / f"{name}.log", env=child_env, cwd=REPO_ROOT)
    child.start()
    try:
        child.wait_ready(ready_url, READY_TIMEOUT_S)
    except BaseException as exc:  # Ctrl-C included: nothing started here is left running
        child.stop()
        if isinstance(exc, ChildExited | TimeoutError):
            raise TargetUnavailable(str(exc)) from exc
        raise
    return child


def start_sift(name: str, workdir: Path, upstream: Upstream, cpu: int | None) -> Target:
    """`python -m sift_gateway` with the mock as its only replica; `sift-nolog` without the
    request log."""
    if importlib.util.find_spec("sift_gateway") is None:
        raise TargetUnavailable("package sift_gateway is not installed in this venv")
    if importlib.util.find_spec("sift_gateway.__main__") is None:
        raise TargetUnavailable("sift_gateway/__main__.py does not exist yet")
    profiles = workdir / "sift-profiles.yaml"
    profiles.write_text(f"""aliases: {{chat: mock}}
profiles:
  mock:
    kind: chat
    served_model: mock-model
    replicas: ["{upstream.base_url}"]
    max_in_flight_per_replica: 1024
    max_queue_wait_s: 5
""")
    port = free_port()
    env = {
        "SIFT_GATEWAY_HOST": "127.0.0.1",
        "SIFT_GATEWAY_PORT": str(port),
        "SIFT_GATEWAY_PROFILES": str(profiles),
    }
    if name == "sift-nolog":
        env["SIFT_GATEWAY_REQUEST_LOG"] = "false"
    else:
        # The request log needs its table: migrate the store (embedded unless configured).
        sift_db = Path(sys.executable).with_name("sift-db")
        subprocess.run([str(sift_db), "upgrade"], check=True, capture_output=True)
    base = f"http://127.0.0.1:{port}"
    command = pinned([sys.executable, "-m", "sift_gateway"], cpu)
    child = start_ready(name, command, workdir, f"{base}/health/live", env)
    versions = {"sift-gateway": importlib.metadata.version("sift-gateway")}
    return Target(name, f"{base}/v1/chat/completions", JSON_HEADERS, child, versions)


def probe(target: Target) -> None:
    """One request before measuring, so a misconfigured target fails with its answer."""
    request = urllib.request.Request(target.url, CHAT_BODY, target.headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            body = json.loads(resp.read())
    except (OSError, ValueError) as exc:
        detail = exc.read()[:500] if isinstance(exc, urllib.error.HTTPError) else b""
        raise TargetUnavailable(f"probe request failed: {exc} {detail!r}") from exc
    if not body.get("choices"):
        raise TargetUnavailable(f"probe answer has no choices: {str(body)[:300]}")
