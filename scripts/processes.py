"""Child-process supervision shared by the demo, the benches, the local vLLM runtime and the tests.

A `Child` is one program started with its output appended to a log file, by default in a session
(process group) of its own: a Ctrl-C in the terminal does not reach it (the caller stops its
children, in order), and a stop reaches whatever it forked (vLLM's engine core, Erlang's
helpers). Stopping is SIGTERM to the group, a wait, then SIGKILL to whatever is left.

Ports: `free_port` / `free_ports` hand out ports that nothing is bound to *now*, drawn below the
kernel's ephemeral range. A child binds its port seconds later (vLLM after ~15 s of imports), and
a port from the ephemeral range (what binding port 0 gives) can be taken meanwhile as the local
end of any outgoing connection on the machine: CI once saw vLLM fail `Address already in use`
with a test lane beside it opening thousands of connections. Below the range only another
explicit bind can take it.
"""

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil

LOCALHOST = "127.0.0.1"


LOWEST_PORT = 10_000  # above the well-known and the usual registered service ports
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
EPHEMERAL_LOW = 32_768  # Linux's default, where the range cannot be read


def ephemeral_low() -> int:
    """The first port the kernel hands to outgoing connections and to binds of port 0."""
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return EPHEMERAL_LOW


def free_ports(count: int, host: str = LOCALHOST) -> list[int]:
    """`count` distinct ports nothing is bound to right now, below the ephemeral range."""
    ceiling = ephemeral_low()
    if ceiling - LOWEST_PORT < 1_000:
        raise RuntimeError(f"too few ports below the ephemeral range (it starts at {ceiling})")
    rng = random.SystemRandom()  # processes started together must not draw the same ports
    ports: list[int] = []
    for _ in range(100 * count):
        port = rng.randrange(LOWEST_PORT, ceiling)
        if port not in ports and _bindable(host, port):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError(f"found {len(ports)} of {count} free ports below {ceiling}")


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = LOCALHOST) -> int:
    return free_ports(1, host)[0]


def reachable(host: str, port: int, timeout_s: float = 2.0) -> bool:
    """Something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_for(check: Callable[[], bool], what: str, timeout_s: float, every_s: float = 0.1) -> float:
    """Poll `check()` until it is true; the seconds it took. TimeoutError after `timeout_s`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{what} not reached within {timeout_s:.0f} s")
        time.sleep(every_s)
    return time.monotonic() - started


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    """GET `url` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (http only)
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def tail(path: Path, lines: int = 25) -> str:
    """The last `lines` lines of a log file (a note when there is none)."""
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class ChildExited(RuntimeError):
    """A child ended while something waited for it to become ready."""


@dataclass
class Child:
    """One supervised program. `start()` may be called again after it ended (a restart)."""

    name: str
    command: Sequence[str]
    log: Path
    env: Mapping[str, str] | None = None  # default: this process's environment
    cwd: Path | None = None
    own_session: bool = True
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _out: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> "Child":
        self._close_log()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._out = self.log.open("ab")
        self.process = subprocess.Popen(  # noqa: S603 (our own command lines)
            list(self.command),
            env=dict(os.environ if self.env is None else self.env),
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=self.own_session,
        )
        self.starts += 1
        return self

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def wait(self, timeout_s: float | None = None) -> int | None:
        """Wait for the child to end; its exit code, None if it still runs after `timeout_s`."""
        if self.process is None:
            raise RuntimeError(f"{self.name} was never started")
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.process.wait(timeout_s)
        return None

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 30.0) -> int | None:
        """`sig` (to the group when it has its own), a wait, SIGKILL after `timeout_s`; the exit
        code (None when never started). Whatever it left in its group is killed too."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            self._signal(sig)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                process.wait()
        if self.own_session:
            self._signal(signal.SIGKILL)  # helpers left in the group (engine cores, erl_child)
        self._close_log()
        return process.returncode

    def kill(self) -> int | None:
        """kill -9, at once; the exit code."""
        return self.stop(signal.SIGKILL, timeout_s=10.0)

    def wait_ready(self, url: str, timeout_s: float, every_s: float = 0.2) -> float:
        """Poll `url` until it answers 200; the seconds it took. ChildExited (with the log's tail)
        when the child ends first, TimeoutError when it does not get there in time."""
        started = time.monotonic()
        while not http_ok(url, timeout_s=min(2.0, timeout_s)):
            if not self.alive():
                raise ChildExited(
                    f"{self.name} exited with {self.returncode()}; {self.log}:\n{self.log_tail()}"
                )
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(
                    f"{self.name} not ready within {timeout_s:.0f} s; {self.log}:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(every_s)
        return time.monotonic() - started

    def log_tail(self, lines: int = 25) -> str:
        return tail(self.log, lines)

    def _signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.own_session:
                os.killpg(self.process.pid, sig)  # a session of its own: pgid == pid
            elif self.process.poll() is None:
                self.process.send_signal(sig)

    def _close_log(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    # Last in the class: below it, `signal` in the class body (defaults, annotations) would
    # name this method, not the module.
    def signal(self, sig: signal.Signals) -> None:
        """Send `sig` to the child alone (not its group), if it still runs."""
        if self.alive():
            assert self.process is not None
            self.process.send_signal(sig)


# ----------------------------------------------------------------------- measuring processes


@dataclass(frozen=True)
class Usage:
    """CPU seconds used so far by a process and its children, and its resident memory now."""

    cpu_s: float
    rss_bytes: int


def usage(pid: int) -> Usage | None:
    """The process tree's CPU seconds (user + system, exited children included) and the RSS of
    the tree now; None when the process is gone."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return None
    cpu_s, rss = 0.0, 0
    for process in tree:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            times = process.cpu_times()
            cpu_s += times.user + times.system + times.children_user + times.children_system
            rss += process.memory_info().rss
    return Usage(cpu_s, rss)


def started_at(pid: int) -> float | None:
    """When the process started (seconds since the epoch); None when gone or a zombie. With the
    pid, it names one process for good, whatever its command line says (vLLM renames its
    children, and a process just exec'd briefly shows an empty command line)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(process.create_time())
    except psutil.NoSuchProcess:
        return None


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group `pgid`: a group whose leader has exited
    but is not reaped yet, or was reaped while its helpers run on, is told apart from one that
    is gone."""
    found = []
    for process in psutil.process_iter(["status"]):
        try:
            if process.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(process.pid) == pgid:
                found.append(process.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return found
