"""The two servers: what each runs (command line, environment, cores, dtype) and how to ask it
whether it serves (its model listed, a real request answered)."""

import json
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.local_vllm.layout import (
    STATE_DIR,
    chat_model_dir,
    embed_model_dir,
    runtime_dir,
    venv_python,
)
from scripts.processes import LOCALHOST


@dataclass(frozen=True)
class Server:
    name: str
    model: str
    port: int
    cpus: str
    extra_args: tuple[str, ...]

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

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
    return "bfloat16" if cpu_flags() & {"avx512_bf16", "amx_bf16"} else "float32"


def cpu_flags() -> set[str]:
    """The CPU's feature flags, from /proc/cpuinfo (psutil does not report them); empty where
    there is no such file."""
    try:
        return set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return set()


def server_cmd(server: Server) -> list[str]:
    model = chat_model_dir() if server.name == "chat" else embed_model_dir()
    # `python -m`: the `vllm` console script fails for the vllm-cpu distribution. This entry
    # point still takes `--model` (a positional model is parsed but not used: `vllm serve`,
    # the official image's entry point, is what takes it positionally).
    return [
        str(venv_python()), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model), "--served-model-name", server.model,
        "--host", LOCALHOST, "--port", str(server.port),
        "--dtype", serving_dtype(),
        *server.extra_args,
    ]  # fmt: skip


# ---------------------------------------------------------------- asking a server


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
