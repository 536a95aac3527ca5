"""What the llm-gateway adds on top of a zero-delay upstream, next to going direct and LiteLLM.

Everything is set up here, idempotently, and torn down on exit (Ctrl-C and SIGTERM included):

* nginx (Debian package; installed with apt-get if missing) serves a canned OpenAI chat
  completion from a temp dir: the upstream that costs nothing, so what remains is the gateway.
* targets: `direct` (the driver talks to nginx), `sift` (`python -m sift_gateway`, request log
  as configured by default), `sift-nolog` (`SIFT_GATEWAY_REQUEST_LOG=false`), `litellm`
  (LiteLLM proxy in its own venv under ~/.cache/sift/bench, one worker, no database).
* the load is open loop and constant rate, as wrk2 does it: request i is due at t0 + i/rate and
  its latency is counted from that *intended* time. A target that falls behind therefore shows
  its queueing in the percentiles instead of quietly lowering the send rate (coordinated
  omission). In-flight requests are capped; a request that finds the cap full is not sent and
  is counted as an error (`shed_in_flight_cap`), never dropped silently.

CPU pinning (2 cores): the driver (this process) and nginx share core 0 (`--driver-cpu`), the
gateway under test has core 1 (`--gateway-cpu`) to itself. nginx costs a few microseconds per
request, so it disturbs the driver far less than it would disturb the gateway; and `direct`
then measures exactly the driver + nginx path that every other target also contains.

Gateway CPU per request comes from /proc/<pid>/stat (utime+stime) over the measured window,
peak RSS from VmHWM, both summed over the target's session (LiteLLM may fork). The shared
embedded PostgreSQL that Sift's request log writes to runs in its own session; its CPU is
reported separately (all `postgres` processes on the machine, so other users' load shows up).
"""

import argparse
import asyncio
import contextlib
import gc
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RATES = (100, 250, 500, 1_000, 1_500, 2_000)
ALL_TARGETS = ("direct", "sift", "sift-nolog", "litellm")
# 1.108.0 is the newest release whose `proxy` extra resolves from PyPI as mirrored here: from
# 1.108.10 on it pins `.post` builds of litellm-proxy-extras / litellm-enterprise (and from
# 1.110 a `litellm-proxy` package) that the index does not serve.
LITELLM_VERSION = "1.108.0"
LITELLM_KEY = "sk-sift-bench"
CHAT_BODY = json.dumps(
    {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
).encode()
CANNED_COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "mock-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18},
    },
    separators=(",", ":"),
)
CANNED_MODELS = json.dumps(
    {"object": "list", "data": [{"id": "mock-model", "object": "model", "owned_by": "bench"}]},
    separators=(",", ":"),
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
DRIVER_LAG_WARN_MS = 2.0
SUSTAINED_SHARE = 0.95


class TargetUnavailable(RuntimeError):
    """The target could not be installed or started; the run goes on without it."""


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def start_child(
    name: str,
    argv: list[str],
    workdir: Path,
    env: dict[str, str] | None = None,
    unset: tuple[str, ...] = (),
) -> Child:
    log = workdir / f"{name}.log"
    child_env = {k: v for k, v in os.environ.items() if k not in unset} | (env or {})
    with log.open("wb") as out:
        # A session of its own: Ctrl-C in the terminal does not reach it (we stop it, in
        # order), and killpg reaches whatever it forks.
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_env,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
    return Child(name, proc, log)


def stop_child(child: Child) -> None:
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        if child.proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(wait_s)
    # Workers the leader left behind are still in its process group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.proc.pid, signal.SIGKILL)


def wait_healthy(child: Child, url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise TargetUnavailable(
                f"{child.name} exited with {child.proc.returncode}:\n{child.log_tail()}"
            )
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1.0) as resp:
            if resp.status == 200:
                return
        time.sleep(0.2)
    raise TargetUnavailable(f"{child.name} not healthy after {timeout_s:.0f}s:\n{child.log_tail()}")


def pinned(argv: list[str], cpu: int | None) -> list[str]:
    return argv if cpu is None else ["taskset", "-c", str(cpu), *argv]


# --------------------------------------------------------------------------- /proc


@dataclass(frozen=True)
class ProcSample:
    """Cumulative CPU seconds (and peak RSS) at one instant; steps subtract two of these."""

    wall_s: float
    target_cpu_s: float
    target_rss_mb: float
    nginx_cpu_s: float
    postgres_cpu_s: float | None
    driver_cpu_s: float
    machine_busy_s: float


@dataclass(frozen=True)
class Watched:
    """Which processes a sample covers: sessions (we start each child in its own) and PG."""

    target_session: int
    nginx_session: int
    postmaster: int | None


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may contain spaces and parentheses; the fields after the last ')' do not.
    # Index 0 here is stat field 3 (state): ppid 1, session 3, utime 11, stime 12.
    return raw[raw.rindex(")") + 2 :].split()


def _vm_hwm_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _machine_busy_s() -> float:
    # First line of /proc/stat: all cores' jiffies; busy is everything but idle and iowait.
    jiffies = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(jiffies) - jiffies[3] - jiffies[4]) / CLOCK_TICKS


