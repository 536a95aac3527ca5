"""Request logs written to PostgreSQL in batches, off the request path.

The request path only appends a tuple to a bounded in-memory buffer. A background task copies
batches into `gateway.request_logs` with asyncpg's binary COPY. When PostgreSQL is down the
gateway keeps serving: the batch is retried with backoff, new rows wait in the buffer, and once
the buffer is full further rows are dropped and counted (readiness details say so).
"""

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from sift_gateway.metrics import GatewayMetrics

logger = logging.getLogger(__name__)

COLUMNS = (
    "request_id",
    "profile",
    "model",
    "upstream",
    "status_code",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "ttft_ms",
    "error",
    "created_at",
    "caller",
    "endpoint",
)


@dataclass(frozen=True, slots=True)
class LogRow:
    request_id: str
    profile: str
    model: str
    upstream: str | None
    status_code: int
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float
    ttft_ms: float | None
    error: str | None
    created_at: datetime
    caller: str | None = None  # the API key's name; None on an open (development) gateway
    endpoint: str | None = None  # chat or embeddings

    def as_record(self) -> tuple[Any, ...]:
        return tuple(getattr(self, column) for column in COLUMNS)


class RequestLogWriter:
    def __init__(
        self,
        dsn: str,
        metrics: GatewayMetrics,
        *,
        capacity: int = 50_000,
        batch_size: int = 2_000,
        flush_interval_s: float = 1.0,
    ) -> None:
        self._dsn = dsn
        self._metrics = metrics
        self._buffer: deque[LogRow] = deque()
        self._capacity = capacity
        self._batch_size = batch_size
        self._interval_s = flush_interval_s
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connection: asyncpg.Connection | None = None
        self.last_error: str | None = None
        self.last_write_at: float | None = None
        self.dropped = 0

    def record(self, row: LogRow) -> None:
        """Called on the request path: O(1), never blocks, never raises."""
        if len(self._buffer) >= self._capacity:
            self.dropped += 1
            self._metrics.request_logs_dropped.inc()
            return
        self._buffer.append(row)
        if len(self._buffer) >= self._batch_size:
            self._wakeup.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="request-log-writer")

    async def close(self, flush_timeout_s: float = 5.0) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            async with asyncio.timeout(flush_timeout_s):
                while self._buffer and await self._flush_once():
                    pass
        except TimeoutError:
            logger.warning("request logs: %d rows not flushed at shutdown", len(self._buffer))
        if self._connection is not None:
            await self._connection.close()

    def status(self) -> dict[str, Any]:
        return {
            "ok": self.last_error is None,
            "buffered": len(self._buffer),
            "dropped": self.dropped,
            "last_error": self.last_error,
        }

    async def _run(self) -> None:
        backoff_s = self._interval_s
        while True:
            try:
                async with asyncio.timeout(self._interval_s):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
            self._wakeup.clear()
            while self._buffer:
                if not await self._flush_once():
                    await asyncio.sleep(backoff_s)
                    backoff_s = min(backoff_s * 2, 30.0)
                    break
                backoff_s = self._interval_s

    async def _flush_once(self) -> bool:
        """Write one batch; True on success. Failed rows stay at the head of the buffer."""
        batch = [self._buffer[i] for i in range(min(self._batch_size, len(self._buffer)))]
        try:
            if self._connection is None or self._connection.is_closed():
                self._connection = await asyncpg.connect(self._dsn, timeout=5)
            await self._connection.copy_records_to_table(
                "request_logs",
                schema_name="gateway",
                columns=COLUMNS,
                records=[row.as_record() for row in batch],
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            if self.last_error is None:
                logger.warning("request logs: PostgreSQL write failed, buffering: %s", exc)
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._connection = None
            return False
        for _ in batch:
            self._buffer.popleft()
        self._metrics.request_logs_written.inc(len(batch))
        self.last_error = None
        self.last_write_at = time.monotonic()
        return True
