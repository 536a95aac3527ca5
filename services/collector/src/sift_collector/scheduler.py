"""Polling the configured sources on their schedules, safely across collector replicas.

Each tick reads every source's shared state from Redis (one round trip) and starts the sources
that are due and not already running here. A poll runs under the source's Redis lease lock
(`<prefix>sift:source-lock:<name>`), and the holder re-reads the shared `next_due_at` before
polling, so with any number of replicas a source runs once per interval, never twice at once.

A poll: read the cursor, `source.poll(cursor)`, normalise each document in a worker thread
(refusals are counted and logged, never published), publish and wait for every confirm, run
the source's `after_publish` (the drop folder moves its files), and only then store the next
cursor and state (fenced). Any failure leaves the cursor where it was, so nothing is skipped;
the source is due again after `interval × 2^(failures-1)` (capped), and `status()` and the
metrics show it. A failure of one source is logged (with its traceback when it is not a
`SiftError`) and never stops the others.
"""

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

import httpx
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.exceptions import RedisError

from sift_collector.normalise import DocumentRejectedError, Limits, normalise
from sift_collector.publisher import PublishReport
from sift_collector.sources import Poll, Source, SourceConfig, build_source
from sift_collector.sources.base import Rejection
from sift_collector.sources.config import DEFAULT_TIERS, Tier
from sift_collector.sources.metrics import SourceMetrics
from sift_collector.sources.state import (
    SourceState,
    SourceStore,
    after_failure,
    after_success,
    failure_delay,
    interval_for,
    is_due,
    jittered,
)
from sift_common.contracts import Document, Priority
from sift_common.errors import SiftError
from sift_common.locks import Lease, LeaseLock

logger = logging.getLogger(__name__)

DEFAULT_LIMITS = Limits()
REPORT_AFTER_FAILURES = 3  # from this many consecutive failures on, log at ERROR


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()


class Publishing(Protocol):
    """What the scheduler needs of `DocumentPublisher`."""

    async def publish(
        self, documents: list[Document], priority: Priority = "normal"
    ) -> PublishReport: ...


@dataclass(frozen=True)
class SchedulingOptions:
    tiers: Mapping[Tier, float] = field(default_factory=lambda: dict(DEFAULT_TIERS))
    tick_s: float = 1.0  # how often the shared state is read
    max_concurrent: int = 8  # polls at once in this process
    lease_ms: int = 60_000  # of a source's lock, renewed while its poll runs
    backoff_cap_s: float = 6 * 3600.0  # longest pause of a failing source (or its interval)
    poll_timeout_s: float = 600.0  # a poll (fetch, publish, settle) longer than this failed
    stop_grace_s: float = 30.0  # on stop, running polls may finish within this


DEFAULT_OPTIONS = SchedulingOptions()


