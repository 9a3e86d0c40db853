"""An SSH server inside the test process (asyncssh) that runs commands with /bin/sh like sshd.

Accepts only the test's client key, allows TCP forwarding both ways, counts open sessions and
connections not yet authenticated (what sshd's MaxStartups limits).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import asyncssh


class _Server(asyncssh.SSHServer):
    def __init__(self, sshd: InProcessSSHD) -> None:
        self.sshd = sshd
        self.authenticated = False

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.sshd.connections.append(conn)
        self.sshd._startup_began()

    def auth_completed(self) -> None:
        self.authenticated = True
        self.sshd._startup_ended()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.authenticated:
            self.sshd._startup_ended()

    def connection_requested(self, dest_host, dest_port, orig_host, orig_port):
        return True

    def server_requested(self, listen_host, listen_port):
        return True


class InProcessSSHD:
    """`home` is the users' home: commands run there and relative SFTP paths start there."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.home.mkdir(exist_ok=True)
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.key_path = root / "id_ed25519"
        self.key_path.write_bytes(self.client_key.export_private_key())
        self.key_path.chmod(0o600)
        self.known_hosts = root / "known_hosts"
        self.connections: list[asyncssh.SSHServerConnection] = []
        self.commands: list[tuple[str, str | None]] = []  # (command, pty's terminal type)
        self.active_sessions = 0
        self.max_sessions_seen = 0
        self.killed = 0
        # Connections not yet authenticated: what sshd's MaxStartups limits.
        self.startups = 0
        self.max_startups_seen = 0
        self.port = 0
        self._acceptor: asyncssh.SSHAcceptor | None = None

    async def start(self, port: int = 0) -> InProcessSSHD:
        sshd = self

        class CountingSFTPServer(asyncssh.SFTPServer):
            def __init__(self, chan):
                super().__init__(chan)
                sshd._session_opened()

            def exit(self):
                sshd._session_closed()
                super().exit()

        self._acceptor = await asyncssh.create_server(
            lambda: _Server(self),
            "127.0.0.1",
            port,
            server_host_keys=[self.host_key],
            authorized_client_keys=asyncssh.import_authorized_keys(
                self.client_key.export_public_key().decode()
            ),
            process_factory=self._handle,
            sftp_factory=CountingSFTPServer,
            encoding=None,
            allow_scp=False,
        )
        self.port = self._acceptor.sockets[0].getsockname()[1]
        self.trust(self.host_key)
        return self

    def trust(self, key: asyncssh.SSHKey) -> None:
        """Write known_hosts with `key` as this server's key."""
        line = f"[127.0.0.1]:{self.port} {key.export_public_key().decode().strip()}\n"
        self.known_hosts.write_text(line)

    def _startup_began(self) -> None:
        self.startups += 1
        self.max_startups_seen = max(self.max_startups_seen, self.startups)

    def _startup_ended(self) -> None:
        self.startups -= 1

    def _session_opened(self) -> None:
        self.active_sessions += 1
        self.max_sessions_seen = max(self.max_sessions_seen, self.active_sessions)

    def _session_closed(self) -> None:
        self.active_sessions -= 1

    async def _handle(self, process: asyncssh.SSHServerProcess) -> None:
        self._session_opened()
        try:
            self.commands.append((process.command, process.term_type))
            stdin = await process.stdin.read()
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                process.command,
                cwd=self.home,
                start_new_session=True,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            finished = asyncio.ensure_future(proc.communicate(stdin))
            closed = asyncio.ensure_future(process.channel.wait_closed())
            await asyncio.wait({finished, closed}, return_when=asyncio.FIRST_COMPLETED)
            closed.cancel()
            if not finished.done():  # the client gave up on it: end it as sshd would
                self.killed += 1
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await finished
                return
            out, err = finished.result()
            process.stdout.write(out)
            process.stderr.write(err)
            process.exit(proc.returncode)
        finally:
            self._session_closed()

    def drop_connections(self) -> None:
        """Cut every client connection at once, as a network failure would."""
        for conn in self.connections:
            conn.abort()
        self.connections.clear()

    async def stop(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
            self._acceptor = None
        self.drop_connections()
