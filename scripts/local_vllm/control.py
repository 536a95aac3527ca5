"""`start`, `stop`, `status` and `env`: the servers run in sessions of their own and outlive
this command; a pid file (pid plus start time) lets a later `stop` or `status` find them."""

import contextlib
import os
import signal
import time

from scripts.local_vllm.layout import STATE_DIR
from scripts.local_vllm.prepare import HEARTBEAT_S, file_lock, prepare
from scripts.local_vllm.servers import Server, server_cmd, server_env, servers, serves, smoke
from scripts.processes import LOCALHOST, Child, group_members, reachable, started_at, tail

# psutil's start time is the kernel's boot time (whole seconds, moved by clock adjustments)
# plus the process's age: the same process may read a second off later.
SAME_START_S = 1.5


def start(timeout: float) -> None:
    prepare()
    # Two starts at once in one checkout (two test runs) would both spawn servers and overwrite
    # each other's pid files; the second waits, then finds the servers up and reuses them.
    with file_lock(STATE_DIR / "start.lock", "another start holds the lock; waiting for it"):
        start_missing(timeout)
    print("==> both servers are up")
    print_env()


def start_missing(timeout: float) -> None:
    print("==> starting the vLLM servers")
    to_start: list[Server] = []
    for server in servers().values():
        if serves(server):
            print(f"    {server.name}: already up at {server.url} ({server.model}); reusing it")
        elif reachable(LOCALHOST, server.port):
            raise SystemExit(f"error: port {server.port} is taken by something else")
        else:
            to_start.append(server)
    # Both at once: each takes one to three minutes on a small CPU.
    children = {server.name: spawn(server) for server in to_start}
    try:
        wait_ready(to_start, children, timeout)
    except KeyboardInterrupt:
        print("==> interrupted; stopping the servers this run started")
        stop(to_start)
        raise SystemExit(130) from None


def spawn(server: Server) -> Child:
    # A session of its own (Child's default): the server outlives this command, and `stop`
    # can signal the whole process group (API server plus engine core).
    server.log.unlink(missing_ok=True)  # a fresh log per start: its tail is this start's
    child = Child(server.name, server_cmd(server), server.log, server_env(server), STATE_DIR)
    child.start()
    write_pid(server, child.pid)
    print(f"    {server.name}: started pid {child.pid} (cores {server.cpus}), log {server.log}")
    return child


def wait_ready(pending: list[Server], children: dict[str, Child], timeout: float) -> None:
    """Poll until every server lists its model and answers a real request."""
    started = time.monotonic()
    last_report = started
    waiting = list(pending)
    while waiting:
        for server in list(waiting):
            if not children[server.name].alive():
                fail(pending, f"{server.name} server exited during start-up", server)
            if serves(server):
                try:
                    smoke(server)
                except (OSError, ValueError, LookupError, RuntimeError) as error:
                    fail(pending, f"{server.name}: first request failed: {error!r}", server)
                waiting.remove(server)
                print(f"    {server.name}: ready at {server.url} after "
                      f"{time.monotonic() - started:.0f} s")  # fmt: skip
        elapsed = time.monotonic() - started
        if waiting and elapsed > timeout:
            fail(pending, f"not ready within {timeout:.0f} s", waiting[0])
        if waiting and time.monotonic() - last_report >= HEARTBEAT_S:
            last_report = time.monotonic()
            print(f"    ... waiting for {', '.join(s.name for s in waiting)} ({elapsed:.0f} s)")
        if waiting:
            time.sleep(1.0)


def fail(started: list[Server], reason: str, culprit: Server) -> None:
    print(f"error: {reason}; last lines of {culprit.log}:\n{tail(culprit.log, 40)}")
    stop(started)  # leave no half-started server behind
    raise SystemExit(1)


def write_pid(server: Server, pid: int) -> None:
    server.pid_file.write_text(f"{pid} {started_at(pid)!r}\n")


def read_pid(server: Server) -> int | None:
    """The pid from the pid file, if that very process still runs: pid plus start time name a
    process for good (a recycled pid has another start time)."""
    try:
        pid_text, recorded = server.pid_file.read_text().split()
        pid, started = int(pid_text), float(recorded)
    except (OSError, ValueError):
        return None
    now = started_at(pid)
    return pid if now is not None and abs(now - started) < SAME_START_S else None


def stop(targets: list[Server], grace: float = 20.0) -> None:
    """SIGTERM each server's process group, then SIGKILL whatever outlives the grace."""
    running = {server.name: pid for server in targets if (pid := read_pid(server))}
    for server in targets:
        if server.name not in running:
            server.pid_file.unlink(missing_ok=True)
            print(f"    {server.name}: not running (no live pid file)")
    for pid in running.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(group_members(pid) for pid in running.values()) and time.monotonic() < deadline:
        time.sleep(0.5)
    for name, pid in running.items():
        if group_members(pid):
            print(f"    {name}: still alive after {grace:.0f} s; SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        servers()[name].pid_file.unlink(missing_ok=True)
        print(f"    {name}: stopped (pid {pid})")


def status() -> None:
    for server in servers().values():
        up, pid = serves(server), read_pid(server)
        state = "up" if up else "down"
        if pid:
            owner = f"pid {pid}" if up else f"pid {pid}, starting or unhealthy"
        else:
            owner = "not started by this checkout" if up else "not running"
        print(f"{server.name:5} {state:4} {server.url}  model {server.model}  ({owner})")


def print_env() -> None:
    found = servers()
    print(f"SIFT_VLLM_CHAT_URL={found['chat'].url}")
    print(f"SIFT_VLLM_EMBED_URL={found['embed'].url}")