class Scheduler:
    def __init__(
        self,
        sources: list[SourceConfig],
        redis: Redis,
        publisher: Publishing,
        *,
        key_prefix: str = "",
        registry: CollectorRegistry | None = None,
        http: httpx.AsyncClient | None = None,
        limits: Limits = DEFAULT_LIMITS,
        options: SchedulingOptions = DEFAULT_OPTIONS,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            follow_redirects=True, headers={"User-Agent": "sift-collector"}
        )
        self._configs = {config.name: config for config in sources}
        self._sources: dict[str, Source] = {
            config.name: build_source(config, self._http) for config in sources
        }
        self._intervals = {c.name: interval_for(c, options.tiers) for c in sources}
        self._store = SourceStore(redis, key_prefix)
        self._locks = {
            name: LeaseLock(redis, self._store.lock_key(name), options.lease_ms)
            for name in self._sources
        }
        self._publisher = publisher
        self._limits = limits
        self._metrics = SourceMetrics(registry or CollectorRegistry())
        self._states: dict[str, SourceState] = {name: SourceState() for name in self._sources}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(options.max_concurrent)
        self._options = options
        self._clock = clock
        self._rng = rng or random.Random()

    async def run_once(self) -> None:
        """Poll every source that is due (and not running), concurrently; wait for them."""
        await asyncio.gather(*await self._start_due())

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Tick until `stop` is set; then let running polls finish (up to the grace period)."""
        try:
            while not stop.is_set():
                try:
                    await self._start_due()
                except RedisError as exc:
                    logger.warning("cannot read source state from Redis: %r", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._pause())
        finally:
            await self._finish_running()
            if self._owns_http:
                await self._http.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client this scheduler created (not one passed in)."""
        if self._owns_http:
            await self._http.aclose()

    def status(self) -> dict[str, dict[str, Any]]:
        """Per source: schedule and health as last seen in the shared state (one tick old)."""
        return {
            name: {
                "type": self._configs[name].type,
                "interval_s": self._intervals[name],
                "running": name in self._running,
                "last_run_at": _iso(state.last_run_at),
                "last_success_at": _iso(state.last_success_at),
                "consecutive_failures": state.consecutive_failures,
                "next_due_at": _iso(state.next_due_at) if state.next_due_at else None,
                "last_error": state.last_error,
            }
            for name, state in self._states.items()
        }

    def _pause(self) -> float:
        waiting = [s.next_due_at for n, s in self._states.items() if n not in self._running]
        until_due = min(waiting, default=self._clock() + self._options.tick_s) - self._clock()
        return min(self._options.tick_s, max(0.05, until_due))

    async def _start_due(self) -> list[asyncio.Task[None]]:
        self._states.update(await self._store.states(list(self._sources)))
        now = self._clock()
        started: list[asyncio.Task[None]] = []
        for name, state in self._states.items():
            if name in self._running or not is_due(state, now):
                continue
            task = asyncio.create_task(self._guarded(name), name=f"poll {name}")
            self._running[name] = task
            task.add_done_callback(partial(self._forget, name))
            started.append(task)
        return started

    def _forget(self, name: str, _: asyncio.Task[None]) -> None:
        self._running.pop(name, None)

    async def _finish_running(self) -> None:
        tasks = list(self._running.values())
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self._options.stop_grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def _guarded(self, name: str) -> None:
        try:
            async with self._slots:
                lease = await self._locks[name].acquire()
                if lease is None:
                    return  # another replica is polling it right now
                async with lease:
                    await self._run_if_due(name, lease)
        except Exception:  # Redis down or a bug here: the source is simply tried next tick
            logger.exception("scheduling source %s failed", name, extra={"source": name})

    async def _run_if_due(self, name: str, lease: Lease) -> None:
        state = await self._store.state(name)  # fresh, under the lock: another replica may
        self._states[name] = state  # have polled it since this tick read the state
        started = self._clock()
        if not is_due(state, started):
            return
        try:
            async with asyncio.timeout(self._options.poll_timeout_s):  # TimeoutError: recorded
                poll = await self._sources[name].poll(await self._store.cursor(name))
                await self._publish(name, poll)
            lease.check()
        except Exception as exc:  # recorded, logged and backed off; see the module docstring
            await self._record_failure(name, state, started, exc, lease)
            return
        await self._record_success(name, state, started, poll, lease)

    def _normalise(self, name: str, poll: Poll) -> tuple[list[Document], list[Rejection]]:
        documents: list[Document] = []
        rejections: list[Rejection] = []
        for incoming in poll.documents:
            try:
                documents.append(normalise(incoming, self._limits))
            except DocumentRejectedError as exc:
                rejections.append(Rejection(incoming, str(exc)))
                logger.warning(
                    "document from %s rejected: %s",
                    name,
                    exc,
                    extra={"source": name, "external_id": incoming.external_id},
                )
        for invalid in poll.invalid:
            logger.warning(
                "record from %s invalid: %s: %s",
                name,
                invalid.ref,
                invalid.reason,
                extra={"source": name},
            )
        return documents, rejections

    async def _publish(self, name: str, poll: Poll) -> None:
        # Normalising (HTML parsing, language detection) is CPU work: keep the loop free.
        documents, rejections = await asyncio.to_thread(self._normalise, name, poll)
        report = PublishReport()
        if documents:
            report = await self._publisher.publish(documents, self._configs[name].priority)
        if poll.after_publish is not None:
            await poll.after_publish(rejections)
        counts = {
            "published": len(report.published),
            "duplicate": len(report.duplicates),
            "rejected": len(rejections) + len(poll.invalid),
        }
        for outcome, count in counts.items():
            self._metrics.documents.labels(name, outcome).inc(count)
        logger.log(
            logging.INFO if any(counts.values()) else logging.DEBUG,
            "polled %s: %d published, %d duplicates, %d rejected",
            name,
            *counts.values(),
            extra={"source": name, **counts},
        )

    async def _record_success(
        self, name: str, state: SourceState, started: float, poll: Poll, lease: Lease
    ) -> None:
        config = self._configs[name]
        delay = jittered(self._intervals[name], config.jitter, self._rng.uniform(-1, 1))
        new = after_success(state, started, self._clock(), delay)
        if not await self._store.save(
            name, new, fence=lease.fencing_token, cursor=poll.next_cursor
        ):
            logger.warning("%s: a newer lock holder's state stands; cursor not saved", name)
        self._states[name] = new
        self._metrics.polls.labels(name, "not_modified" if poll.not_modified else "ok").inc()
        self._metrics.failures.labels(name).set(0)

    async def _record_failure(
        self, name: str, state: SourceState, started: float, exc: Exception, lease: Lease
    ) -> None:
        failures = state.consecutive_failures + 1
        delay = jittered(
            failure_delay(self._intervals[name], failures, self._options.backoff_cap_s),
            self._configs[name].jitter,
            self._rng.uniform(-1, 1),
        )
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        new = after_failure(state, started, self._clock(), delay, error)
        await self._store.save(name, new, fence=lease.fencing_token)
        self._states[name] = new
        self._metrics.polls.labels(name, "error").inc()
        self._metrics.failures.labels(name).set(failures)
        level = logging.ERROR if failures >= REPORT_AFTER_FAILURES else logging.WARNING
        logger.log(
            level,
            "polling %s failed (%d in a row), next try in %.0f s: %s",
            name,
            failures,
            delay,
            new.last_error,
            exc_info=not isinstance(exc, SiftError),
            extra={"source": name, "consecutive_failures": failures},
        )
