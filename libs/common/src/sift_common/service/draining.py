"""uvicorn that drains on SIGTERM, for every service with an HTTP listener.

The first SIGTERM turns readiness 503 and keeps serving for a grace period, so whatever
routes traffic sees the service leave before its listener closes; then uvicorn stops as usual
(in-flight requests finish, the lifespan's shutdown stops consuming). SIGINT, or a second
SIGTERM, stops at once.
"""

import logging
import signal
import time
from types import FrameType
from typing import Protocol

import uvicorn

logger = logging.getLogger(__name__)


class Drainable(Protocol):
    """A readiness report that answers 503 once `draining` is set."""

    draining: bool


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, readiness: Drainable, grace_s: float) -> None:
        super().__init__(config)
        self._readiness, self._grace_s = readiness, grace_s
        self._drain_until: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self._drain_until is None:
            self._readiness.draining = True
            self._drain_until = time.monotonic() + self._grace_s
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        draining = self._drain_until is not None and not self.should_exit
        if draining and time.monotonic() >= (self._drain_until or 0.0):
            logger.info("shutting down: draining what is in flight")
            self.should_exit = True
        return await super().on_tick(counter)
