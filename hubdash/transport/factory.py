"""Makes a user's transport from a cluster's login settings and that user's keys.

The one place that knows which Transport implementations exist; callers hold a
LoginSettings (what the admin configured for a cluster) and a UserKeys (whose keys).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from hubdash.transport.base import Transport
from hubdash.transport.credentials import KeySource
from hubdash.transport.local import LocalTransport
from hubdash.transport.ssh import SSHTransport
from hubdash.transport.throttle import ConnectThrottle

TRANSPORTS = ("ssh", "local")


@dataclass(frozen=True)
class LoginSettings:
    """How the hub reaches one cluster's login node: the same for every user."""

    transport: str = "ssh"  # 'ssh', or 'local' (commands run on the hub's own host)
    host: str = ""
    port: int = 22
    known_hosts: str = ""
    max_sessions: int = 8
    idle_timeout: float = 0.0
    max_concurrent_connects: int = 4
    connects_per_second: float = 10.0
    local_command_prefix: tuple[str, ...] = ()

    def check(self, where: str = "JobSpawner") -> None:
        """ValueError naming the setting when these settings cannot work."""
        if self.transport not in TRANSPORTS:
            raise ValueError(f"{where}.transport must be 'ssh' or 'local', not {self.transport!r}")
        if self.transport == "ssh" and not self.host:
            raise ValueError(f"{where}.login_host is not set: name the cluster's login node")
        if not 0 < self.port < 65536:
            raise ValueError(f"{where}.login_port must be a TCP port, not {self.port!r}")

    def new_throttle(self) -> ConnectThrottle:
        """The connect throttle all users' SSH transports to this login node share."""
        return ConnectThrottle(self.max_concurrent_connects, self.connects_per_second)

    def new_keeper_throttle(self) -> ConnectThrottle:
        """The forward keeper's throttle: half the hub's budget of connections under way (at
        least 1), at the same pace. Its connections come one per starting job, spread out;
        the hub's and the keeper's together must stay below sshd's MaxStartups even while a
        busy sshd is slow to count a finished login as done (a class of 100 starting at
        once on 2 cores, with 4 + 4 under way, met sshd's limit of 10)."""
        return ConnectThrottle(
            max(1, (self.max_concurrent_connects + 1) // 2), self.connects_per_second
        )


@dataclass(frozen=True)
class UserKeys:
    """Whose keys a transport logs in with: a key source (e.g. from auth_state), or files."""

    key_source: KeySource | None = None
    key_files: tuple[str, ...] = ()
    cert_files: tuple[str, ...] = ()


def make_transport(
    login: LoginSettings,
    username: str,
    keys: UserKeys,
    throttle: ConnectThrottle,
    log: logging.Logger | None = None,
) -> Transport:
    """A new transport that acts as cluster user `username` on this cluster."""
    if login.transport == "local":
        prefix = [item.format(username=username) for item in login.local_command_prefix]
        return LocalTransport(prefix=prefix)
    login.check()
    if keys.key_source is not None:
        credentials: dict = {"key_source": keys.key_source}
    else:
        credentials = {"client_keys": list(keys.key_files), "client_certs": list(keys.cert_files)}
    return SSHTransport(
        host=login.host,
        port=login.port,
        username=username,
        known_hosts=login.known_hosts,
        max_sessions=login.max_sessions,
        idle_timeout=login.idle_timeout,
        connect_throttle=throttle,
        log=log,
        **credentials,
    )
