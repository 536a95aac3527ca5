"""CPU and memory of the processes under test and of the machine, read with psutil."""

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from types import TracebackType

import psutil

from bench.machine import machine_busy_s
from scripts.processes import usage

from . import REPO_ROOT

MB = 1024 * 1024


@dataclass(frozen=True)
class Watched:
    """Which processes a sample covers, each with whatever it forked (LiteLLM may fork)."""

    target_pid: int
    nginx_pid: int | None  # None when the target is nginx itself (`direct`)
    postmaster_pid: int | None  # the embedded PostgreSQL of Sift's request log


@dataclass(frozen=True)
class ProcSample:
    """Cumulative CPU seconds at one instant; a step subtracts two of these."""

    wall_s: float
    target_cpu_s: float
    nginx_cpu_s: float
    postgres_cpu_s: float | None
    driver_cpu_s: float
    machine_busy_s: float


def sample(watched: Watched) -> ProcSample:
    # A tree that is gone counts 0: the step then fails on the target's death, not on this.
    target = usage(watched.target_pid)
    nginx = None if watched.nginx_pid is None else usage(watched.nginx_pid)
    postgres = None if watched.postmaster_pid is None else usage(watched.postmaster_pid)
    own = os.times()
    return ProcSample(
        wall_s=time.perf_counter(),
        target_cpu_s=target.cpu_s if target else 0.0,
        nginx_cpu_s=nginx.cpu_s if nginx else 0.0,
        postgres_cpu_s=postgres.cpu_s if postgres else None,
        driver_cpu_s=own.user + own.system,
        machine_busy_s=machine_busy_s(),
    )


class PeakRss:
    """The highest RSS of a process tree while the `with` block runs, sampled on a thread.

    psutil has no high-water mark. The tree is found once, before the step, so each sample
    reads one small file per process instead of scanning every process on the machine (which
    would hold up the driver's event loop)."""

    def __init__(self, pid: int, every_s: float = 0.1) -> None:
        try:
            root = psutil.Process(pid)
            self._processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:  # gone already: the step reports the target dead
            self._processes = []
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)
        self.peak_bytes = 0

    def __enter__(self) -> "PeakRss":
        self._sample()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / MB

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(self._every_s):
            self._sample()

    def _sample(self) -> None:
        rss = 0
        for process in self._processes:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                rss += process.memory_info().rss
        self.peak_bytes = max(self.peak_bytes, rss)


def embedded_postmaster() -> int | None:
    """PID of the embedded PostgreSQL that Sift's request log uses, if it runs."""
    pid_file = REPO_ROOT / ".sift" / "pgdata" / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(pid_file.read_text().split()[0])
    return None