def embedded_postmaster() -> int | None:
    """PID of the embedded PostgreSQL that Sift's request log uses, if it runs."""
    pid_file = REPO_ROOT / ".sift" / "pgdata" / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(pid_file.read_text().split()[0])
    return None


def sample(watched: Watched) -> ProcSample:
    target = rss = nginx = postgres = 0.0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or (fields := _stat_fields(int(entry.name))) is None:
            continue
        cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        session, pid = int(fields[3]), int(entry.name)
        if session == watched.target_session:
            target += cpu
            rss += _vm_hwm_mb(pid)
        elif session == watched.nginx_session:
            nginx += cpu
        elif watched.postmaster in (pid, int(fields[1])):
            postgres += cpu
    own = os.times()
    return ProcSample(
        wall_s=time.perf_counter(),
        target_cpu_s=target,
        target_rss_mb=rss,
        nginx_cpu_s=nginx,
        postgres_cpu_s=postgres if watched.postmaster else None,
        driver_cpu_s=own.user + own.system,
        machine_busy_s=_machine_busy_s(),
    )


# --------------------------------------------------------------------------- driver


@dataclass
class Tally:
    latencies_s: list[float] = field(default_factory=list)
    send_lags_s: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    scheduled: int = 0
    window_start: float = 0.0
    last_done: float = 0.0


@dataclass(frozen=True)
class Load:
    url: str
    headers: dict[str, str]
    rate: float
    warmup_s: float
    duration_s: float
    max_in_flight: int
    timeout_s: float


async def _one(session: aiohttp.ClientSession, load: Load, due: float, tally: Tally | None) -> None:
    sent = time.perf_counter()
    try:
        async with session.post(load.url, data=CHAT_BODY, headers=load.headers) as resp:
            await resp.read()
            outcome = "ok" if resp.status == 200 else f"http_{resp.status}"
    except TimeoutError:
        outcome = "timeout"
    except aiohttp.ClientError as exc:
        outcome = type(exc).__name__
    if tally is None:  # warm-up request
        return
    done = time.perf_counter()
    tally.send_lags_s.append(sent - due)
    tally.last_done = max(tally.last_done, done)
    if outcome == "ok":
        tally.latencies_s.append(done - due)  # from the intended time: queueing included
    else:
        tally.errors[outcome] += 1


