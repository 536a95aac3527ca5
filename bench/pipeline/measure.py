"""What a part measures (CPU and peak RSS per process, ingest → commit latency) and the checks
of its effect that come before any rate (store against the ledger, queues, LLM calls)."""

import asyncio
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import psutil

from bench.archive import BenchInvalid, check_stored, stored_rows
from bench.machine import machine_busy_s
from scripts.processes import Usage, usage
from tests.faults import observe
from tests.faults.rig import Rig
from tests.faults.scenario import queues_drained
from tests.support.ledger import Ledger

DRIVER = "driver+fake"  # this process: the feeder and the FAKE upstreams' thread
OTHER = "other work"  # busy CPU on the machine outside the processes measured
MB = 1024 * 1024
GATEWAY_LOG_FLUSH_S = 2.0  # the gateway writes its request log every second
# An idle backend reports its transaction counts within PostgreSQL's idle interval (10 s).
STATS_FLUSH_S = 11.0


def own_cpu_s() -> float:
    """This process's CPU seconds (threads included, children not: they are the services)."""
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


@dataclass
class Meter:
    """CPU seconds of each process over a window and its peak RSS, sampled every `every_s`."""

    pids: dict[str, int]
    every_s: float = 0.5
    _before: dict[str, Usage] = field(default_factory=dict)
    _peak: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _driver_cpu: float = 0.0
    _machine_busy: float = 0.0
    _started: float = 0.0

    def __enter__(self) -> "Meter":
        self._before = self._sample()
        self._driver_cpu, self._started = own_cpu_s(), time.monotonic()
        self._machine_busy = machine_busy_s()
        self._thread = threading.Thread(target=self._watch, name="meter", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _sample(self) -> dict[str, Usage]:
        found = {}
        for name, pid in self.pids.items():
            now = usage(pid)
            if now is not None:
                found[name] = now
                self._peak[name] = max(self._peak.get(name, 0), now.rss_bytes)
        return found

    def _watch(self) -> None:
        while not self._stop.wait(self.every_s):
            self._sample()

    def result(self, documents: int) -> dict[str, dict[str, float]]:
        """Per process: CPU seconds, CPU ms per document, cores used on average, peak RSS (MB);
        `other work` is the rest of the machine's busy time over the window (a shared box)."""
        after = self._sample()
        wall = time.monotonic() - self._started
        cpu = {name: after[name].cpu_s - self._before[name].cpu_s for name in after
               if name in self._before}  # fmt: skip
        cpu[DRIVER] = own_cpu_s() - self._driver_cpu
        self._peak[DRIVER] = psutil.Process().memory_info().rss
        cpu[OTHER] = max(machine_busy_s() - self._machine_busy - sum(cpu.values()), 0.0)
        return {
            name: {
                "cpu_s": round(seconds, 2),
                "cpu_ms_per_doc": round(1000 * seconds / max(documents, 1), 3),
                "cores": round(seconds / wall, 2),
                "peak_rss_mb": round(self._peak.get(name, 0) / MB, 1),
            }
            for name, seconds in sorted(cpu.items())
        }


async def transactions(rig: Rig) -> int:
    """Transactions committed or rolled back in the pipeline's database so far (every
    statement outside a transaction block counts as one)."""
    conn = await rig.connect()
    try:
        count = await conn.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database"
            " WHERE datname = current_database()"
        )
    finally:
        await conn.close()
    return int(count)


async def wait_stored(
    rig: Rig,
    ledger: Ledger,
    timeout_s: float,
    finished_elsewhere: Callable[[], Awaitable[int]] | None = None,
) -> None:
    """Until the store holds a document row for every ledger document (or `timeout_s`);
    `finished_elsewhere` counts documents done without a row (dead-lettered by design)."""
    deadline = time.monotonic() + timeout_s
    conn = await rig.connect()
    try:
        while time.monotonic() < deadline:
            count = await conn.fetchval(
                "SELECT count(*) FROM documents WHERE source = $1", ledger.source
            )
            if finished_elsewhere is not None:
                count += await finished_elsewhere()
            if count >= len(ledger.documents):
                return
            await asyncio.sleep(0.5 if finished_elsewhere is None else 2.0)
    finally:
        await conn.close()


async def latencies(rig: Rig, ledger: Ledger) -> dict[str, float]:
    """Ingest → commit per document (the collector's `collected_at` to the archiver's
    transaction time `stored_at`), and the last commit (epoch seconds)."""
    conn = await rig.connect()
    try:
        rows = await conn.fetch(
            "SELECT extract(epoch FROM stored_at - collected_at) AS s,"
            " extract(epoch FROM stored_at) AS at FROM documents WHERE source = $1",
            ledger.source,
        )
    finally:
        await conn.close()
    seconds = sorted(float(row["s"]) for row in rows)
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return {"p50_s": round(cuts[49], 3), "p99_s": round(cuts[98], 3),
            "max_s": round(seconds[-1], 3),
            "last_commit": max(float(row["at"]) for row in rows)}  # fmt: skip


async def checked_effect(
    rig: Rig, ledger: Ledger, what: str, *, calls_per_doc: int | None = 1
) -> dict[str, Any]:
    """The part's effect, checked: every ledger document stored once with its analysis and
    embeddings and nothing else (the ledger's verdict and a plain recount), no message left in
    any queue, and (`calls_per_doc`) exactly that many chat calls per document at the FAKE.
    `BenchInvalid` otherwise; else the counts."""
    verdict, rows = await observe.verdict(rig, ledger, set())
    conn = await rig.connect()
    try:
        counts = await stored_rows(conn, ledger.source)
    finally:
        await conn.close()
    left = await queues_drained(rig, 15.0)
    calls = observe.chat_calls(rig, ledger)
    effect: dict[str, Any] = {
        "fed": len(ledger.documents), "stored": counts, "stored_once": verdict.stored_once,
        "lost": len(verdict.lost), "doubled": len(verdict.doubled),
        "store_problems": verdict.problems(), "left_in_queues": left,
        "chat_calls": sum(calls.values()),
        "chat_calls_per_unique": round(sum(calls.values()) / len(ledger.documents), 3),
        "documents_never_called": len(ledger.documents) - len(calls),
    }  # fmt: skip
    problems = list(verdict.problems())
    if left:
        problems.append(f"messages left in queues: {left}")
    if effect["documents_never_called"]:
        problems.append(f"{effect['documents_never_called']} documents never reached the LLM")
    if calls_per_doc is not None and any(n != calls_per_doc for n in calls.values()):
        problems.append(f"chat calls per document not {calls_per_doc}: {effect['chat_calls']}")
    try:
        check_stored(what, len(ledger.documents), counts)
    except BenchInvalid as exc:
        problems.append(str(exc))
    if problems:
        raise BenchInvalid(f"{what}: {'; '.join(problems)} ({effect})")
    await asyncio.sleep(GATEWAY_LOG_FLUSH_S)
    effect["gateway"] = await observe.gateway_calls(rig, rows)
    return effect
