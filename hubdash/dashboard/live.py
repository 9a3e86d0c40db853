"""What one open page is told as it happens: a server's progress relayed from the hub and its
state read at intervals (status page), or a user's server list (My servers page).

Decides what to send and when; the handler owns the connection and the wire format.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from hubdash.dashboard.clusters import ClusterDirectory, ClusterHealth
from hubdash.dashboard.hubapi import HubAPI, HubAPIError
from hubdash.dashboard.views import server_view

Send = Callable[[str, Any], Awaitable[None]]
log = logging.getLogger("hubdash.dashboard.live")

# Fields that change on every reading by themselves: a page counts them on its own clock.
_CLOCK_FIELDS = ("time", "elapsed_seconds", "walltime_left_seconds")


def _stable(view: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in view.items() if key not in _CLOCK_FIELDS}


async def known_clusters(directory: ClusterDirectory | None) -> list[ClusterHealth] | None:
    """The hub's cluster list, if there is a directory to ask (None: no cluster information)."""
    return await directory.get() if directory is not None else None


async def read_servers(api: HubAPI, user: str) -> dict[str, dict[str, Any]]:
    """The user's server models, spawner state included (read with the service's token)."""
    model = await api.user(user)
    servers = model.get("servers") or {}
    return {name: dict(server, name=name) for name, server in servers.items()}


class ServerFeed:
    """Keeps one page up to date about one server.

    Sends `server` (the server's view) when it changes, `progress` (each event of the hub's
    progress stream, replayed from the start of the current spawn), then `ready` or `failed`,
    and `problem` when the hub cannot be read for now.
    """

    def __init__(
        self,
        api: HubAPI,
        user: str,
        server: str,
        token: str,
        send: Send,
        interval: float = 5.0,
        clusters: ClusterDirectory | None = None,
    ) -> None:
        self.api, self.user, self.server, self.token = api, user, server, token
        self.send = send
        self.interval = interval
        self.clusters = clusters
        self._wake = asyncio.Event()
        self._relay: asyncio.Task | None = None
        self._last_sent: dict[str, Any] | None = None

    async def run(self) -> None:
        """Until cancelled (the page went away)."""
        first = True
        try:
            while True:
                self._wake.clear()
                view = await self._read()
                if view is not None:
                    await self._send_view(view)
                    # The hub replays a pending start; after a failed one it tells why.
                    wants_relay = view["pending"] == "spawn" or (first and not view["ready"])
                    if wants_relay and (self._relay is None or self._relay.done()):
                        self._relay = asyncio.ensure_future(self._relay_progress())
                first = False
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.interval):
                        await self._wake.wait()
        finally:
            if self._relay is not None:
                self._relay.cancel()
                with contextlib.suppress(BaseException):
                    await self._relay

    async def _read(self) -> dict[str, Any] | None:
        try:
            servers = await read_servers(self.api, self.user)
        except HubAPIError as exc:
            log.warning("Could not read %s's servers: %s", self.user, exc)
            await self.send("problem", {"message": f"The hub did not answer ({exc.status})."})
            return None
        model = servers.get(self.server) or {"name": self.server, "pending": None, "ready": False}
        return server_view(self.user, model, clusters=await known_clusters(self.clusters))

    async def _send_view(self, view: dict[str, Any]) -> None:
        stable = _stable(view)
        if stable != self._last_sent:
            self._last_sent = stable
            await self.send("server", view)

    async def _relay_progress(self) -> None:
        try:
            async for event in self.api.progress(self.user, self.server, self.token):
                await self.send("progress", event)
                if event.get("ready"):
                    await self.send("ready", {"url": event.get("url") or ""})
                elif event.get("failed"):
                    await self.send("failed", {"message": event.get("message") or "Spawn failed"})
                # A new phase usually means new state (node, tunnel): read it now.
                self._wake.set()
        except HubAPIError as exc:
            # 400: not starting; 404: never started. Nothing to relay either way.
            if exc.status not in (400, 404):
                log.warning("Progress of %s/%s unavailable: %s", self.user, self.server, exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Relaying the progress of %s/%s failed", self.user, self.server)


class ServerListFeed:
    """Keeps the My servers page up to date: sends `servers` (every view) when any changes."""

    def __init__(
        self,
        api: HubAPI,
        user: str,
        send: Send,
        interval: float = 5.0,
        clusters: ClusterDirectory | None = None,
    ) -> None:
        self.api, self.user, self.send, self.interval = api, user, send, interval
        self.clusters = clusters
        self._last_sent: list[dict[str, Any]] | None = None

    async def run(self) -> None:
        while True:
            try:
                servers = await read_servers(self.api, self.user)
            except HubAPIError as exc:
                await self.send("problem", {"message": f"The hub did not answer ({exc.status})."})
            else:
                known = await known_clusters(self.clusters)
                now = time.time()
                views = [
                    server_view(self.user, servers[name], now, known) for name in sorted(servers)
                ]
                stable = [_stable(view) for view in views]
                if stable != self._last_sent:
                    self._last_sent = stable
                    await self.send("servers", views)
            await asyncio.sleep(self.interval)