async def drive(load: Load, on_window: Callable[[], None]) -> Tally:
    """Send `rate` requests a second for warm-up + duration; tally the measured part."""
    tally = Tally()
    interval = 1.0 / load.rate
    n_warm = round(load.warmup_s * load.rate)
    n_total = n_warm + round(load.duration_s * load.rate)
    connector = aiohttp.TCPConnector(limit=load.max_in_flight, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=load.timeout_s)
    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter() + 0.05
        for i in range(n_total):
            due = start + i * interval
            if i == n_warm:
                on_window()
                tally.window_start = due
            if (delay := due - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            measured = tally if i >= n_warm else None
            if measured is not None:
                tally.scheduled += 1
            if len(tasks) >= load.max_in_flight:
                if measured is not None:
                    tally.errors["shed_in_flight_cap"] += 1
                continue
            task = asyncio.create_task(_one(session, load, due, measured))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks)
    return tally


def run_load(load: Load, on_window: Callable[[], None]) -> Tally:
    """Run one step on a fresh uvloop."""
    # A collection pause in the driver would be charged to the target; the step allocates
    # little, so collect now and keep the collector off until it is over.
    gc.collect()
    gc.disable()
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(drive(load, on_window))
    finally:
        gc.enable()


# --------------------------------------------------------------------------- results


def percentile_ms(sorted_s: list[float], q: float) -> float | None:
    if not sorted_s:
        return None
    rank = max(1, math.ceil(q * len(sorted_s)))  # nearest rank
    return round(sorted_s[rank - 1] * 1000, 3)


def summarise(
    name: str, load: Load, tally: Tally, window: tuple[ProcSample, ProcSample]
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
        **cpu_fields(name, window, answered),
        "driver_send_lag_p99_ms": percentile_ms(sorted(tally.send_lags_s), 0.99),
    }


def cpu_fields(name: str, window: tuple[ProcSample, ProcSample], requests: int) -> dict[str, Any]:
    """Per-request CPU of the target (and of the PG it logs to), and who else was busy."""
    start, end = window
    wall = end.wall_s - start.wall_s
    target = end.target_cpu_s - start.target_cpu_s
    nginx = 0.0 if name == "direct" else end.nginx_cpu_s - start.nginx_cpu_s
    driver = end.driver_cpu_s - start.driver_cpu_s
    postgres = None
    if end.postgres_cpu_s is not None and start.postgres_cpu_s is not None:
        postgres = end.postgres_cpu_s - start.postgres_cpu_s
    ours = target + nginx + driver + (postgres or 0.0)
    return {
        "cpu_ms_per_req": _per_req_ms(target, requests),
        "postgres_cpu_ms_per_req": None if postgres is None else _per_req_ms(postgres, requests),
        "peak_rss_mb": round(end.target_rss_mb, 1),
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


def _at(steps: list[dict[str, Any]], rate: float) -> dict[str, Any] | None:
    return next((s for s in steps if s["offered_rps"] == rate and s["valid"]), None)


def _check(name: str, measured: Any, limit: str, ok: bool | None) -> dict[str, Any]:
    return {"check": name, "measured": measured, "limit": limit, "pass": ok}


def sift_verdicts(name: str, result: dict[str, Any], litellm: dict[str, Any] | None) -> list[Any]:
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


# --------------------------------------------------------------------------- setup


def ensure_nginx() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("nginx is missing; install it with: sudo apt-get install -y nginx")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "nginx"]
    print(f"==> nginx is missing: {' '.join(install)}", flush=True)
    if subprocess.run(install, env=env, check=False).returncode != 0:
        print("==> apt-get update, then install again", flush=True)
        subprocess.run(["apt-get", "update"], env=env, check=True)
        subprocess.run(install, env=env, check=True)
    return shutil.which("nginx", path="/usr/sbin:/usr/local/sbin:/usr/bin") or "nginx"


