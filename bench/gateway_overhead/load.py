"""The load driver: requests at a constant offered rate, open loop, latency from the intended
send time (see the package docstring)."""

import asyncio
import gc
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import uvloop

CHAT_BODY = json.dumps(
    {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
).encode()


@dataclass
class Tally:
    latencies_s: list[float] = field(default_factory=list)
    send_lags_s: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    scheduled: int = 0
    window_start: float = 0.0
    last_done: float = 0.0


@dataclass(frozen=True)
class Load:
    url: str
    headers: dict[str, str]
    rate: float
    warmup_s: float
    duration_s: float
    max_in_flight: int
    timeout_s: float


async def _one(session: aiohttp.ClientSession, load: Load, due: float, tally: Tally | None) -> None:
    sent = time.perf_counter()
    try:
        async with session.post(load.url, data=CHAT_BODY, headers=load.headers) as resp:
            await resp.read()
            outcome = "ok" if resp.status == 200 else f"http_{resp.status}"
    except TimeoutError:
        outcome = "timeout"
    except aiohttp.ClientError as exc:
        outcome = type(exc).__name__
    if tally is None:  # warm-up request
        return
    done = time.perf_counter()
    tally.send_lags_s.append(sent - due)
    tally.last_done = max(tally.last_done, done)
    if outcome == "ok":
        tally.latencies_s.append(done - due)  # from the intended time: queueing included
    else:
        tally.errors[outcome] += 1


async def drive(load: Load, on_window: Callable[[], None]) -> Tally:
    """Send `rate` requests a second for warm-up + duration; tally the measured part.
    `on_window` is called when the first measured request is due."""
    tally = Tally()
    interval = 1.0 / load.rate
    n_warm = round(load.warmup_s * load.rate)
    n_total = n_warm + round(load.duration_s * load.rate)
    connector = aiohttp.TCPConnector(limit=load.max_in_flight, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=load.timeout_s)
    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter() + 0.05
        for i in range(n_total):
            due = start + i * interval
            if i == n_warm:
                on_window()
                tally.window_start = due
            if (delay := due - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            measured = tally if i >= n_warm else None
            if measured is not None:
                tally.scheduled += 1
            if len(tasks) >= load.max_in_flight:
                if measured is not None:
                    tally.errors["shed_in_flight_cap"] += 1
                continue
            task = asyncio.create_task(_one(session, load, due, measured))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks)
    return tally


def run_load(load: Load, on_window: Callable[[], None]) -> Tally:
    """Run one step on a fresh uvloop."""
    # A collection pause in the driver would be charged to the target; the step allocates
    # little, so collect now and keep the collector off until it is over.
    gc.collect()
    gc.disable()
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(drive(load, on_window))
    finally:
        gc.enable()
