"""Process supervision for the demo and the e2e tests: start the services the way `make demo`
does, wait for readiness, and stop, SIGTERM, kill -9 or restart them."""

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

SERVICES = ("gateway", "collector", "analyzer", "archiver")
PORT_VARIABLE = {name: f"SIFT_{name.upper()}_PORT" for name in SERVICES}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reachable(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class Service:
    name: str
    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    program: str = ""  # which sift-<program> runs it; the name unless a replica ("analyzer-2")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Pipeline:
    """The four services as child processes sharing one environment (namespace, URLs)."""

    base_env: dict[str, str]
    log_dir: Path
    services: dict[str, Service] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def add(
        self, name: str, extra: dict[str, str] | None = None, program: str | None = None
    ) -> Service:
        """Add `name`, running `sift-<program>` (default: the name; another name for a replica)."""
        program = program or name
        port = free_port()
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",  # a killed service's last log lines must reach its file
            **self.base_env,
            PORT_VARIABLE[program]: str(port),
            **(extra or {}),
        }
        self.log_dir.mkdir(parents=True, exist_ok=True)
        service = Service(name, port, env, self.log_dir / f"{name}.log", program=program)
        self.services[name] = service
        return service

    def start(self, name: str) -> Service:
        service = self.services[name]
        log = service.log.open("ab")
        self._logs.append(log)
        # The entry point of this interpreter's venv, found even when the venv is not on PATH.
        command = [str(Path(sys.executable).parent / f"sift-{service.program}")]
        service.process = subprocess.Popen(  # noqa: S603
            command, env=service.env, stdout=log, stderr=subprocess.STDOUT
        )
        service.starts += 1
        return service

    def wait_ready(self, name: str, timeout_s: float = 180.0) -> None:
        service = self.services[name]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if service.process is not None and service.process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {service.process.returncode}; see {service.log}"
                )
            try:
                if httpx.get(f"{service.url}/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{name} not ready within {timeout_s:.0f}s; see {service.log}")

    def signal(self, name: str, sig: signal.Signals) -> None:
        process = self.services[name].process
        if process is not None and process.poll() is None:
            process.send_signal(sig)

    def stop(self, name: str, timeout_s: float = 60.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout_s`; the exit status (None if never started)."""
        process = self.services[name].process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def kill9(self, name: str) -> None:
        process = self.services[name].process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def restart(self, name: str) -> None:
        self.start(name)
        self.wait_ready(name)

    def log_tails(self, lines: int = 25) -> str:
        """The last lines of every service's log, for a failure report."""
        parts = []
        for service in self.services.values():
            if service.log.exists():
                tail = service.log.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {service.log} (last {len(tail)} lines)\n" + "\n".join(tail))
        return "\n".join(parts)

    def stop_all(self) -> dict[str, int | None]:
        """Stop every service, last started first. A second Ctrl-C is ignored meanwhile: cut
        short, this would leave services running (each stop is bounded by its SIGKILL)."""
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            codes = {name: self.stop(name) for name in reversed(list(self.services))}
        finally:
            signal.signal(signal.SIGINT, previous)
        for log in self._logs:
            log.close()
        return codes
