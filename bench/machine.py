"""What every bench records about the machine it ran on, next to its numbers, and how busy
the whole machine was (other work shows as noise in a measured window)."""

import os
import platform
from pathlib import Path
from typing import Any

import psutil


def cpu_model() -> str:
    """The CPU's model name (psutil does not give it)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    names = (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    return next(names, platform.processor())


def describe(**extra: Any) -> dict[str, Any]:
    """Cores, CPU, kernel, Python and the load when the run started, plus `extra`."""
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg(),
        **extra,
    }


def machine_busy_s() -> float:
    """CPU seconds all cores spent on anything but idling or waiting for I/O, since boot."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))
