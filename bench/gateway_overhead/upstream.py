"""The mock upstream: nginx answering every chat completion with one canned body, at no cost."""

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from scripts.processes import Child, free_port

from . import REPO_ROOT

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
SBIN = "/usr/sbin:/usr/local/sbin"


@dataclass(frozen=True)
class Upstream:
    child: Child
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def ensure_nginx() -> str:
    """The nginx binary; installed with apt-get when missing (root only)."""
    found = shutil.which("nginx") or shutil.which("nginx", path=SBIN)
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
    return shutil.which("nginx", path=f"{SBIN}:/usr/bin") or "nginx"


def nginx_version(nginx: str) -> str:
    banner = subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip()
    return banner.rsplit("/", 1)[-1]


def start_upstream(nginx: str, workdir: Path) -> Upstream:
    """nginx in the foreground, its files in `workdir`; stopped (and raised on) if it does not
    answer. It inherits this process's core (the driver's): see the package docstring."""
    port = free_port()
    conf = nginx_conf(workdir, port)
    command = [nginx, "-p", str(workdir), "-e", str(workdir / "nginx-error.log"), "-c", str(conf)]
    command += ["-g", "daemon off;"]
    upstream = Upstream(Child("nginx", command, workdir / "nginx.log", cwd=REPO_ROOT), port)
    upstream.child.start()
    try:
        upstream.child.wait_ready(f"{upstream.base_url}/v1/models", timeout_s=10)
    except BaseException:
        upstream.child.stop()
        raise
    return upstream


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
