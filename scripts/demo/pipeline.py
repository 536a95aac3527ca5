"""The services as child processes for the demo, `make eval` and the fault rig: start them the
way `make demo` does, wait for readiness, and stop, SIGTERM, kill -9 or restart them."""

import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from scripts.processes import LOCALHOST, Child, free_port

SERVICES = ("gateway", "collector", "analyzer", "archiver")
PORT_VARIABLE = {name: f"SIFT_{name.upper()}_PORT" for name in SERVICES}


@dataclass
class Service(Child):
    """One `sift-<program>` process on its own port. In the terminal's process group, not a
    session of its own: a Ctrl-C in the demo's terminal reaches every service at once."""

    own_session: bool = False
    port: int = 0
    program: str = ""  # which sift-<program> runs it; the name unless a replica ("analyzer-2")

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"


@dataclass
class Pipeline:
    """The four services as child processes sharing one environment (namespace, URLs)."""

    base_env: dict[str, str]
    log_dir: Path
    services: dict[str, Service] = field(default_factory=dict)

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
        # The entry point of this interpreter's venv, found even when the venv is not on PATH.
        command = [str(Path(sys.executable).parent / f"sift-{program}")]
        log = self.log_dir / f"{name}.log"
        service = Service(name, command, log, env, port=port, program=program)
        self.services[name] = service
        return service

    def start(self, name: str) -> Service:
        service = self.services[name]
        service.start()
        return service

    def wait_ready(self, name: str, timeout_s: float = 180.0) -> float:
        """Until its /health/ready answers 200; the seconds it took."""
        service = self.services[name]
        return service.wait_ready(f"{service.url}/health/ready", timeout_s)

    def stop(self, name: str, timeout_s: float = 60.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout_s`; the exit status (None if never started)."""
        return self.services[name].stop(timeout_s=timeout_s)

    def kill9(self, name: str) -> None:
        self.services[name].kill()

    def restart(self, name: str) -> None:
        self.start(name)
        self.wait_ready(name)

    def log_tails(self, lines: int = 25) -> str:
        """The last lines of every service's log, for a failure report."""
        parts = []
        for service in self.services.values():
            if service.log.exists():
                tail = service.log_tail(lines)
                header = f"--- {service.log} (last {len(tail.splitlines())} lines)"
                parts.append(f"{header}\n{tail}")
        return "\n".join(parts)

    def stop_all(self) -> dict[str, int | None]:
        """Stop every service, last started first. A second Ctrl-C is ignored meanwhile: cut
        short, this would leave services running (each stop is bounded by its SIGKILL)."""
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return {name: self.stop(name) for name in reversed(list(self.services))}
        finally:
            signal.signal(signal.SIGINT, previous)
