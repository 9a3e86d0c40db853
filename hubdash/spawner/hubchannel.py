"""The server's forwards through the login node, as the spawner keeps them: the notebook
forward the proxy uses, and the hub forward the job calls the hub through (followed by the
job's relay, hubdash/job/hubrelay.py, when its port moves). Part of JobSpawner."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

from hubdash.job.contract import (
    CERT_FILES,
    CERTS_DIR,
    ROUTE_FILE,
    HubRoute,
)
from hubdash.keeper.client import KeeperForwards
from hubdash.spawner.hubstate import hub_state
from hubdash.spawner.internaltls import probe_context
from hubdash.spawner.spawnerror import SpawnError
from hubdash.spawner.tunnel import Tunnel
from hubdash.spawner.wiring import user_keys_of
from hubdash.transport.base import Transport, TransportError


class HubChannel:
    """JobSpawner's tunnel and hub-forward keeping (a mixin: it uses the spawner's settings)."""

    @property
    def _hub_address_for_jobs(self) -> str:
        return self.hub_address_for_jobs or self.login_host or "127.0.0.1"

    def _hub_api_address(self) -> tuple[str, int]:
        api = urlsplit(self.hub.api_url)
        return api.hostname or "127.0.0.1", api.port or (443 if api.scheme == "https" else 80)

    def _new_tunnel(self, transport: Transport) -> Tunnel:
        return Tunnel(
            transport,
            remote_listen_host=self.hub_forward_listen_address or self._hub_address_for_jobs,
            spare_connections=self.tunnel_spare_connections,
            probe_ssl=probe_context(self) if self.internal_ssl else None,
            on_hub_port_moved=lambda port: self._hub_port_moved(transport, port),
            notebook_opener=self._kept_forwards(),
        )

    def _kept_forwards(self) -> KeeperForwards | None:
        """The forward keeper's opener of this server's notebook forward, unless the
        forwards live in the hub process (forward_keeper = 'hub')."""
        if self.forward_keeper != "process":
            return None
        client = hub_state(self.user).keeper(
            self.keeper_socket_path, start=self.forward_keeper_start
        )
        return KeeperForwards(
            client,
            f"{self.user.name}/{self.name}",
            self.cluster.config.login,
            self.cluster_username,
            user_keys_of(self, self.user),
            lease=self.forward_keeper_lease,
        )

    async def _close_kept_forward(self) -> None:
        """Close the server's forward in the keeper when no tunnel of this process holds it:
        a job that ended while the hub was down leaves one there."""
        kept = self._kept_forwards()
        if kept is not None:
            await kept.close()

    async def _write_hub_route(self, transport: Transport, port: int) -> None:
        """Tell the job's relay (hubdash/job/hubrelay.py) where the hub forward listens now."""
        route = HubRoute(self._hub_address_for_jobs, port)
        await transport.write_file(f"{self.state_dir}/{ROUTE_FILE}", route.encode(), mode=0o600)

    def _hub_port_moved(self, transport: Transport, port: int) -> None:
        """The transport moved the hub forward to `port` after a reconnect."""
        task = asyncio.ensure_future(self._follow_hub_port(transport, port))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _follow_hub_port(self, transport: Transport, port: int) -> None:
        """The hub forward now listens on `port`: saved, and the job's relay told."""
        self.log.warning(
            "Hub forward of %s moved from port %s to %d on the login node",
            self._log_name,
            self.job.hub_forward_port,
            port,
        )
        self.job.hub_forward_port = port
        self._save_state()
        try:
            await self._write_hub_route(transport, port)
        except (TransportError, OSError) as exc:
            self.log.error(
                "Could not tell the job of %s where the hub forward moved: %s", self._log_name, exc
            )

    async def move_certs(self, paths: dict[str, str]) -> dict[str, str]:
        """Put the server's internal-TLS key and certificates into its private folder.

        Over SFTP as the user, each file 0600 in the 0700 folder; the job is told their
        paths (relative to $HOME), never their contents. JupyterHub calls this before
        start(): a cluster that does not answer is said to be so here already.
        """
        await self.require_available()
        transport = self.user_transport()
        moved = {}
        try:
            for kind, name in CERT_FILES.items():
                data = await asyncio.to_thread(Path(paths[kind]).read_bytes)
                target = f"{self.state_dir}/{CERTS_DIR}/{name}"
                await transport.write_file(target, data, mode=0o600)
                moved[kind] = target
        except (TransportError, OSError) as exc:
            raise SpawnError(f"Could not give the server its TLS certificates: {exc}") from exc
        return moved

    async def _reopen_tunnel(self, transport: Transport) -> None:
        """After a hub restart: the notebook forward on its old local port (proxy routes stay
        valid), then the hub forward. The notebook forward never waits for the hub's."""
        tunnel = self._new_tunnel(transport)
        try:
            self.job.local_port = await tunnel.open_notebook_forward(
                self.job.node, self.job.remote_port, local_port=self.job.local_port
            )
        except (TransportError, OSError) as exc:
            self.log.warning("Could not re-open the tunnel of %s yet: %s", self._log_name, exc)
            await tunnel.close()
            return
        self._tunnel = tunnel
        if getattr(tunnel.notebook_forward, "adopted", False):
            what = "The forward keeper kept the tunnel of %s on port %d"
        else:
            what = "Re-opened the tunnel of %s on port %d"
        self.log.info(what, self._log_name, self.job.local_port)
        if self.forward_hub_api:
            await self._reopen_hub_forward(transport, tunnel)

    async def _reopen_hub_forward(self, transport: Transport, tunnel: Tunnel) -> None:
        """The old login-node port if it can be had; else a new one, and the job follows.

        While the hub was down anyone on the login node could bind the old port; the job's
        relay reads the new one from the route file, and internal TLS keeps its hub
        traffic from whoever holds the old one.
        """
        old = self.job.hub_forward_port
        for port in ([old] if old else []) + [0]:
            try:
                new = await tunnel.open_hub_forward(*self._hub_api_address(), listen_port=port)
            except TransportError as exc:
                self.log.warning(
                    "Hub forward of %s not re-opened on port %s: %s", self._log_name, port, exc
                )
                continue
            if new != old:
                await self._follow_hub_port(transport, new)
            return
