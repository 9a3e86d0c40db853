"""Cluster: one configured cluster, live in the hub.

Holds what the spawners of every user share for it: the scheduler client, one transport per
cluster user, the SSH connect throttle of its login node, the job monitor, the form's
queue-information cache and whether its login node answers (health). Made by the
ClusterRegistry, one per ClusterConfig.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from hubdash.cluster.client import SchedulerClient
from hubdash.cluster.config import ClusterConfig
from hubdash.cluster.health import LoginHealth, ssh_greeting
from hubdash.cluster.monitor import JobMonitor
from hubdash.cluster.queueinfo import QueueInformation
from hubdash.schedulers.base import SchedulerAdapter
from hubdash.transport.base import Transport, TransportError
from hubdash.transport.factory import UserKeys, make_transport

# Makes the transport of a cluster user from the user's keys (tests hand in their own).
TransportMaker = Callable[[str, UserKeys], Transport]


async def probe_login_node(host: str, port: int, timeout: float) -> str:
    """The login node's SSH greeting (looked up at each check: tests on paper replace it)."""
    return await ssh_greeting(host, port, timeout)


class Cluster:
    """The live side of one ClusterConfig."""

    def __init__(
        self,
        config: ClusterConfig,
        log: logging.Logger | None = None,
        transport_maker: TransportMaker | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.log = log or logging.getLogger("hubdash.cluster")
        self.client = SchedulerClient(
            config.name,
            config.adapter(),
            bin_dir=config.bin_dir,
            timeout=config.command_timeout,
            log=self.log,
        )
        self._throttle = config.login.new_throttle()
        self._maker = transport_maker
        self._transports: dict[str, Transport] = {}
        self.monitor = JobMonitor(self.client, self._open_transport, config.monitor, log=self.log)
        self.queue_info = QueueInformation(config.name, config.queue_info_ttl, log=self.log)
        # Over SSH, whether the login node answers at all; a local transport has no such node.
        self.health: LoginHealth | None = None
        if config.login.transport == "ssh" and config.login.host and transport_maker is None:
            self.health = LoginHealth(
                config.login.host,
                config.login.port,
                interval=config.check_interval,
                cluster=config.name,
                probe=lambda host, port, timeout: probe_login_node(host, port, timeout),
            )

    @property
    def adapter(self) -> SchedulerAdapter:
        return self.client.adapter

    def transport_for(self, username: str, keys: UserKeys | None = None) -> Transport:
        """The one long-lived transport that acts as this cluster user.

        The first caller for a user must bring the user's `keys` (a spawner knows its own
        user's); later callers, such as the monitor, get the same transport.
        """
        transport = self._transports.get(username)
        if transport is None:
            if self._maker is not None:
                transport = self._maker(username, keys or UserKeys())
            elif keys is None:
                raise TransportError(
                    f"No connection as cluster user {username} is open yet; only that user's "
                    "own server can open one (with that user's key)."
                )
            else:
                transport = make_transport(
                    self.config.login, username, keys, self._throttle, self.log
                )
            self._transports[username] = transport
        return transport

    def _open_transport(self, username: str) -> Transport:
        return self.transport_for(username)

    async def close(self) -> None:
        await self.monitor.close()
        if self.health is not None:
            await self.health.close()
        transports, self._transports = list(self._transports.values()), {}
        await asyncio.gather(*(t.close() for t in transports), return_exceptions=True)
