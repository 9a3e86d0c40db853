"""SSHTransport: one long-lived asyncssh connection per user and login node, shared by commands,
SFTP and forwards. Never makes shell text from input; never writes keys to disk.

The parts, one concern each: sshconnect.py opens a connection (keys, host keys, backoff),
sshlink.py keeps it (reconnects, idle close, session slots), sshfiles.py reads and writes
files over SFTP, sshforwards.py opens port forwards. This class runs commands and puts the
parts together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Sequence

import asyncssh

from hubdash.transport.base import (
    DEFAULT_MAX_OUTPUT,
    CommandResult,
    Forward,
    OutputTooLarge,
    Transport,
    TransportError,
    command_line,
    output_limit_error,
    output_text,
    read_outputs,
    timeout_error,
)
from hubdash.transport.credentials import KeySource
from hubdash.transport.sshconnect import SSHConnector
from hubdash.transport.sshfiles import SSHFiles
from hubdash.transport.sshforwards import SSHForwards
from hubdash.transport.sshlink import SSHLink
from hubdash.transport.throttle import ConnectThrottle

_log = logging.getLogger(__name__)


class SSHTransport(Transport):
    """One long-lived SSH connection to a login node, shared by commands, SFTP and forwards.

    It is opened on first use; when it drops, the next use reconnects (sshconnect.BACKOFF_START
    doubling to BACKOFF_MAX between `connect_attempts` tries), and while forwards exist a watchdog
    reconnects on its own and re-opens them on the same ports. At most `max_sessions`
    sessions (commands, SFTP) are open at once: OpenSSH's MaxSessions defaults to 10 per
    connection and refuses the rest. Forwarded TCP channels are not sessions and not counted.

    The user's key comes from files (`client_keys`, `client_certs`) or, when `key_source` is
    given, from memory (e.g. the authenticator's auth_state): such a key never touches disk.
    Both are read again on every connect. A `connect_throttle` shared by all transports to
    one login node bounds how many connection attempts run at once (sshd's MaxStartups).

    With `idle_timeout` (seconds; 0: never) the connection is closed once nothing has used
    it for that long: no forward, no command or SFTP session, no kept stat session. Its
    sshd process on the login node ends with it; the next use connects again.
    """

    def __init__(
        self,
        host: str,
        port: int = 22,
        *,
        username: str,
        client_keys: Sequence[str] = (),
        client_certs: Sequence[str] = (),
        key_source: KeySource | None = None,
        known_hosts: str,
        connect_timeout: float = 10,
        keepalive_interval: float = 15,
        keepalive_count_max: int = 3,
        max_sessions: int = 8,
        max_output: int = DEFAULT_MAX_OUTPUT,
        connect_attempts: int = 4,
        pty_first: bool = True,
        connect_throttle: ConnectThrottle | None = None,
        idle_timeout: float = 0,
        log: logging.Logger | None = None,
    ) -> None:
        if not known_hosts:
            raise ValueError("known_hosts must name a file: host keys are always verified")
        if not client_keys and key_source is None:
            raise ValueError("give client_keys (private key files) or a key_source")
        if client_keys and key_source is not None:
            raise ValueError("give client_keys or a key_source, not both")
        if max_sessions < 1 or connect_attempts < 1:
            raise ValueError("max_sessions and connect_attempts must be at least 1")
        if idle_timeout < 0:
            raise ValueError("idle_timeout must be 0 (never) or more seconds")
        # The settings, as given; the parts below get their own copies of what they use.
        self.host, self.port, self.username = host, port, username
        self.client_keys, self.client_certs = list(client_keys), list(client_certs)
        self.key_source = key_source
        self.connect_throttle = connect_throttle
        self.known_hosts = known_hosts
        self.connect_timeout, self.connect_attempts = connect_timeout, connect_attempts
        self.keepalive_interval, self.keepalive_count_max = keepalive_interval, keepalive_count_max
        self.max_sessions, self.pty_first = max_sessions, pty_first
        self.max_output = max_output  # bytes of stdout, and of stderr, kept of a command
        self.idle_timeout = idle_timeout
        self.log = log or _log
        self.connector = SSHConnector(
            host,
            port,
            username,
            known_hosts,
            client_keys=tuple(client_keys),
            client_certs=tuple(client_certs),
            key_source=key_source,
            connect_timeout=connect_timeout,
            keepalive_interval=keepalive_interval,
            keepalive_count_max=keepalive_count_max,
            connect_attempts=connect_attempts,
            pty_first=pty_first,
            connect_throttle=connect_throttle,
            log=self.log,
        )
        self._link = SSHLink(self.connector, max_sessions=max_sessions, idle_timeout=idle_timeout)
        self._files = SSHFiles(self._link)
        self._forwards = SSHForwards(self._link, reopen_attempts=connect_attempts)
        # Open forwards keep the connection up, and are re-opened on each new one.
        self._link.holder = self._forwards

    @property
    def connected(self) -> bool:
        return self._link.connected

    def __repr__(self) -> str:
        return f"<SSHTransport {self.username}@{self.host}:{self.port}>"

    async def run(
        self, argv: list[str], *, input: str | None = None, timeout: float = 30
    ) -> CommandResult:  # noqa: ASYNC109 (the contract)
        """Run argv as the user; `timeout` bounds the command, not the connecting.

        Never run twice: opening its session is retried, the command itself never is.
        """
        command = command_line(argv)

        def start(conn: asyncssh.SSHClientConnection) -> Awaitable[asyncssh.SSHClientProcess]:
            return conn.create_process(
                command,
                input=None if input is None else input.encode(),
                stdin=asyncssh.DEVNULL if input is None else asyncssh.PIPE,
                encoding=None,
            )

        async with self._link.session(command, start) as (_, process):
            out = err = b""
            try:
                async with asyncio.timeout(timeout):
                    # Read as it comes, never process.wait(): that buffers all output.
                    out, err = await read_outputs(
                        process.stdout.read, process.stderr.read, self.max_output
                    )
                    await process.wait_closed()
            except (TimeoutError, OutputTooLarge) as exc:
                with contextlib.suppress(Exception):
                    process.send_signal("KILL")  # honoured by OpenSSH ≥ 7.9
                if isinstance(exc, OutputTooLarge):
                    raise output_limit_error(
                        f"on {self.host}", exc.stream, self.max_output, command
                    ) from None
                raise timeout_error(f"on {self.host}", timeout, command) from None
            except (OSError, asyncssh.Error):
                pass  # the connection was lost: no exit status, said below
            finally:
                process.close()
            returncode = process.returncode
        if returncode is None:
            raise TransportError(
                f"The connection to {self.host} was lost while a command ran; it may or may "
                f"not have completed: {command}"
            )
        return CommandResult(returncode, output_text(out), output_text(err))

    # -- files (sshfiles.py) ---------------------------------------------------------------

    async def read_file(self, path: str, *, max_bytes: int, what: str = "a file") -> bytes:
        return await self._files.read_file(path, max_bytes=max_bytes, what=what)

    async def read_tail(self, path: str, *, max_bytes: int) -> bytes:
        return await self._files.read_tail(path, max_bytes=max_bytes)

    async def write_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        await self._files.write_file(path, data, mode)

    async def remove(self, path: str) -> None:
        await self._files.remove(path)

    async def exists(self, path: str) -> bool:
        """One SFTP stat on a session kept open for it while looks keep coming."""
        if self.max_sessions < 2:  # the one session must stay free for commands
            return await super().exists(path)
        return await self._files.exists(path)

    # -- forwards (sshforwards.py) ---------------------------------------------------------

    async def open_local_forward(
        self,
        dest_host: str,
        dest_port: int,
        *,
        listen_port: int = 0,
        listen_host: str = "127.0.0.1",
        spares: int = 0,
    ) -> Forward:
        return await self._forwards.open_local_forward(
            dest_host, dest_port, listen_port=listen_port, listen_host=listen_host, spares=spares
        )

    async def open_remote_forward(
        self, listen_host: str, listen_port: int, dest_host: str, dest_port: int
    ) -> Forward:
        return await self._forwards.open_remote_forward(
            listen_host, listen_port, dest_host, dest_port
        )

    async def close(self) -> None:
        self._link.shut()  # nothing connects again while the parts close
        self._files.close()
        await self._forwards.close()
        await self._link.close()