def nginx_conf(workdir: Path, port: int) -> Path:
    temp = workdir / "nginx-temp"
    temp.mkdir(exist_ok=True)
    paths = "\n".join(
        f"    {kind}_temp_path {temp / kind};" for kind in ("client_body", "proxy", "fastcgi")
    )
    conf = workdir / "nginx.conf"
    # `return` answers without reading a file; keepalive_requests is raised so the default
    # (1000) does not make every client reconnect mid-step.
    conf.write_text(f"""worker_processes 1;
pid {workdir / "nginx.pid"};
error_log {workdir / "nginx-error.log"} warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
{paths}
    uwsgi_temp_path {temp / "uwsgi"};
    scgi_temp_path {temp / "scgi"};
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    server {{
        listen 127.0.0.1:{port};
        default_type application/json;
        location = /v1/chat/completions {{ return 200 '{CANNED_COMPLETION}'; }}
        location = /v1/models {{ return 200 '{CANNED_MODELS}'; }}
        location / {{ return 404 '{{"error":{{"message":"not found"}}}}'; }}
    }}
}}
""")
    return conf


def litellm_venv() -> Path:
    """LiteLLM's own venv, cached per user; a marker file says the install finished."""
    venv = Path.home() / ".cache" / "sift" / "bench" / f"litellm-{LITELLM_VERSION}"
    marker = venv / ".sift-complete"
    if marker.exists():
        return venv
    if venv.exists():  # left half-built by an interrupted run
        shutil.rmtree(venv)
    spec = f"litellm[proxy]=={LITELLM_VERSION}"
    print(f"==> creating {venv} and installing {spec} (a few minutes, once)", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", spec]
        subprocess.run(pip, check=True)
    except subprocess.CalledProcessError as exc:
        raise TargetUnavailable(f"installing {spec} failed: {exc}") from exc
    marker.touch()
    return venv


def litellm_version(venv: Path) -> str:
    probe = "import importlib.metadata as m; print(m.version('litellm'))"
    python = str(venv / "bin" / "python")
    return subprocess.run([python, "-c", probe], capture_output=True, text=True).stdout.strip()


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    headers: dict[str, str]
    child: Child
    versions: dict[str, str] = field(default_factory=dict)


JSON_HEADERS = {"Content-Type": "application/json"}
QUIET_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"level": "WARNING", "handlers": ["stderr"]},
}


def start_sift(name: str, workdir: Path, upstream: int, cpu: int | None) -> Target:
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
    replicas: ["http://127.0.0.1:{upstream}"]
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
    argv = pinned([sys.executable, "-m", "sift_gateway"], cpu)
    child = start_child(name, argv, workdir, env)
    base = f"http://127.0.0.1:{port}"
    target = Target(name, f"{base}/v1/chat/completions", JSON_HEADERS, child)
    # The first start may create the embedded PostgreSQL: allow for that.
    wait_healthy(child, f"{base}/health/live", timeout_s=180)
    version = importlib.metadata.version("sift-gateway")
    return Target(target.name, target.url, target.headers, child, {"sift-gateway": version})


