"""A private vLLM-CPU chat server for a test that kills it: a free port, its own log, its own
process group; never the shared servers of `make vllm-up` or the `vllm_servers` fixture.

The command line and environment are the runtime's own (scripts/local_vllm.py: `server_cmd`,
`server_env`, the chat server's flags and core set), so the engine killed here is the one the
pipeline runs against. Only the HTTP helpers of that script are used on it (`serves`, `smoke`):
its pid files and `stop` belong to the shared servers.
"""

import dataclasses
import signal
import time
from pathlib import Path

from scripts import local_vllm
from tests.support.private_services import Supervised, free_ports, wait_for

START_TIMEOUT_S = 600.0  # a cold start compiles for minutes on 2 busy cores
GONE_TIMEOUT_S = 15.0


class PrivateVllmChat:
    def __init__(self, log: Path) -> None:
        shared = local_vllm.servers()["chat"]  # the name "chat" selects the chat model
        [port] = free_ports(1)
        self.server = dataclasses.replace(shared, port=port)
        env = local_vllm.server_env(self.server)
        command = local_vllm.server_cmd(self.server)
        self.process = Supervised("vllm-chat", command, log, env)  # start_new_session=True

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
            if not self.process.alive():
                raise RuntimeError(f"vLLM exited during start-up:\n{local_vllm.tail(self.log)}")
            return local_vllm.serves(self.server)

        try:
            wait_for(serving, f"vLLM on {self.url}", timeout_s, every_s=1.0)
            local_vllm.smoke(self.server)
        except (TimeoutError, OSError, ValueError, LookupError, RuntimeError):
            self.stop()
            raise
        return time.monotonic() - started

    def kill9(self) -> dict[str, int | None]:
        """SIGKILL to the whole process group (API server, engine core, workers); returns once
        no live process of the group is left. The leader's exit code and the group's size."""
        process = self.process.process
        assert process is not None, "never started"
        assert self.process.alive(), "already dead"
        members = len(group_members(process.pid))
        self.process.stop(signal.SIGKILL)  # killpg: our own session, pgid == the leader's pid
        wait_for(lambda: not group_members(process.pid), "the killed group gone", GONE_TIMEOUT_S)
        return {"exit_code": process.returncode, "processes_killed": members}

    def stop(self) -> None:
        self.process.stop(timeout_s=20)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group `pgid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()  # state, ppid, pgrp, ...
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(stat.parent.name))
    return found
