"""`sift doctor`'s machine probes: disk (stdlib), memory (psutil, when installed: it is the
workspace's development dependency, not sift-common's), GPUs (`nvidia-smi`, when present)."""

import asyncio
import shutil
from pathlib import Path

from sift_common.ops.doctor_checks_host import DiskReading, GpuReading

NVIDIA_SMI_TIMEOUT_S = 5.0
GPU_QUERY = "index,name,memory.used,memory.total,temperature.gpu"


def read_disk(path: Path, why: str) -> DiskReading:
    usage = shutil.disk_usage(path)
    return DiskReading(str(path), why, used=usage.used, total=usage.total)


def memory_used_share() -> float | None:
    """Used memory as a fraction (what is not available to a new process); None without psutil."""
    try:
        import psutil
    except ImportError:
        return None
    return float(psutil.virtual_memory().percent) / 100


async def read_gpus() -> list[GpuReading] | None:
    """None where `nvidia-smi` does not exist (no GPU here: nothing to report). Raises
    RuntimeError when it exists and fails."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return None
    process = await asyncio.create_subprocess_exec(
        binary,
        f"--query-gpu={GPU_QUERY}",
        "--format=csv,noheader,nounits",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(NVIDIA_SMI_TIMEOUT_S):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise RuntimeError(f"nvidia-smi gave no answer within {NVIDIA_SMI_TIMEOUT_S:g} s") from None
    if process.returncode != 0:
        raise RuntimeError(f"nvidia-smi exited {process.returncode}: {err.decode().strip()[:160]}")
    return [parse_gpu_line(line) for line in out.decode().splitlines() if line.strip()]


def parse_gpu_line(line: str) -> GpuReading:
    """One CSV line of the query above; `[N/A]` temperature reads as unknown."""
    index, name, used, total, temperature = (part.strip() for part in line.split(","))
    return GpuReading(
        index=int(index),
        name=name,
        memory_used_mib=float(used),
        memory_total_mib=float(total),
        temperature_c=_number(temperature),
    )


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
