"""An aiohttp app served on 127.0.0.1 at a port the OS picks, for the tests' own servers
(FAKE upstreams, hooks, readiness stand-ins, an in-process gateway)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web


@asynccontextmanager
async def served(app: web.Application, **runner: Any) -> AsyncIterator[str]:
    """Serve `app` until the block ends; its base URL. `runner`: web.AppRunner's options."""
    app_runner = web.AppRunner(app, access_log=None, **runner)
    await app_runner.setup()
    try:
        site = web.TCPSite(app_runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{port}"
    finally:
        await app_runner.cleanup()
