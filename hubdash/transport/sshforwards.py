"""SSHForwards: a transport's port forwards through its SSHLink, both ways, kept on their
ports across reconnects: local ones are our own relay listeners whose far sides are
direct-tcpip channels, remote ones are listeners on the login node asked for again after a
reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import asyncssh

from hubdash.transport.base import Forward, TransportError
from hubdash.transport.relay import (
    FarSide,
    FarSideEvents,
    ListenerForward,
    RelayedConnection,
    RelayListener,
)
from hubdash.transport.sshconnect import Backoff
from hubdash.transport.sshlink import SSHLink


class _RemoteForward(Forward):
    """A listener on the login node; re-requested on the same port after a reconnect."""

    def __init__(
        self, listen_host: str, dest: tuple[str, int], forget: Callable[[Forward], None]
    ) -> None:
        super().__init__(listen_host, 0)
        self.dest, self._forget = dest, forget
        self._conn: asyncssh.SSHClientConnection | None = None
        self._listener: asyncssh.SSHListener | None = None

    async def _open_on(self, conn: asyncssh.SSHClientConnection) -> None:
        self._listener = await conn.forward_remote_port(
            self.listen_host, self.listen_port, *self.dest
        )
        self._conn, self.listen_port = conn, self._listener.get_port()

    @property
    def is_open(self) -> bool:
        return not self._closed and self._conn is not None and not self._conn.is_closed()

    async def close(self) -> None:
        self._closed = True
        self._forget(self)
        if self._listener is not None:
            self._listener.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._listener.wait_closed(), 5)


class _ChannelFarSide(FarSideEvents, asyncssh.SSHTCPSession[bytes]):
    """A direct-tcpip channel's session: its events go to the relayed connection it serves."""


class SSHForwards:
    """open_local_forward and open_remote_forward of the Transport contract, on `link`.

    The link's holder: while a forward is open the connection is kept, and restored at once
    when it drops; then each remote forward is asked for again on its port (a forward that
    `may_move` takes another after `reopen_attempts` refusals) and each forward announces
    its reopening.
    """

    def __init__(self, link: SSHLink, *, reopen_attempts: int) -> None:
        self._link = link
        self.host, self.log = link.host, link.log
        self.reopen_attempts = reopen_attempts
        self._open: set[Forward] = set()

    def holds_link(self) -> bool:
        return bool(self._open)

    def _forget(self, forward: Forward) -> None:
        self._open.discard(forward)
        self._link.touch()

    async def open_local_forward(
        self,
        dest_host: str,
        dest_port: int,
        *,
        listen_port: int = 0,
        listen_host: str = "127.0.0.1",
        spares: int = 0,
    ) -> Forward:
        await self._link.connection()  # fail here, not on the first relayed connection

        async def open_far(near: RelayedConnection) -> FarSide:
            conn = await self._link.connection()
            channel, _ = await conn.create_connection(
                lambda: _ChannelFarSide(near), dest_host, dest_port
            )
            return channel

        listener = await RelayListener.start(
            listen_host, listen_port, open_far, spares=spares, log=self.log
        )
        forward = ListenerForward(listener, lambda: self._link.connected, self._forget)
        self._open.add(forward)
        return forward

    async def open_remote_forward(
        self, listen_host: str, listen_port: int, dest_host: str, dest_port: int
    ) -> Forward:
        forward = _RemoteForward(listen_host, (dest_host, dest_port), self._forget)
        forward.listen_port = listen_port
        conn = await self._link.connection()
        try:
            await forward._open_on(conn)
        except asyncssh.ChannelListenError as exc:
            raise TransportError(
                f"{self.host} refused to listen on {listen_host} port {listen_port} for a "
                f"forward to {dest_host}:{dest_port} ({exc}): the port may be taken, "
                "or its sshd lacks AllowTcpForwarding or, for addresses other than localhost, "
                "GatewayPorts clientspecified."
            ) from None
        except (OSError, asyncssh.Error) as exc:
            raise TransportError(
                f"Could not open a forward from {self.host} port {listen_port}: {exc}."
            ) from None
        self._open.add(forward)
        return forward

    async def link_restored(self, conn: asyncssh.SSHClientConnection) -> None:
        for forward in list(self._open):
            if isinstance(forward, _RemoteForward):
                self._link.spawn(self._reopen_remote(forward, conn))
            else:  # our own listener never went away: it is usable again now
                forward._announce_reopen()

    async def _reopen_remote(
        self, forward: _RemoteForward, conn: asyncssh.SSHClientConnection
    ) -> None:
        """Ask again for the same port: the sshd of the old connection may hold it a while.

        A forward that `may_move` (its users follow it, see Tunnel.on_hub_port_moved) takes
        any free port after `reopen_attempts` refusals: someone else may have bound the
        old one meanwhile, and waiting for it would leave the job without a hub.
        """
        backoff, failures = Backoff(), 0
        while not forward._closed and not conn.is_closed():
            try:
                await forward._open_on(conn)
                forward._announce_reopen()
                self.log.info("Re-opened %r after reconnect", forward)
                return
            except (OSError, asyncssh.Error, asyncssh.ChannelListenError) as exc:
                failures += 1
                if failures == self.reopen_attempts and forward.may_move:
                    self.log.warning(
                        "%s does not give port %d back for a forward (%s); moving it to a new port",
                        self.host,
                        forward.listen_port,
                        exc,
                    )
                    forward.listen_port = 0
                    continue
                if failures == self.reopen_attempts:
                    self.log.error(
                        "%s does not give port %d back for a forward yet (%s); trying on",
                        self.host,
                        forward.listen_port,
                        exc,
                    )
            await backoff.wait()

    async def close(self) -> None:
        for forward in list(self._open):
            await forward.close()
