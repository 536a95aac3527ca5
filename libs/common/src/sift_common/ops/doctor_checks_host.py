"""`sift doctor`'s judging of the machine: disk, memory, GPUs. Readings in, findings out."""

from dataclasses import dataclass

from sift_common.ops.doctor_model import Finding
from sift_common.ops.doctor_thresholds import (
    DISK_FAIL,
    DISK_WARN,
    GPU_MEMORY_WARN,
    GPU_TEMPERATURE_WARN_C,
    MEMORY_WARN,
)

GIB = 1024**3


@dataclass(frozen=True)
class DiskReading:
    path: str
    why: str  # whose disk it is: "the database's data directory", "the current directory"
    used: int
    total: int


@dataclass(frozen=True)
class GpuReading:
    index: int
    name: str
    memory_used_mib: float
    memory_total_mib: float
    temperature_c: float | None


def judge_disk(reading: DiskReading) -> Finding:
    share = reading.used / reading.total if reading.total else 0.0
    what = (
        f"{share:.0%} used ({reading.used / GIB:.1f} of {reading.total / GIB:.1f} GiB) "
        f"at {reading.path}, {reading.why}"
    )
    fix = f"du -xh --max-depth 2 {reading.path} | sort -h | tail"
    if share > DISK_FAIL:
        return Finding(
            area="host", name="disk", status="fail", what=f"above {DISK_FAIL:.0%}: {what}", fix=fix
        )
    if share > DISK_WARN:
        return Finding(
            area="host", name="disk", status="warn", what=f"above {DISK_WARN:.0%}: {what}", fix=fix
        )
    return Finding(area="host", name="disk", status="ok", what=what)


def judge_memory(used_share: float | None) -> Finding:
    if used_share is None:
        return Finding(
            area="host",
            name="memory",
            status="skip",
            what="psutil is not installed here: memory not read",
        )
    what = f"{used_share:.0%} used"
    if used_share > MEMORY_WARN:
        return Finding(
            area="host",
            name="memory",
            status="warn",
            what=f"above {MEMORY_WARN:.0%}: {what}",
            fix="ps aux --sort=-rss | head; journalctl -k | grep -i oom",
        )
    return Finding(area="host", name="memory", status="ok", what=what)


def judge_gpu(reading: GpuReading) -> Finding:
    name = f"gpu {reading.index}"
    share = reading.memory_used_mib / reading.memory_total_mib if reading.memory_total_mib else 0
    temperature = "-" if reading.temperature_c is None else f"{reading.temperature_c:.0f} °C"
    what = (
        f"{reading.name}: memory {share:.0%} "
        f"({reading.memory_used_mib:.0f} of {reading.memory_total_mib:.0f} MiB), {temperature}"
    )
    fix = "nvidia-smi; nvidia-smi --query-compute-apps=pid,used_memory --format=csv"
    if share > GPU_MEMORY_WARN:
        return Finding(
            area="host",
            name=name,
            status="warn",
            what=f"memory above {GPU_MEMORY_WARN:.0%}: {what}",
            fix=fix,
        )
    hot = reading.temperature_c is not None and reading.temperature_c > GPU_TEMPERATURE_WARN_C
    if hot:
        return Finding(
            area="host",
            name=name,
            status="warn",
            what=f"hotter than {GPU_TEMPERATURE_WARN_C:.0f} °C: {what}",
            fix="nvidia-smi -q -d TEMPERATURE,PERFORMANCE (throttle reasons)",
        )
    return Finding(area="host", name=name, status="ok", what=what)
