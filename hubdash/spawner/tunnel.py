"""The forwards of one single-user server (hub API out to the login node, notebook back), and
their health probe. Opens nothing itself: re-opening after a reconnect is the transport's job.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable
from typing import Any, Protocol

from hubdash.transport.base import Forward, Transport

# Any HTTP answer proves the whole path works; HEAD keeps it tiny.
_PROBE_REQUEST = b"HEAD / HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: hubdash-probe\r\n\r\n"


class LocalForwardOpener(Protocol):
    """What opens the notebook forward: the user's transport, or the forward keeper."""

    async def open_local_forward(
        self, dest_host: str, dest_port: int, *, listen_port: int = 0, spares: int = 0
    ) -> Forward: ...


class Tunnel:
    """Forwards for one server. Ports given here (e.g. from saved state after a hub restart)
    are asked for again, so a proxy route to the old local port stays valid."""

    def __init__(
        self,
        transport: Transport,
        node: str | None = None,
        remote_port: int | None = None,
        hub_host: str | None = None,
        hub_port: int | None = None,
        remote_listen_host: str = "127.0.0.1",
        local_port: int = 0,
        hub_forward_port: int = 0,
        spare_connections: int = 0,
        probe_ssl: ssl.SSLContext | None = None,
        on_hub_port_moved: Callable[[int], object] | None = None,
        notebook_opener: LocalForwardOpener | None = None,
    ) -> None:
        self.transport = transport
        # The forward keeper, when the notebook forward is to outlive the hub process.
        self.notebook_opener: LocalForwardOpener = notebook_opener or transport
        self.node, self.remote_port = node, remote_port
        self.hub_host, self.hub_port = hub_host, hub_port
        self.remote_listen_host = remote_listen_host
        self.local_port, self.hub_forward_port = local_port, hub_forward_port
        self.spare_connections = spare_connections
        # With internal TLS the server answers only TLS clients holding a hub certificate.
        self.probe_ssl = probe_ssl
        # Called with the new login-side port when the hub forward had to move there.
        self.on_hub_port_moved = on_hub_port_moved
        self.hub_forward: Forward | None = None
        self.notebook_forward: Forward | None = None
        self.rtt_ms: float | None = None

    async def open_hub_forward(
        self,
        hub_host: str | None = None,
        hub_port: int | None = None,
        *,
        listen_port: int | None = None,
    ) -> int:
        """Listen on the login node for the job, towards the hub API; returns the login-side
        port. Done before the job is submitted, so the job knows where the hub is."""
        self.hub_host = hub_host or self.hub_host
        self.hub_port = hub_port or self.hub_port
        if listen_port is not None:
            self.hub_forward_port = listen_port
        if not self.hub_host or not self.hub_port:
            raise ValueError("open_hub_forward needs the hub API's host and port")
        if self.hub_forward is not None:
            await self.hub_forward.close()
            self.hub_forward = None
        self.hub_forward = await self.transport.open_remote_forward(
            self.remote_listen_host, self.hub_forward_port, self.hub_host, self.hub_port
        )
        self.hub_forward_port = self.hub_forward.listen_port
        self.hub_forward.on_reopen = self._hub_forward_reopened
        self.hub_forward.may_move = self.on_hub_port_moved is not None
        return self.hub_forward_port

    def _hub_forward_reopened(self, forward: Forward) -> None:
        """After an SSH reconnect: the forward is back, on its old port or a new one."""
        if forward.listen_port != self.hub_forward_port:
            self.hub_forward_port = forward.listen_port
            if self.on_hub_port_moved is not None:
                self.on_hub_port_moved(forward.listen_port)

    async def open_notebook_forward(
        self,
        node: str | None = None,
        remote_port: int | None = None,
        *,
        local_port: int | None = None,
    ) -> int:
        """Listen on 127.0.0.1 here, towards node:remote_port via the login node; returns the
        local port (the one asked for, or the previous one, if it was given)."""
        self.node = node or self.node
        self.remote_port = remote_port or self.remote_port
        if local_port is not None:
            self.local_port = local_port
        if not self.node or not self.remote_port:
            raise ValueError("open_notebook_forward needs the node and port of the server")
        if self.notebook_forward is not None:
            await self.notebook_forward.close()
        self.notebook_forward = await self.notebook_opener.open_local_forward(
            self.node,
            self.remote_port,
            listen_port=self.local_port,
            spares=self.spare_connections,
        )
        self.local_port = self.notebook_forward.listen_port
        return self.local_port

    async def renew(self) -> bool:
        """Extend the notebook forward's lease where the forward keeper holds it; False when
        the forward is gone for good (the keeper lost it) and must be opened again."""
        forward = self.notebook_forward
        renew = getattr(forward, "renew", None)
        if forward is None or renew is None:
            return forward is not None
        return await renew()

    async def probe(self, timeout: float = 5) -> float | None:  # noqa: ASYNC109
        """Seconds from connecting through the notebook forward to the first bytes of an HTTP
        answer (a new connection each time, as a browser makes them); None if none came."""
        forward = self.notebook_forward
        if forward is None or not forward.is_open:
            self.rtt_ms = None
            return None
        writer = None
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1",
                    forward.listen_port,
                    ssl=self.probe_ssl,
                    server_hostname="127.0.0.1" if self.probe_ssl else None,
                )
                writer.write(_PROBE_REQUEST)
                await writer.drain()
                answer = await reader.readexactly(5)
        except (OSError, EOFError, TimeoutError):  # ssl.SSLError is an OSError
            answer = b""
        finally:
            if writer is not None:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
        if answer != b"HTTP/":
            self.rtt_ms = None
            return None
        elapsed = time.perf_counter() - started
        self.rtt_ms = round(elapsed * 1000, 2)
        return elapsed

    @property
    def state(self) -> dict[str, Any]:
        """What the dashboard shows about this tunnel (plain JSON)."""
        hub, notebook = self.hub_forward, self.notebook_forward
        return {
            "hub_forward": {
                "port": hub.listen_port if hub else (self.hub_forward_port or None),
                "open": bool(hub and hub.is_open),
            },
            "notebook_forward": {
                "local_port": notebook.listen_port if notebook else (self.local_port or None),
                "node": self.node,
                "remote_port": self.remote_port,
                "open": bool(notebook and notebook.is_open),
            },
            "rtt_ms": self.rtt_ms,
        }

    async def close(self) -> None:
        for forward in (self.notebook_forward, self.hub_forward):
            if forward is not None:
                await forward.close()
        self.rtt_ms = None
