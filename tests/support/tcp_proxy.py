"""A small asyncio TCP proxy that can cut every connection it carries and refuse new ones for a
while: a network partition between the services and RabbitMQ, with the broker itself healthy.

Refusing means accepting and resetting at once (the client's handshake fails), so the proxy can
count the reconnect attempts it turned away — evidence that the clients noticed and retried.
Run it on a `BackgroundLoop`: it must keep relaying while the test's own loop waits.
"""

import asyncio
import contextlib
import time
from dataclasses import dataclass, field


@dataclass
class ProxyStats:
    accepted: int = 0
    cut: int = 0  # connections aborted by `cut`
    refused: int = 0  # connection attempts reset while refusing


@dataclass
class TcpProxy:
    target_host: str
    target_port: int
    host: str = "127.0.0.1"
    port: int = 0
    stats: ProxyStats = field(default_factory=ProxyStats)
    _server: asyncio.Server | None = None
    _refuse_until: float = 0.0
    _open: set[asyncio.WriteTransport] = field(default_factory=set)
    _pairs: int = 0

    @property
    def open_connections(self) -> int:
        return self._pairs

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._abort_all()
            await self._server.wait_closed()

    async def cut(self, refuse_s: float) -> int:
        """Abort every open connection, and reset new ones for `refuse_s` seconds; returns how
        many client connections were cut."""
        self._refuse_until = time.monotonic() + refuse_s
        cut = self._pairs
        self.stats.cut += cut
        self._abort_all()
        return cut

    async def heal(self) -> None:
        self._refuse_until = 0.0

    async def open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The connection to the target (a subclass may pick among several)."""
        return await asyncio.open_connection(self.target_host, self.target_port)

    def _abort_all(self) -> None:
        for transport in list(self._open):
            transport.abort()
        self._open.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = writer.transport
        if time.monotonic() < self._refuse_until:
            self.stats.refused += 1
            client.abort()
            return
        try:
            upstream_reader, upstream_writer = await self.open_upstream()
        except OSError:
            client.abort()
            return
        upstream = upstream_writer.transport
        self._open.update((client, upstream))
        self.stats.accepted += 1
        self._pairs += 1
        try:
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        finally:
            self._pairs -= 1
            for transport in (client, upstream):
                transport.abort()
                self._open.discard(transport)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until either side ends; then end the other direction too."""
    with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()
