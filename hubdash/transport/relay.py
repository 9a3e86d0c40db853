"""A TCP listener that relays every accepted connection to a far side opened on demand.

Callbacks, not streams: bytes that arrive on one side are written to the other in the same
event-loop step, with no task, future or read loop per chunk. That is what keeps the relay's
added latency per request small. Knows nothing of SSH or reconnects: the caller hands in a
coroutine that opens the far side and feeds its events to the `RelayedConnection` it is given.
ListenerForward hands such a listener to a transport's callers as a Forward.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from hubdash.transport.base import Forward

# Bytes a client may send before its far side is open; beyond that its socket is paused.
# The same bound holds the other way: what a spare's far side sends before a client came.
EARLY_DATA_LIMIT = 256 * 1024
ACCEPT_BACKLOG = 100
ACCEPT_RETRY_DELAY = 1.0  # seconds without accepting after running out of file descriptors


class FarSide(Protocol):
    """The far side of one relayed connection (an asyncio transport or an SSH channel)."""

    def write(self, data: bytes) -> None: ...
    def write_eof(self) -> None: ...
    def close(self) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


OpenFarSide = Callable[["RelayedConnection"], Awaitable[FarSide]]


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Turn Nagle off on the transport's TCP socket, if it has one.

    With Nagle on, a reply written in two pieces waits for the client's delayed ACK (≈40 ms)
    on every new connection.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class RelayedConnection(asyncio.Protocol):
    """One accepted connection and its far side; the far side's events come in through the
    `far_*` methods, and an end or error on either side closes both.

    A spare is one whose far side the listener opened before any client came: the next
    accepted socket is handed to it, and skips the far side's opening round trip. The client's
    first bytes can reach the far side, and its answer come back, before the accepted socket
    has its transport (`connection_made`): what comes back meanwhile waits here.
    """

    def __init__(self, listener: RelayListener, *, spare: bool = False) -> None:
        self._listener = listener
        self.spare = spare
        self._near: asyncio.Transport | None = None
        self._far: FarSide | None = None
        self._early: list[bytes] = []  # from the client, before the far side is open
        self._early_size = 0
        self._far_early: list[bytes] = []  # from the far side, before the client's transport
        self._far_early_size = 0
        self._far_paused = False  # by us, for _far_early; resumed once it is passed on
        self._near_eof = self._far_eof = self._far_gone = False
        self._closed = self._answered = False
        self._opening: asyncio.Task[None] | None = None

    def open_far_side(self) -> None:
        self._opening = asyncio.get_running_loop().create_task(self._open_far())

    # -- the accepted (near) socket ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if self._closed:  # its far side could not open
            transport.close()
            return
        self._near = transport  # TCP_NODELAY is set already, at accept
        self._listener._connections.add(self)
        if self._far_paused and self._far is not None:
            # Before the flush: writing it may pause the far side again (pause_writing).
            self._far_paused = False
            self._far.resume_reading()
        if self._far_early:
            early, self._far_early, self._far_early_size = b"".join(self._far_early), [], 0
            self.far_data(early)
        if self._far_eof:
            self.far_eof()
        if self._far_gone:
            self.close()  # after what the far side sent: a closing transport still sends it

    def data_received(self, data: bytes) -> None:
        if self._far is not None:
            self._far.write(data)
            return
        self._early.append(data)
        self._early_size += len(data)
        if self._early_size > EARLY_DATA_LIMIT and self._near is not None:
            self._near.pause_reading()

    def eof_received(self) -> bool:
        self._near_eof = True
        if self._far is not None:
            self._far.write_eof()
        if self._far_eof:
            self.close()
        return True  # keep the other direction open until the far side ends it

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def pause_writing(self) -> None:
        # The client reads slower than the far side sends: stop reading the far side.
        if self._far is not None:
            self._far.pause_reading()

    def resume_writing(self) -> None:
        if self._far is not None:
            self._far.resume_reading()

    # -- the far side, as its transport reports it ---------------------------------------

    def far_data(self, data: bytes) -> None:
        if self._near is not None:
            self._near.write(data)
            if not self._answered:
                # The far side answers, so spares are worth keeping; opened only now, off
                # the path of this connection's request.
                self._answered = True
                self._listener._refill()
        else:
            # A spare's far side may talk before any client comes, and never stop: hold
            # EARLY_DATA_LIMIT of it, then stop reading it until a client takes it.
            self._far_early.append(data)
            self._far_early_size += len(data)
            self._pause_far_if_full()

    def _pause_far_if_full(self) -> None:
        full = self._far_early_size > EARLY_DATA_LIMIT
        if full and self._far is not None and not self._far_paused:
            self._far_paused = True
            self._far.pause_reading()

    def far_eof(self) -> None:
        if self.spare:
            self.close()  # a spare the server gave up on (say, an idle timeout): no client lost
            return
        self._far_eof = True
        if self._near is None:
            return  # passed on in connection_made
        if self._near.can_write_eof():
            self._near.write_eof()
        if self._near_eof:
            self.close()

    def far_closed(self, exc: BaseException | None) -> None:
        if self._near is None and not self.spare and not self._closed:
            self._far_gone = True  # the client still gets what came: closed in connection_made
            return
        if exc is not None and not self._closed and not self.spare:
            # Typically the SSH connection carrying the far side was lost.
            self._listener._log.warning("Relay on port %d broke off: %r", self._listener.port, exc)
        self.close()

    def far_pause_writing(self) -> None:
        if self._near is not None:
            self._near.pause_reading()

    def far_resume_writing(self) -> None:
        if self._near is not None:
            self._near.resume_reading()

    # -- both ----------------------------------------------------------------------------

    async def _open_far(self) -> None:
        try:
            far = await self._listener._open_far(self)
        except Exception as exc:
            self._listener._far_side_failed(exc, spare=self.spare)
            self.close()
            return
        self._listener._far_side_opened()
        if self._closed:
            far.close()
            return
        self._far = far
        if self._near is None:
            self._pause_far_if_full()  # it talked before it was ours to pause
        if self._early:
            far.write(b"".join(self._early))
            self._early.clear()
        if self._early_size > EARLY_DATA_LIMIT and self._near is not None:
            self._near.resume_reading()
        if self._near_eof:
            far.write_eof()

    def close(self) -> None:
        """Close both sides (data already written still goes out); idempotent."""
        if self._closed:
            return
        self._closed = True
        self._listener._forget(self)
        if self._near is not None:
            self._near.close()
        if self._far is not None:
            self._far.close()
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()


class RelayListener:
    """A TCP listener that relays every accepted connection to a far side opened on demand.

    One socket, bound with SO_REUSEADDR so the same port can be bound again at once after a
    close; TCP_NODELAY on every accepted socket. It accepts by itself rather than through
    asyncio's server, to pass on the request that came with a new connection at once: asyncio
    would first take a task and three event-loop steps to set the socket up (≈0.1 ms per
    new connection, measured). With `spares`, that many far sides are kept open ahead of
    clients, so a new connection does not wait for one: topped up each time a
    connection's far side first answers (so never while the far side refuses, and never on
    the path of a request). `close()` ends all relays it started.
    """

    def __init__(self, open_far: OpenFarSide, log: logging.Logger, spares: int = 0) -> None:
        self._open_far = open_far
        self._log = log
        self.spares = spares
        self._sock: socket.socket | None = None
        self._attaching: set[asyncio.Task[None]] = set()
        self._connections: set[RelayedConnection] = set()
        self._spares: deque[RelayedConnection] = deque()
        self._failing = False
        self.host = ""
        self.port = 0

    @classmethod
    async def start(
        cls,
        host: str,
        port: int,
        open_far: OpenFarSide,
        *,
        spares: int = 0,
        log: logging.Logger | None = None,
    ) -> RelayListener:
        self = cls(open_far, log or logging.getLogger(__name__), spares)
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
            sock.listen(ACCEPT_BACKLOG)
            sock.setblocking(False)
            loop.add_reader(sock.fileno(), self._accept)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self.host, self.port = sock.getsockname()[:2]
        return self

    @property
    def is_serving(self) -> bool:
        return self._sock is not None

    def _accept(self) -> None:
        """Accept what is waiting; hand each connection the bytes it brought, at once."""
        assert self._sock is not None
        for _ in range(ACCEPT_BACKLOG):
            try:
                client, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                # Out of file descriptors or memory: stop accepting for a moment, not spin.
                self._log.warning("Port %d cannot accept connections: %s", self.port, exc)
                self._pause_accepting()
                return
            client.setblocking(False)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = self._connection_for_client()
            try:
                early = client.recv(EARLY_DATA_LIMIT)
            except (BlockingIOError, InterruptedError):
                early = b""
            except OSError:  # reset already
                client.close()
                connection.close()
                continue
            if early:
                connection.data_received(early)
            task = asyncio.get_running_loop().create_task(self._attach(client, connection))
            self._attaching.add(task)
            task.add_done_callback(self._attaching.discard)

    async def _attach(self, client: socket.socket, connection: RelayedConnection) -> None:
        """Give the accepted socket an asyncio transport, with `connection` as its protocol."""
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(lambda: connection, client)
        except BaseException:
            client.close()
            connection.close()
            raise

    def _pause_accepting(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._sock is not None
        loop.remove_reader(self._sock.fileno())

        def resume() -> None:
            if self._sock is not None:  # not closed meanwhile
                loop.add_reader(self._sock.fileno(), self._accept)

        loop.call_later(ACCEPT_RETRY_DELAY, resume)

    @property
    def active(self) -> int:
        """Connections being relayed right now (spares not counted)."""
        return len(self._connections)

    @property
    def spares_open(self) -> int:
        """Spare far sides opened or opening, waiting for a client."""
        return len(self._spares)

    def _far_side_failed(self, exc: Exception, *, spare: bool) -> None:
        # Once per outage, not once per connection: a server that is still starting is
        # probed every 0.1 s. A spare that cannot open costs no client anything.
        quiet = spare or self._failing
        self._failing = self._failing or not spare
        (self._log.debug if quiet else self._log.warning)(
            "Port %s:%d accepted a connection but could not open its far side: %s%s",
            self.host,
            self.port,
            exc,
            "" if quiet else " (until one opens again, further failures are logged at debug level)",
        )

    def _far_side_opened(self) -> None:
        if self._failing:
            self._failing = False
            self._log.info("Port %s:%d reaches its far side again", self.host, self.port)

    def _connection_for_client(self) -> RelayedConnection:
        """The protocol for a socket just accepted, its far side open or opening: the oldest
        spare, else a new one."""
        while self._spares:
            connection = self._spares.popleft()
            if not connection._closed:
                connection.spare = False
                return connection
        connection = RelayedConnection(self)
        connection.open_far_side()
        return connection

    def _refill(self) -> None:
        while self.is_serving and len(self._spares) < self.spares:
            connection = RelayedConnection(self, spare=True)
            self._spares.append(connection)
            connection.open_far_side()

    def _forget(self, connection: RelayedConnection) -> None:
        self._connections.discard(connection)
        if connection.spare:
            with contextlib.suppress(ValueError):
                self._spares.remove(connection)

    async def close(self) -> None:
        if self._sock is None:
            return
        sock, self._sock = self._sock, None
        asyncio.get_running_loop().remove_reader(sock.fileno())
        sock.close()
        for task in list(self._attaching):
            task.cancel()
        await asyncio.gather(*self._attaching, return_exceptions=True)
        openings = []
        for connection in [*self._connections, *self._spares]:
            if connection._opening is not None:
                openings.append(connection._opening)
            connection.close()
        await asyncio.gather(*openings, return_exceptions=True)


class FarSideEvents(asyncio.Protocol):
    """Feeds a far side's events to the relayed connection it serves: as the protocol of a
    plain TCP connection, or (with asyncssh's session methods mixed in) of an SSH channel."""

    def __init__(self, near: RelayedConnection) -> None:
        self._near = near

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if isinstance(transport, asyncio.Transport):
            set_nodelay(transport)

    def data_received(self, data: bytes, datatype: object = None) -> None:
        self._near.far_data(data)

    def eof_received(self) -> bool:
        self._near.far_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._near.far_closed(exc)

    def pause_writing(self) -> None:
        self._near.far_pause_writing()

    def resume_writing(self) -> None:
        self._near.far_resume_writing()


async def open_socket_far_side(near: RelayedConnection, host: str, port: int) -> FarSide:
    """Connect to host:port directly as the far side of `near`."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(lambda: FarSideEvents(near), host, port)
    return transport


class ListenerForward(Forward):
    """A local forward that is a RelayListener of our own: it outlives reconnects of the
    link its far sides go through, so its port never changes. `link_up` says whether that
    link is up now."""

    def __init__(
        self,
        listener: RelayListener,
        link_up: Callable[[], bool],
        forget: Callable[[Forward], None],
    ) -> None:
        super().__init__(listener.host, listener.port)
        self.listener, self._link_up, self._forget = listener, link_up, forget

    @property
    def is_open(self) -> bool:
        return not self._closed and self.listener.is_serving and self._link_up()

    async def close(self) -> None:
        self._closed = True
        self._forget(self)
        await self.listener.close()
