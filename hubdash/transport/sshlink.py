"""SSHLink: the one live SSH connection of a user's transport, shared by its commands, SFTP
and forwards: connected on first use and again after a drop, closed when unused for a while,
and handing out its sessions (command and SFTP channels) a bounded number at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import asyncssh

from hubdash.transport.base import TransportError
from hubdash.transport.sshconnect import Backoff, SSHConnector

T = TypeVar("T")
# A refused session ran nothing: it is safe to ask again, this many times, first after
# SESSION_RETRY_DELAY seconds, doubling.
SESSION_OPEN_ATTEMPTS = 6
SESSION_RETRY_DELAY = 0.05


class LinkHolder(Protocol):
    """What needs the connection even while nothing else uses it (a transport's forwards):
    while it holds the link, the link is never closed as idle and is restored at once when
    it drops, and the holder is told of each new connection after the first."""

    def holds_link(self) -> bool: ...

    async def link_restored(self, conn: asyncssh.SSHClientConnection) -> None: ...


class SSHLink:
    """One long-lived connection made by `connector`.

    It is opened on first use; when it drops, the next use reconnects, and while the
    `holder` holds it a watchdog reconnects on its own. At most `max_sessions` sessions are
    open at once: OpenSSH's MaxSessions defaults to 10 per connection and refuses the rest.
    Forwarded TCP channels are not sessions and not counted.

    With `idle_timeout` (seconds; 0: never) the connection is closed once nothing has used
    it for that long: no holder, no session, no one waiting for one. Its sshd process on the
    login node ends with it; the next use connects again.
    """

    def __init__(self, connector: SSHConnector, *, max_sessions: int, idle_timeout: float) -> None:
        self.connector = connector
        self.host, self.log = connector.host, connector.log
        self.max_sessions, self.idle_timeout = max_sessions, idle_timeout
        self.holder: LinkHolder | None = None
        self.conn: asyncssh.SSHClientConnection | None = None  # the live one, if any
        self.closed = False
        self._sessions = asyncio.Semaphore(max_sessions)
        self._connect_lock = asyncio.Lock()
        self._ever_connected = False
        self._tasks: set[asyncio.Task[Any]] = set()
        # What uses the connection now (sessions, waiters, kept sessions), and the timer
        # that closes it once nothing has for idle_timeout.
        self._users = 0
        self._idle_timer: asyncio.TimerHandle | None = None

    @property
    def connected(self) -> bool:
        return self.conn is not None and not self.conn.is_closed()

    def __repr__(self) -> str:
        c = self.connector
        return f"<SSHLink {c.username}@{c.host}:{c.port}>"

    def _held(self) -> bool:
        return self.holder is not None and self.holder.holds_link()

    # -- connecting ------------------------------------------------------------------------

    async def connection(self) -> asyncssh.SSHClientConnection:
        """The live connection, (re)connecting first if there is none."""
        self.touch()
        if self.connected:
            assert self.conn is not None
            return self.conn
        async with self._connect_lock:
            if self.closed:
                raise TransportError(f"The SSH transport to {self.host} has been closed.")
            if self.connected:
                assert self.conn is not None
                return self.conn
            conn = await self.connector.connect()
            if self.closed:  # close() ran while we were connecting
                conn.close()
                raise TransportError(f"The SSH transport to {self.host} has been closed.")
            self.conn = conn
            self.touch()  # connecting may have taken longer than idle_timeout
            c = self.connector
            self.log.info("SSH connection to %s@%s:%d open", c.username, c.host, c.port)
            self.spawn(self._watch(conn))
            if self._ever_connected and self.holder is not None:
                self.spawn(self.holder.link_restored(conn))
            self._ever_connected = True
            return conn

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Run `coro` in the background until it ends or the link closes; a failure is logged."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("Background task of %r failed", self, exc_info=task.exception())

    async def _watch(self, conn: asyncssh.SSHClientConnection) -> None:
        """Notice a dropped connection; while the holder needs it, reconnect without waiting."""
        await conn.wait_closed()
        if self.closed or self.conn is not conn:
            return
        self.log.warning("SSH connection to %s:%d lost", self.host, self.connector.port)
        backoff = Backoff()
        while not self.closed and self._held() and not self.connected:
            try:
                await self.connection()
            except TransportError as exc:
                self.log.error(
                    "Forwards through %s stay down until it answers again: %s", self.host, exc
                )
                await backoff.wait()

    # -- closing when idle ------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _in_use(self) -> AsyncIterator[None]:
        """The connection is in use meanwhile (waiting for a session slot counts)."""
        self._busy()
        try:
            yield
        finally:
            self._free()

    def _busy(self) -> None:
        self._users += 1
        self.touch()

    def _free(self) -> None:
        self._users -= 1
        self.touch()

    def touch(self) -> None:
        """(Re)start the idle countdown, if nothing holds the connection open."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self.idle_timeout <= 0 or self.closed or self._users or self._held():
            return  # whatever holds it calls touch() when it lets go
        loop = asyncio.get_running_loop()
        self._idle_timer = loop.call_later(self.idle_timeout, self._close_if_idle)

    def _close_if_idle(self) -> None:
        self._idle_timer = None
        conn = self.conn
        if self._users or self._held() or self.closed or conn is None or conn.is_closed():
            return
        # Dropped from self.conn first: _watch takes it as ours to close, not as a lost one.
        self.conn = None
        c = self.connector
        self.log.info(
            "SSH connection to %s@%s:%d closed after %g s unused",
            c.username,
            c.host,
            c.port,
            self.idle_timeout,
        )
        conn.close()

    # -- sessions --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def session(
        self, what: str, opener: Callable[[asyncssh.SSHClientConnection], Awaitable[T]]
    ) -> AsyncIterator[tuple[asyncssh.SSHClientConnection, T]]:
        """A session slot for the block, and `opener(conn)` run on the live connection in it:
        the connection it opened on, and what it returned (the caller closes that)."""
        async with self._in_use(), self._sessions:
            yield await self._open_session(what, opener)

    async def hold_session(
        self, what: str, opener: Callable[[asyncssh.SSHClientConnection], Awaitable[T]]
    ) -> tuple[asyncssh.SSHClientConnection, T]:
        """As session(), for a session kept open across uses: it holds its slot, and keeps
        the connection from closing as idle, until release_session()."""
        await self._sessions.acquire()
        self._busy()
        try:
            return await self._open_session(what, opener)
        except BaseException:
            self.release_session()
            raise

    def release_session(self) -> None:
        """The slot of a session from hold_session() is free again (its owner closed it)."""
        self._sessions.release()
        self._free()

    async def _open_session(
        self, what: str, opener: Callable[[asyncssh.SSHClientConnection], Awaitable[T]]
    ) -> tuple[asyncssh.SSHClientConnection, T]:
        """Open a session channel (the caller holds a slot), trying again when it was refused
        or the connection was dead: a session that never opened ran nothing. sshd frees a
        closed session a moment after our side has seen it close ("no more sessions")."""
        delay = SESSION_RETRY_DELAY
        for attempt in range(1, SESSION_OPEN_ATTEMPTS + 1):
            conn = await self.connection()
            try:
                return conn, await opener(conn)
            except asyncssh.ChannelOpenError as exc:
                if attempt == SESSION_OPEN_ATTEMPTS:
                    raise TransportError(
                        f"{self.host} refused a session for {what} {attempt} times "
                        f"({exc.reason}). Its sshd's MaxSessions must be above max_sessions "
                        f"({self.max_sessions})."
                    ) from None
                if conn.is_closed():
                    self.log.info(
                        "SSH connection to %s was dead; opening the session for %s on a new one",
                        self.host,
                        what,
                    )
                    continue
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    # -- closing ---------------------------------------------------------------------------

    def shut(self) -> None:
        """Connect no more from now on, and stop the idle countdown; close() ends the rest."""
        self.closed = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()

    async def close(self) -> None:
        """Stop the background tasks and close the connection."""
        self.shut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.conn is not None:
            self.conn.close()
            await self.conn.wait_closed()
