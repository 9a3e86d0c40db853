"""Byte relays: copy between two stream pairs, and a TCP listener relaying each accepted connection.

Knows nothing of SSH or reconnects: the caller hands in a coroutine that opens the far side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

# Large reads keep throughput up; the SSH channel window (2 MiB) bounds what is in flight.
CHUNK_SIZE = 256 * 1024


class ByteReader(Protocol):
    async def read(self, n: int = -1) -> bytes: ...


class ByteWriter(Protocol):
    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    def can_write_eof(self) -> bool: ...
    def write_eof(self) -> None: ...
    def close(self) -> None: ...
    def get_extra_info(self, name: str, default: Any = None) -> Any: ...


OpenPeer = Callable[[], Awaitable[tuple[ByteReader, ByteWriter]]]


def set_nodelay(writer: ByteWriter) -> None:
    """Turn Nagle off on the writer's TCP socket, if it has one.

    With Nagle on, a reply written in two pieces waits for the client's delayed ACK (≈40 ms)
    on every new connection.
    """
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def pipe(reader: ByteReader, writer: ByteWriter) -> None:
    """Copy until end of file, then pass the EOF on, so the other direction keeps flowing."""
    while data := await reader.read(CHUNK_SIZE):
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()


async def relay(
    a_reader: ByteReader, a_writer: ByteWriter, b_reader: ByteReader, b_writer: ByteWriter
) -> None:
    """Pipe a→b and b→a until both have ended; an error on either side closes both at once."""
    tasks = [
        asyncio.create_task(pipe(a_reader, b_writer)),
        asyncio.create_task(pipe(b_reader, a_writer)),
    ]
    try:
        for finished in asyncio.as_completed(tasks):
            await finished  # the first error ends the relay
    finally:
        # Close before awaiting anything: a cancel landing on the await below must not skip it.
        for writer in (a_writer, b_writer):
            with contextlib.suppress(Exception):
                writer.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class RelayListener:
    """A TCP listener that relays every accepted connection to a peer opened on demand.

    One socket, bound with SO_REUSEADDR so the same port can be bound again at once after a
    close; TCP_NODELAY on every accepted socket. `close()` ends all relays it started.
    """

    def __init__(self, open_peer: OpenPeer, log: logging.Logger) -> None:
        self._open_peer = open_peer
        self._log = log
        self._server: asyncio.Server | None = None
        self._relays: dict[asyncio.Task[Any], ByteWriter] = {}
        self.host = ""
        self.port = 0

    @classmethod
    async def start(
        cls, host: str, port: int, open_peer: OpenPeer, *, log: logging.Logger | None = None
    ) -> RelayListener:
        self = cls(open_peer, log or logging.getLogger(__name__))
        loop = asyncio.get_running_loop()
        # One address only: a name such as "localhost" could otherwise bind two sockets, and
        # with port 0 they would get two different ports.
        family, _, proto, _, addr = (
            await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        )[0]
        sock = socket.socket(family, socket.SOCK_STREAM, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            self._server = await asyncio.start_server(self._accept, sock=sock)
        except BaseException:
            sock.close()
            raise
        self.host, self.port = sock.getsockname()[:2]
        return self

    @property
    def is_serving(self) -> bool:
        return self._server is not None and self._server.is_serving()

    @property
    def active(self) -> int:
        """Connections being relayed right now."""
        return len(self._relays)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._relays[task] = writer
        try:
            set_nodelay(writer)
            try:
                peer_reader, peer_writer = await self._open_peer()
            except Exception as exc:
                self._log.warning(
                    "Port %s:%d accepted a connection but could not open its far side: %s",
                    self.host,
                    self.port,
                    exc,
                )
                writer.close()
                return
            await relay(reader, writer, peer_reader, peer_writer)
        except (OSError, EOFError) as exc:
            # A reset by either end is an ordinary end for one relayed connection.
            self._log.debug("Relay on port %d ended: %r", self.port, exc)
        except Exception as exc:
            # Typically the SSH connection carrying the far side was lost.
            self._log.warning("Relay on port %d broke off: %r", self.port, exc)
        finally:
            writer.close()
            self._relays.pop(task, None)

    async def close(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        tasks = list(self._relays)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()
