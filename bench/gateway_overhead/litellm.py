"""LiteLLM proxy as a target: its own cached venv (not a project dependency), one worker, no
database, the mock as its only model."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from scripts.processes import free_port

from .targets import JSON_HEADERS, Target, TargetUnavailable, pinned, start_ready
from .upstream import Upstream

# 1.108.0 is the newest release whose `proxy` extra resolves from PyPI as mirrored here: from
# 1.108.10 on it pins `.post` builds of litellm-proxy-extras / litellm-enterprise (and from
# 1.110 a `litellm-proxy` package) that the index does not serve.
LITELLM_VERSION = "1.108.0"
LITELLM_KEY = "sk-sift-bench"
QUIET_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"level": "WARNING", "handlers": ["stderr"]},
}


def start_litellm(workdir: Path, upstream: Upstream, cpu: int | None) -> Target:
    venv = litellm_venv()
    config = workdir / "litellm.yaml"
    config.write_text(f"""model_list:
  - model_name: chat
    litellm_params:
      model: openai/mock-model
      api_base: {upstream.base_url}/v1
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
    command = [str(venv / "bin" / "litellm"), "--config", str(config)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    command += ["--log_config", str(log_config)]
    base = f"http://127.0.0.1:{port}"
    # No DATABASE_URL at all: an empty one is rejected, and a real one would add a database.
    child = start_ready(
        "litellm",
        pinned(command, cpu),
        workdir,
        f"{base}/health/liveliness",
        env,
        unset=("DATABASE_URL",),
    )
    headers = {**JSON_HEADERS, "Authorization": f"Bearer {LITELLM_KEY}"}
    versions = {"litellm": litellm_version(venv)}
    return Target("litellm", f"{base}/v1/chat/completions", headers, child, versions)


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