def start_litellm(workdir: Path, upstream: int, cpu: int | None) -> Target:
    venv = litellm_venv()
    config = workdir / "litellm.yaml"
    config.write_text(f"""model_list:
  - model_name: chat
    litellm_params:
      model: openai/mock-model
      api_base: http://127.0.0.1:{upstream}/v1
      api_key: not-used
litellm_settings:
  telemetry: false
  set_verbose: false
  turn_off_message_logging: true
""")
    # Warnings only: uvicorn's per-request access log would be charged to LiteLLM.
    log_config = workdir / "litellm-logging.json"
    log_config.write_text(json.dumps(QUIET_LOGGING))
    port = free_port()
    env = {
        "LITELLM_MASTER_KEY": LITELLM_KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the cost map: we are offline
        "LITELLM_LOG": "ERROR",
    }
    argv = [str(venv / "bin" / "litellm"), "--config", str(config)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    argv += ["--log_config", str(log_config)]
    # No DATABASE_URL at all: an empty one is rejected, and a real one would add a database.
    child = start_child("litellm", pinned(argv, cpu), workdir, env, unset=("DATABASE_URL",))
    base = f"http://127.0.0.1:{port}"
    wait_healthy(child, f"{base}/health/liveliness", timeout_s=180)
    headers = {**JSON_HEADERS, "Authorization": f"Bearer {LITELLM_KEY}"}
    versions = {"litellm": litellm_version(venv)}
    return Target("litellm", f"{base}/v1/chat/completions", headers, child, versions)


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


@dataclass
class Bench:
    """What every target's run shares: options, the temp dir, the mock, the baseline."""

    args: argparse.Namespace
    workdir: Path
    nginx: Child
    port: int
    direct: dict[float, dict[str, Any]] = field(default_factory=dict)


def _append_sample(into: list[ProcSample], watched: Watched) -> None:
    into.append(sample(watched))


def measure(target: Target, bench: Bench, steps: list[dict[str, Any]], rates: list[float]) -> None:
    """Run each rate against one target, appending each step as it completes."""
    args = bench.args
    watched = Watched(
        target_session=os.getsid(target.child.proc.pid),
        nginx_session=os.getsid(bench.nginx.proc.pid),
        postmaster=embedded_postmaster() if target.name.startswith("sift") else None,
    )
    for rate in rates:
        load = Load(target.url, target.headers, rate, args.warmup, args.duration,
                    args.max_in_flight, args.timeout)  # fmt: skip
        for attempt in range(1, args.retries + 2):
            window: list[ProcSample] = []  # filled when the first measured request is due
            tally = run_load(load, partial(_append_sample, window, watched))
            step = summarise(target.name, load, tally, (window[0], sample(watched)))
            # A driver that was itself held up (neighbours on its core) sends its backlog in
            # one burst: latency and sheds would be charged to the target. Measure again.
            step["attempts"] = attempt
            step["valid"] = step["driver_send_lag_p99_ms"] <= args.max_driver_lag_ms
            if step["valid"]:
                break
            print(format_row(step) + "  -> again", flush=True)
        if target.name == "direct":
            bench.direct[rate] = step
        else:
            add_overhead([step], bench.direct)
        steps.append(step)
        print(format_row(step), flush=True)
        if target.child.proc.poll() is not None:
            raise TargetUnavailable(
                f"{target.name} died during the run:\n{target.child.log_tail()}"
            )


# --------------------------------------------------------------------------- report

COLUMNS = (
    ("target", 10, "target"),
    ("offered", 7, "offered_rps"),
    ("achieved", 8, "achieved_rps"),
    ("p50", 7, "p50_ms"),
    ("p99", 7, "p99_ms"),
    ("p99.9", 7, "p999_ms"),
    ("+p50", 7, "added_p50_ms"),
    ("+p99", 7, "added_p99_ms"),
    ("+p99.9", 7, "added_p999_ms"),
    ("errors", 6, "errors"),
    ("cpu/req", 7, "cpu_ms_per_req"),
    ("rss MB", 6, "peak_rss_mb"),
    ("bg cores", 8, "background_cores"),
)


def format_row(step: dict[str, Any]) -> str:
    cells = []
    for _, width, key in COLUMNS:
        value = step.get(key)
        text = "-" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)
        if key == "offered_rps":
            text = f"{value:.0f}"
        cells.append(text.ljust(width) if key == "target" else text.rjust(width))
    lag = step.get("driver_send_lag_p99_ms")
    if step["errors"] == 0 and not step["sustained"]:
        cells.append("(fell behind: achieved < 95% of offered)")
    if not step.get("valid", True):
        cells.append(f"INVALID: driver held up, p99 send lag {lag:.0f} ms")
    elif lag is not None and lag > DRIVER_LAG_WARN_MS:
        cells.append(f"(p99 send lag {lag:.1f} ms)")
    return " ".join(cells)


def header() -> str:
    names = [name.ljust(w) if name == "target" else name.rjust(w) for name, w, _ in COLUMNS]
    units = (
        "latencies in ms from the intended send time; +x = added over direct; cpu/req in ms;"
        " bg cores = other work on the machine during the step"
    )
    return " ".join(names) + f"\n{units}"


