"""SSHTransport: one long-lived asyncssh connection per user and login node, shared by commands,
SFTP and forwards. Never makes shell text from input; never writes keys to disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import posixpath
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncssh
from asyncssh.constants import FILEXFER_TYPE_REGULAR

from hubdash.metrics import SSH_CONNECTIONS
from hubdash.transport.base import (
    DEFAULT_MAX_OUTPUT,
    CommandResult,
    FileTooLarge,
    Forward,
    HostKeyError,
    ListenerForward,
    OutputTooLarge,
    Transport,
    TransportError,
    command_line,
    output_limit_error,
    output_text,
    read_outputs,
    timeout_error,
)
from hubdash.transport.credentials import CredentialsError, KeyMaterial, KeySource
from hubdash.transport.relay import FarSide, FarSideEvents, RelayedConnection, RelayListener
from hubdash.transport.throttle import ConnectThrottle

T = TypeVar("T")
_log = logging.getLogger(__name__)

BACKOFF_START = 0.5  # seconds before the second connection attempt; doubles each time
BACKOFF_MAX = 10.0
STAT_SESSION_IDLE = 30.0  # seconds the SFTP session of exists() stays open unused
SESSION_OPEN_ATTEMPTS = 6  # a refused session ran nothing: safe to ask again (0.05 s doubling)
# AES-GCM before asyncssh's default chacha20-poly1305: with AES instructions (any x86-64 login
# node) it carries ≈1.4x the bytes through a tunnel (bench/README.md, tunnel cost). The rest of
# asyncssh's defaults follow, for servers that offer no GCM.
MSG_IGNORE = 2  # RFC 4253, section 11.2
_EMPTY_STRING = b"\x00\x00\x00\x00"  # an SSH string of length 0

ENCRYPTION_PREFERENCE = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)


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


class _HostKeyRecorder(asyncssh.SSHClient):
    """Remembers the key the server offered when known_hosts did not vouch for it."""

    offered: asyncssh.SSHKey | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.offered = key
        return False

    def validate_host_ca_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        self.offered = key
        return False


class SSHTransport(Transport):
    """One long-lived SSH connection to a login node, shared by commands, SFTP and forwards.

    It is opened on first use; when it drops, the next use reconnects (BACKOFF_START doubling
    to BACKOFF_MAX between `connect_attempts` tries), and while forwards exist a watchdog
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
        self.host, self.port, self.username = host, port, username
        self.client_keys, self.client_certs = list(client_keys), list(client_certs)
        self.key_source = key_source
        self.connect_throttle = connect_throttle
        self.known_hosts = known_hosts
        self.connect_timeout, self.connect_attempts = connect_timeout, connect_attempts
        self.keepalive_interval, self.keepalive_count_max = keepalive_interval, keepalive_count_max
        self.max_sessions, self.pty_first = max_sessions, pty_first
        self.max_output = max_output  # bytes of stdout, and of stderr, kept of a command
        self.log = log or _log
        self._sessions = asyncio.Semaphore(max_sessions)
        self._connect_lock = asyncio.Lock()
        self._conn: asyncssh.SSHClientConnection | None = None
        self._ever_connected = False
        self._closed = False
        self._forwards: set[Forward] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        # One SFTP session kept open for exists(): a stat is then one request on it.
        self._stat_lock = asyncio.Lock()
        self._stat_sftp: tuple[asyncssh.SSHClientConnection, asyncssh.SFTPClient] | None = None
        self._stat_idle: asyncio.TimerHandle | None = None
        # Idle closing: what uses the connection now (sessions, waiters, the kept stat
        # session), and the timer that closes it once nothing has for idle_timeout.
        self.idle_timeout = idle_timeout
        self._users = 0
        self._idle_timer: asyncio.TimerHandle | None = None

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    def __repr__(self) -> str:
        return f"<SSHTransport {self.username}@{self.host}:{self.port}>"

    # -- connection ------------------------------------------------------------------------

    async def _credentials(self) -> tuple[asyncssh.SSHKnownHosts, list[asyncssh.SSHKeyPair]]:
        """known_hosts and the user's key pair(s), loaded afresh for each connection attempt."""
        known, keys = await asyncio.to_thread(self._load_credentials)
        if self.key_source is not None:
            keys = _import_keys(await self.key_source(), self.host)
        return known, keys

    def _key_names(self) -> str:
        return ", ".join(self.client_keys) or "from memory"

    def _load_credentials(self) -> tuple[asyncssh.SSHKnownHosts, list[asyncssh.SSHKeyPair]]:
        """Read known_hosts and key files afresh (runs in a thread), naming any file that fails."""
        files = [("known_hosts file", self.known_hosts)]
        files += [("SSH private key", p) for p in self.client_keys]
        files += [("SSH certificate", p) for p in self.client_certs]
        for what, path in files:
            try:
                with open(path, "rb"):
                    pass
            except OSError as exc:
                raise TransportError(
                    f"Cannot read the {what} {path} for {self.host}: {exc.strerror}."
                ) from None
        try:
            known = asyncssh.read_known_hosts(self.known_hosts)
        except (OSError, ValueError) as exc:
            raise TransportError(
                f"The known_hosts file {self.known_hosts} cannot be parsed: {exc}."
            ) from None
        keys = []
        for path in self.client_keys:
            try:
                keys.append(asyncssh.read_private_key(path))
            except (OSError, ValueError) as exc:  # KeyImportError is a ValueError
                raise TransportError(
                    f"The SSH private key {path} cannot be loaded: {exc}. It must be an "
                    "unencrypted OpenSSH or PEM private key."
                ) from None
        try:
            return known, asyncssh.load_keypairs(keys, certlist=self.client_certs)
        except (OSError, ValueError) as exc:
            raise TransportError(
                f"The SSH certificates {', '.join(self.client_certs)} cannot be loaded: {exc}."
            ) from None

    def _host_key_error(
        self, known: asyncssh.SSHKnownHosts, offered: asyncssh.SSHKey | None
    ) -> HostKeyError:
        where = f"{self.host} port {self.port}"
        fingerprint = offered.get_fingerprint("sha256") if offered else "(not available)"
        algorithm = offered.get_algorithm() if offered else "unknown"
        recorded = known.match(self.host, "", self.port if self.port != 22 else None)[0]
        if recorded:
            message = (
                f"The SSH host key of {where} has changed: the server offered {algorithm} "
                f"key {fingerprint}, which is not the key recorded in {self.known_hosts}. "
                "This can be an attack; if the login node's key was replaced on purpose, "
                "update its entry in that file."
            )
        else:
            message = (
                f"The SSH host key of {where} is not in {self.known_hosts}: the server "
                f"offered {algorithm} key {fingerprint}. If that is the login node's key, "
                "add it to that file (for example from ssh-keyscan, after checking the "
                "fingerprint)."
            )
        return HostKeyError(message, host=self.host, port=self.port, fingerprint=fingerprint)

    async def _connect_once(self) -> asyncssh.SSHClientConnection:
        known, keys = await self._credentials()
        if self.connect_throttle is None:
            return await self._handshake(known, keys)
        async with self.connect_throttle.slot():
            return await self._handshake(known, keys)

    async def _handshake(
        self, known: asyncssh.SSHKnownHosts, keys: list[asyncssh.SSHKeyPair]
    ) -> asyncssh.SSHClientConnection:
        """TCP, key exchange and authentication: what sshd's MaxStartups counts. Counted in
        metrics.SSH_CONNECTIONS by outcome (ok, failed, host_key, denied)."""
        recorder = _HostKeyRecorder()
        outcome = "failed"
        try:
            conn = await asyncssh.connect(
                self.host,
                self.port,
                username=self.username,
                client_keys=keys,
                known_hosts=known,
                client_factory=lambda: recorder,
                connect_timeout=self.connect_timeout,
                keepalive_interval=self.keepalive_interval,
                keepalive_count_max=self.keepalive_count_max,
                # Only what the admin configured: no ~/.ssh/config, agent or passwords.
                config=None,
                agent_path=None,
                preferred_auth="publickey",
                encryption_algs=list(ENCRYPTION_PREFERENCE),
            )
            outcome = "ok"
            return conn
        except asyncssh.HostKeyNotVerifiable:
            outcome = "host_key"
            raise self._host_key_error(known, recorder.offered) from None
        except asyncssh.PermissionDenied as exc:
            outcome = "denied"
            raise TransportError(
                f"{self.host} port {self.port} refused the SSH key(s) "
                f"{self._key_names()} for user {self.username}: {exc.reason}. "
                "Check that the public key is in that user's authorized_keys."
            ) from None
        finally:
            SSH_CONNECTIONS.labels(self.host, outcome).inc()

    async def _connect_with_backoff(self) -> asyncssh.SSHClientConnection:
        delay, last = BACKOFF_START, None
        for attempt in range(1, self.connect_attempts + 1):
            try:
                return await self._connect_once()
            except TransportError:
                raise  # bad files, host key, refused key: trying again cannot help
            except (OSError, asyncssh.Error) as exc:  # refused, unreachable, timed out, reset
                last = exc
                self.log.info(
                    "SSH connection %d/%d to %s:%d failed: %s",
                    attempt,
                    self.connect_attempts,
                    self.host,
                    self.port,
                    exc,
                )
            if attempt < self.connect_attempts:
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
        raise TransportError(
            f"Cannot connect to {self.host} port {self.port} as {self.username} after "
            f"{self.connect_attempts} attempts; the last error was: {self._describe(last)}."
        )

    def _describe(self, error: BaseException | None) -> str:
        if isinstance(error, TimeoutError):  # its text is empty
            return f"no SSH answer within {self.connect_timeout:g} s"
        if error is None:
            return "unknown"
        return str(error) or type(error).__name__

    async def _connection(self) -> asyncssh.SSHClientConnection:
        """The live connection, (re)connecting first if there is none."""
        self._touch()
        if self.connected:
            assert self._conn is not None
            return self._conn
        async with self._connect_lock:
            if self._closed:
                raise TransportError(f"The SSH transport to {self.host} has been closed.")
            if self.connected:
                assert self._conn is not None
                return self._conn
            conn = await self._connect_with_backoff()
            _send_no_empty_ignores(conn)
            if self.pty_first:
                await self._turn_nagle_off_in_sshd(conn)
            if self._closed:  # close() ran while we were connecting
                conn.close()
                raise TransportError(f"The SSH transport to {self.host} has been closed.")
            self._conn = conn
            self._touch()  # connecting may have taken longer than idle_timeout
            self.log.info("SSH connection to %s@%s:%d open", self.username, self.host, self.port)
            self._spawn(self._watch(conn))
            if self._ever_connected:
                self._spawn(self._reopen_forwards(conn))
            self._ever_connected = True
            return conn

    async def _turn_nagle_off_in_sshd(self, conn: asyncssh.SSHClientConnection) -> None:
        """Make the connection's first session one with a pty.

        OpenSSH's sshd sets TCP_NODELAY on a connection only when its first session is
        interactive (the first ssh_packet_set_interactive call wins). Without it, each new
        forwarded connection waits ≈40 ms: sshd holds its next small packet (the EOF after
        the data) until our delayed ACK comes. Measured on the test cluster: p50 44 → 1 ms.
        The cost: one login record (wtmp) per connection.
        """
        try:
            async with asyncio.timeout(self.connect_timeout):
                await conn.run("true", term_type="dumb", stdin=asyncssh.DEVNULL, check=False)
        except (OSError, asyncssh.Error) as exc:  # e.g. PermitTTY no: slower, still correct
            self.log.info(
                "No pty session on %s (%s): forwarded connections may each wait "
                "≈40 ms for sshd's Nagle",
                self.host,
                exc,
            )

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("Background task of %r failed", self, exc_info=task.exception())

    async def _watch(self, conn: asyncssh.SSHClientConnection) -> None:
        """Notice a dropped connection; while forwards need it, reconnect without waiting."""
        await conn.wait_closed()
        if self._closed or self._conn is not conn:
            return
        self.log.warning("SSH connection to %s:%d lost", self.host, self.port)
        delay = BACKOFF_START
        while not self._closed and self._forwards and not self.connected:
            try:
                await self._connection()
            except TransportError as exc:
                self.log.error(
                    "Forwards through %s stay down until it answers again: %s", self.host, exc
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)

    async def _reopen_forwards(self, conn: asyncssh.SSHClientConnection) -> None:
        for forward in list(self._forwards):
            if isinstance(forward, _RemoteForward):
                self._spawn(self._reopen_remote(forward, conn))
            else:  # our own listener never went away: it is usable again now
                forward._announce_reopen()

    async def _reopen_remote(
        self, forward: _RemoteForward, conn: asyncssh.SSHClientConnection
    ) -> None:
        """Ask again for the same port: the sshd of the old connection may hold it a while.

        A forward that `may_move` (its users follow it, see Tunnel.on_hub_port_moved) takes
        any free port after `connect_attempts` refusals: someone else may have bound the
        old one meanwhile, and waiting for it would leave the job without a hub.
        """
        delay, failures = BACKOFF_START, 0
        while not forward._closed and not conn.is_closed():
            try:
                await forward._open_on(conn)
                forward._announce_reopen()
                self.log.info("Re-opened %r after reconnect", forward)
                return
            except (OSError, asyncssh.Error, asyncssh.ChannelListenError) as exc:
                failures += 1
                if failures == self.connect_attempts and forward.may_move:
                    self.log.warning(
                        "%s does not give port %d back for a forward (%s); moving it to a new port",
                        self.host,
                        forward.listen_port,
                        exc,
                    )
                    forward.listen_port = 0
                    continue
                if failures == self.connect_attempts:
                    self.log.error(
                        "%s does not give port %d back for a forward yet (%s); trying on",
                        self.host,
                        forward.listen_port,
                        exc,
                    )
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

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
        self._touch()

    def _free(self) -> None:
        self._users -= 1
        self._touch()

    def _touch(self) -> None:
        """(Re)start the idle countdown, if nothing holds the connection open."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self.idle_timeout <= 0 or self._closed or self._users or self._forwards:
            return  # whatever holds it calls _free() or _forget_forward() when done
        loop = asyncio.get_running_loop()
        self._idle_timer = loop.call_later(self.idle_timeout, self._close_if_idle)

    def _close_if_idle(self) -> None:
        self._idle_timer = None
        conn = self._conn
        if self._users or self._forwards or self._closed or conn is None or conn.is_closed():
            return
        # Dropped from _conn first: _watch takes it as ours to close, not as a lost one.
        self._conn = None
        self.log.info(
            "SSH connection to %s@%s:%d closed after %g s unused",
            self.username,
            self.host,
            self.port,
            self.idle_timeout,
        )
        conn.close()

    def _forget_forward(self, forward: Forward) -> None:
        self._forwards.discard(forward)
        self._touch()

    # -- sessions --------------------------------------------------------------------------

    async def _open_session(
        self,
        what: str,
        opener: Callable[[asyncssh.SSHClientConnection], Awaitable[T]],
    ) -> tuple[asyncssh.SSHClientConnection, T]:
        """Open a session channel (the caller holds the semaphore), trying again when it was
        refused or the connection was dead: a session that never opened ran nothing. sshd
        frees a closed session a moment after our side has seen it close ("no more sessions")."""
        delay = BACKOFF_START / 10
        for attempt in range(1, SESSION_OPEN_ATTEMPTS + 1):
            conn = await self._connection()
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

    async def run(
        self, argv: list[str], *, input: str | None = None, timeout: float = 30
    ) -> CommandResult:  # noqa: ASYNC109 (the contract)
        """Run argv as the user; `timeout` bounds the command, not the connecting.

        Never run twice: opening its session is retried, the command itself never is.
        """
        command = command_line(argv)
        async with self._in_use(), self._sessions:
            _, process = await self._open_session(
                command,
                lambda conn: conn.create_process(
                    command,
                    input=None if input is None else input.encode(),
                    stdin=asyncssh.DEVNULL if input is None else asyncssh.PIPE,
                    encoding=None,
                ),
            )
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

    async def _sftp(
        self, path: str, what: str, op: Callable[[asyncssh.SFTPClient], Awaitable[T]]
    ) -> T:
        """Run one SFTP operation, again on a new connection if it drops (all are idempotent)."""
        for attempt in (1, 2):
            conn = None
            try:
                async with self._in_use(), self._sessions:
                    conn, sftp = await self._open_session(
                        f"SFTP ({what} {path})", lambda c: c.start_sftp_client()
                    )
                    async with sftp:
                        return await op(sftp)
            except asyncssh.SFTPNoSuchFile:
                raise FileNotFoundError(
                    errno.ENOENT, f"No such file on {self.host}", path
                ) from None
            except asyncssh.SFTPPermissionDenied:
                raise PermissionError(
                    errno.EACCES, f"Permission denied on {self.host}", path
                ) from None
            except (OSError, asyncssh.Error) as exc:
                if attempt == 1 and conn is not None and conn.is_closed():
                    self.log.info(
                        "SSH connection to %s was lost; SFTP %s of %s again on a new one",
                        self.host,
                        what,
                        path,
                    )
                    continue
                reason = getattr(exc, "reason", None) or exc
                raise TransportError(
                    f"Could not {what} {path} on {self.host} over SFTP: {reason}."
                ) from None
        raise AssertionError("unreachable")

    async def read_file(self, path: str, *, max_bytes: int, what: str = "a file") -> bytes:
        async def op(sftp: asyncssh.SFTPClient) -> bytes:
            self._check_regular(await sftp.stat(path), path)
            async with sftp.open(path, "rb") as f:
                size = await self._regular_size(f, path)
                if size > max_bytes:
                    raise FileTooLarge(path, size, max_bytes, where=self.host, what=what)
                data = await f.read(max_bytes + 1, 0)  # bounded even if it grew since
                if len(data) > max_bytes:
                    raise FileTooLarge(
                        path, len(data), max_bytes, where=self.host, what=what, at_least=True
                    )
                return data

        return await self._sftp(path, "read", op)

    async def read_tail(self, path: str, *, max_bytes: int) -> bytes:
        async def op(sftp: asyncssh.SFTPClient) -> bytes:
            self._check_regular(await sftp.stat(path), path)
            async with sftp.open(path, "rb") as f:
                size = await self._regular_size(f, path)
                return await f.read(max_bytes, max(0, size - max_bytes))

        return await self._sftp(path, "read the end of", op)

    async def _regular_size(self, f: asyncssh.SFTPClientFile, path: str) -> int:
        """The size of the file open as `f`: the one being read, whatever the path names now."""
        attrs = await f.stat()
        self._check_regular(attrs, path)
        return attrs.size or 0

    def _check_regular(self, attrs: asyncssh.SFTPAttrs, path: str) -> None:
        # Looked at before opening too: opening a FIFO waits for a writer that may never
        # come, and a device (a link to /dev/zero) has no size and no end.
        if attrs.type != FILEXFER_TYPE_REGULAR:
            raise TransportError(f"{path} on {self.host} is not a regular file; not read.")

    async def write_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        parent, name = posixpath.split(path)

        async def op(sftp: asyncssh.SFTPClient) -> None:
            if parent:
                await sftp.makedirs(parent, asyncssh.SFTPAttrs(permissions=0o700), exist_ok=True)
            tmp = posixpath.join(parent, f".{name}.{os.urandom(4).hex()}.tmp")
            try:
                # Exclusive create with the final mode: no moment where others could read it.
                async with sftp.open(tmp, "xb", asyncssh.SFTPAttrs(permissions=mode)) as f:
                    await f.write(data)
                    await f.chmod(mode)  # the server's umask may have narrowed it
                await sftp.posix_rename(tmp, path)  # atomic replace (OpenSSH extension)
            except BaseException:
                with contextlib.suppress(Exception):
                    await sftp.remove(tmp)
                raise

        await self._sftp(path, "write", op)

    async def remove(self, path: str) -> None:
        async def op(sftp: asyncssh.SFTPClient) -> None:
            with contextlib.suppress(asyncssh.SFTPNoSuchFile):
                await sftp.remove(path)

        await self._sftp(path, "remove", op)

    async def exists(self, path: str) -> bool:
        """One SFTP stat on a session kept open for it while looks keep coming (it holds
        one of max_sessions; closed after STAT_SESSION_IDLE seconds without a look)."""
        if self.max_sessions < 2:  # the one session must stay free for commands
            return await super().exists(path)
        for attempt in (1, 2):
            sftp = await self._stat_client()
            self._keep_stat_client()
            try:
                await sftp.stat(path)
                return True
            except asyncssh.SFTPNoSuchFile:
                return False
            except asyncssh.SFTPPermissionDenied:
                raise PermissionError(
                    errno.EACCES, f"Permission denied on {self.host}", path
                ) from None
            except (OSError, asyncssh.Error) as exc:
                self._drop_stat_client()
                if attempt == 2:
                    raise TransportError(
                        f"Could not look for {path} on {self.host} over SFTP: {exc}."
                    ) from None
        raise AssertionError("unreachable")

    async def _stat_client(self) -> asyncssh.SFTPClient:
        async with self._stat_lock:
            if self._stat_sftp is not None:
                conn, sftp = self._stat_sftp
                if conn is self._conn and not conn.is_closed():
                    return sftp
                self._drop_stat_client()
            await self._sessions.acquire()  # released by _drop_stat_client
            self._busy()  # the kept session holds the connection open until dropped
            try:
                conn, sftp = await self._open_session(
                    "SFTP (watching for files)", lambda c: c.start_sftp_client()
                )
            except BaseException:
                self._sessions.release()
                self._free()
                raise
            self._stat_sftp = (conn, sftp)
            return sftp

    def _keep_stat_client(self) -> None:
        if self._stat_idle is not None:
            self._stat_idle.cancel()
        loop = asyncio.get_running_loop()
        self._stat_idle = loop.call_later(STAT_SESSION_IDLE, self._drop_stat_client)

    def _drop_stat_client(self) -> None:
        if self._stat_idle is not None:
            self._stat_idle.cancel()
            self._stat_idle = None
        if self._stat_sftp is not None:
            _, sftp = self._stat_sftp
            self._stat_sftp = None
            sftp.exit()
            self._sessions.release()
            self._free()

    # -- forwards --------------------------------------------------------------------------

    async def open_local_forward(
        self,
        dest_host: str,
        dest_port: int,
        *,
        listen_port: int = 0,
        listen_host: str = "127.0.0.1",
        spares: int = 0,
    ) -> Forward:
        await self._connection()  # fail here, not on the first relayed connection

        async def open_far(near: RelayedConnection) -> FarSide:
            conn = await self._connection()
            channel, _ = await conn.create_connection(
                lambda: _ChannelFarSide(near), dest_host, dest_port
            )
            return channel

        listener = await RelayListener.start(
            listen_host, listen_port, open_far, spares=spares, log=self.log
        )
        forward = ListenerForward(listener, lambda: self.connected, self._forget_forward)
        self._forwards.add(forward)
        return forward

    async def open_remote_forward(
        self, listen_host: str, listen_port: int, dest_host: str, dest_port: int
    ) -> Forward:
        forward = _RemoteForward(listen_host, (dest_host, dest_port), self._forget_forward)
        forward.listen_port = listen_port
        conn = await self._connection()
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
        self._forwards.add(forward)
        return forward

    async def close(self) -> None:
        self._closed = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._drop_stat_client()
        for forward in list(self._forwards):
            await forward.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._conn is not None:
            self._conn.close()
            await self._conn.wait_closed()


def _send_no_empty_ignores(conn: asyncssh.SSHClientConnection) -> None:
    """Stop asyncssh from sending an empty SSH_MSG_IGNORE before every packet.

    That packet guards CBC-mode ciphers against a plaintext-recovery attack; the ciphers we
    negotiate (ENCRYPTION_PREFERENCE: AES-GCM, ChaCha20-Poly1305, AES-CTR) are not open to
    it, and OpenSSH sends none. Each one costs an encryption and a send() system call on
    every packet: measured, a quarter of the tunnel's added latency per new connection.
    Packets dropped here never got a sequence number, so the stream stays consistent.
    """
    if conn.get_extra_info("send_cipher") not in ENCRYPTION_PREFERENCE:
        return  # a CBC cipher keeps its guard
    send_packet = conn.send_packet

    def send_packet_without_empty_ignore(
        pkttype: int, *args: bytes, handler: object = None
    ) -> None:
        if pkttype == MSG_IGNORE and args == (_EMPTY_STRING,):
            return
        send_packet(pkttype, *args, handler=handler)  # type: ignore[arg-type]

    # An instance attribute: asyncssh's own calls (self.send_packet) come through it too.
    conn.send_packet = send_packet_without_empty_ignore  # type: ignore[method-assign]


def _import_keys(material: KeyMaterial, host: str) -> list[asyncssh.SSHKeyPair]:
    """Key pairs from in-memory text; the error names the source, never the key."""
    try:
        key = asyncssh.import_private_key(material.private_key)
    except (ValueError, TypeError) as exc:  # KeyImportError is a ValueError
        raise CredentialsError(
            f"The SSH private key from {material.source} for {host} cannot be loaded: "
            f"{exc}. It must be an unencrypted OpenSSH or PEM private key."
        ) from None
    if material.certificate is None:
        return asyncssh.load_keypairs([key])
    try:
        certificate = asyncssh.import_certificate(material.certificate)
        return asyncssh.load_keypairs([(key, certificate)])
    except (ValueError, TypeError) as exc:
        raise CredentialsError(
            f"The SSH certificate from {material.source} for {host} cannot be loaded: {exc}."
        ) from None
