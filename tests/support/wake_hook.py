"""The wake hook of docs/gateway.md ("Waking a stopped engine") for tests: an HTTP endpoint
that the gateway POSTs `{"profile", "served_model", "waiting"}` to when a profile with `wake`
has no replica up. It records each call, answers `status` at once (202: starting) and runs
`start_engine` in the background, as a real hook starts a VM or scales a Deployment and
returns. `start_engine` None: the hook accepts and starts nothing (an engine that never
wakes); a `status` other than 2xx: the hook refuses.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.served import served

StartEngine = Callable[[], Coroutine[Any, Any, object]]


@dataclass
class WakeHook:
    start_engine: StartEngine | None = None
    status: int = 202
    calls: list[dict[str, Any]] = field(default_factory=list)
    called_at: list[float] = field(default_factory=list)  # time.monotonic()
    started: asyncio.Task[object] | None = None
    url: str = ""

    async def _wake(self, request: web.Request) -> web.Response:
        self.calls.append(await request.json())
        self.called_at.append(time.monotonic())
        if self.start_engine is not None and 200 <= self.status < 300 and self.started is None:
            self.started = asyncio.create_task(self.start_engine())
        return web.json_response({"accepted": 200 <= self.status < 300}, status=self.status)


@asynccontextmanager
async def running_hook(hook: WakeHook) -> AsyncIterator[WakeHook]:
    app = web.Application()
    app.router.add_post("/wake", hook._wake)
    async with served(app) as url:
        hook.url = f"{url}/wake"
        try:
            yield hook
        finally:
            if hook.started is not None and not hook.started.done():
                hook.started.cancel()