def print_report(results: dict[str, Any]) -> None:
    print("\n" + header())
    for result in results["targets"].values():
        for step in result.get("steps", []):
            print(format_row(step))
        if result["status"] != "ok":
            print(f"{result['name']}: {result['status']} ({result.get('reason', '')})")
    print("\nhighest error-free rate (RPS) / max achieved (RPS) / peak RSS (MB):")
    for name, result in results["targets"].items():
        summary = result.get("summary")
        if summary:
            best, top = summary["highest_error_free_rps"], summary["max_achieved_rps"]
            print(f"  {name:<10} {best or 'none'} / {top} / {summary['peak_rss_mb']}")
    if results["verdicts"]:
        print("\ntargets:")
    for verdict in results["verdicts"]:
        mark = {True: "PASS", False: "FAIL", None: "n/a "}[verdict["pass"]]
        print(f"  {mark} {verdict['check']}: {verdict['measured']} (want {verdict['limit']})")


# --------------------------------------------------------------------------- main


def machine_info(nginx: str) -> dict[str, Any]:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    nginx_v = subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip()
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": nginx_v.rsplit("/", 1)[-1],
        "aiohttp": aiohttp.__version__,
        "uvloop": importlib.metadata.version("uvloop"),
        "loadavg_at_start": os.getloadavg(),
    }


def start_target(name: str, bench: Bench) -> Target:
    if name == "direct":
        url = f"http://127.0.0.1:{bench.port}/v1/chat/completions"
        return Target("direct", url, JSON_HEADERS, bench.nginx)
    if name == "litellm":
        return start_litellm(bench.workdir, bench.port, bench.args.gateway_cpu)
    return start_sift(name, bench.workdir, bench.port, bench.args.gateway_cpu)


def run_target(name: str, bench: Bench) -> dict[str, Any]:
    print(f"\n==> {name}", flush=True)
    steps: list[dict[str, Any]] = []
    result: dict[str, Any] = {"name": name, "status": "ok", "steps": steps}
    target = None
    try:
        target = start_target(name, bench)
        result["versions"] = target.versions
        probe(target)
        measure(target, bench, steps, bench.args.rates)
    except TargetUnavailable as exc:
        result["status"] = "not available" if not steps else "failed"
        result["reason"] = str(exc)
        print(f"{name}: {result['status']} ({exc})", flush=True)
    finally:
        if target is not None and target.child is not bench.nginx:
            stop_child(target.child)
    if steps:
        result["summary"] = target_summary(steps)
    return result


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    nginx_bin = ensure_nginx()
    port = free_port()
    conf = nginx_conf(workdir, port)
    argv = [nginx_bin, "-p", str(workdir), "-e", str(workdir / "nginx-error.log"), "-c", str(conf)]
    argv += ["-g", "daemon off;"]
    # nginx inherits this process's core (the driver's): see the module docstring.
    nginx = start_child("nginx", argv, workdir)
    results: dict[str, Any] = {
        "machine": machine_info(nginx_bin),
        "config": config_info(args),
        "targets": {},
        "verdicts": [],
    }
    try:
        wait_healthy(nginx, f"http://127.0.0.1:{port}/v1/models", timeout_s=10)
        bench = Bench(args, workdir, nginx, port)
        # direct first: every other target is compared with it.
        targets = [t for t in ALL_TARGETS if t == "direct" or t in args.targets]
        for name in targets:
            results["targets"][name] = run_target(name, bench)
    finally:
        stop_child(nginx)
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    results["verdicts"] = all_verdicts(results["targets"])
    return results


def all_verdicts(targets: dict[str, Any]) -> list[dict[str, Any]]:
    litellm = targets.get("litellm")
    litellm = litellm if litellm and litellm.get("summary") else None
    checks = []
    for name in ("sift", "sift-nolog"):
        if name in targets and targets[name].get("summary"):
            checks += sift_verdicts(name, targets[name], litellm)
    return checks


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


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
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
