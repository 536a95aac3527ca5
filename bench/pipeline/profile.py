"""py-spy on the Python services while a part runs (`--profile DIR`): one raw (collapsed
stacks) file per service, and a summary of where each spent its samples. Idle threads are left
out and only samples holding the GIL count (`--gil`), so the samples are Python CPU time: a
thread parked on a lock or an event loop waiting in `select` holds no GIL."""

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tests.faults.rig import Rig

PY_SPY = Path(sys.executable).parent / "py-spy"
RATE = 50  # samples per second: enough for shares over tens of seconds, little overhead
TOP = 12


class Profiler:
    """`py-spy record` attached to every live Python service of the rig until `stop()`."""

    def __init__(self, rig: Rig, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.spies: dict[str, subprocess.Popen[bytes]] = {}
        for name, service in rig.pipeline.services.items():
            if service.alive():
                command = [str(PY_SPY), "record", "--pid", str(service.pid), "--format", "raw",
                           "--rate", str(RATE), "--nonblocking", "--gil",
                           "--output", str(folder / f"{name}.txt")]  # fmt: skip
                self.spies[name] = subprocess.Popen(
                    command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )

    def stop(self) -> dict[str, Any]:
        for spy in self.spies.values():
            spy.send_signal(signal.SIGINT)  # py-spy writes its file and exits
        for spy in self.spies.values():
            spy.wait(60)
        return {name: summary(self.folder / f"{name}.txt") for name in self.spies}


def frame_name(frame: str) -> str:
    """`func (path/to/module.py:12)` → `func (module.py)`."""
    func, _, where = frame.partition(" (")
    return f"{func} ({Path(where.split(':')[0]).name})" if where else func


def package(frame: str) -> str:
    """The package (or standard-library module) of a frame: py-spy names a file from its
    import root (`sqlalchemy/orm/session.py`, `asyncio/runners.py`, `threading.py`)."""
    where = frame.partition(" (")[2].split(":")[0]
    return Path(where).parts[0].removesuffix(".py") if where else "?"


def summary(path: Path) -> dict[str, Any]:
    """Samples, and the top frames by share: `self` (the innermost frame) and `inclusive` (a
    frame anywhere on the stack, each frame counted once per sample); `packages`: the share of
    samples that pass through each package (sqlalchemy, asyncpg, aio_pika, …)."""
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    if not path.exists():
        return {"samples": 0}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        raw = [f for f in stack.split(";") if f]
        frames = [frame_name(f) for f in raw]
        if not frames:
            continue
        for name in {package(f) for f in raw}:
            packages[name] += count
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            anywhere[frame] += count

    def shares(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(n / total, 3)] for name, n in counter.most_common(TOP)]

    return {"samples": total, "self": shares(own), "inclusive": shares(anywhere),
            "packages": shares(packages)}  # fmt: skip
