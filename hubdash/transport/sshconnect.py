"""Opening one SSH connection to a login node as one user: known_hosts and the user's keys
read afresh for each attempt, the host key checked (and a refusal explained), attempts
throttled and retried with backoff. Never writes keys to disk.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import asyncssh

from hubdash.metrics import SSH_CONNECTIONS
from hubdash.transport.base import HostKeyError, TransportError
from hubdash.transport.credentials import CredentialsError, KeyMaterial, KeySource
from hubdash.transport.throttle import ConnectThrottle

BACKOFF_START = 0.5  # seconds before the second connection attempt; doubles each time
BACKOFF_MAX = 10.0
# AES-GCM before asyncssh's default chacha20-poly1305: with AES instructions (any x86-64 login
# node) it carries ≈1.4x the bytes through a tunnel (bench/README.md, tunnel cost). The rest of
# asyncssh's defaults follow, for servers that offer no GCM.
ENCRYPTION_PREFERENCE = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)
MSG_IGNORE = 2  # RFC 4253, section 11.2
_EMPTY_STRING = b"\x00\x00\x00\x00"  # an SSH string of length 0

_log = logging.getLogger(__name__)
Credentials = tuple[asyncssh.SSHKnownHosts, list[asyncssh.SSHKeyPair]]


class Backoff:
    """The waits between tries: BACKOFF_START, doubling up to BACKOFF_MAX."""

    def __init__(self) -> None:
        self.delay = BACKOFF_START

    async def wait(self) -> None:
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, BACKOFF_MAX)


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


@dataclass(frozen=True)
class SSHConnector:
    """Opens connections to one login node as one user, each a fresh login.

    The user's key comes from files (`client_keys`, `client_certs`) or from `key_source`
    (memory only); both are read again on every attempt. A `connect_throttle` shared by all
    users' connectors to the login node bounds how many attempts run at once (sshd's
    MaxStartups). Up to `connect_attempts` tries, BACKOFF_START doubling to BACKOFF_MAX apart.
    """

    host: str
    port: int
    username: str
    known_hosts: str
    client_keys: tuple[str, ...] = ()
    client_certs: tuple[str, ...] = ()
    key_source: KeySource | None = None
    connect_timeout: float = 10
    keepalive_interval: float = 15
    keepalive_count_max: int = 3
    connect_attempts: int = 4
    pty_first: bool = True
    connect_throttle: ConnectThrottle | None = None
    log: logging.Logger = _log

    async def connect(self) -> asyncssh.SSHClientConnection:
        """A new connection, ready for use; TransportError saying why there is none."""
        conn = await self._connect_with_backoff()
        _send_no_empty_ignores(conn)
        if self.pty_first:
            await self._turn_nagle_off_in_sshd(conn)
        return conn

    async def _connect_with_backoff(self) -> asyncssh.SSHClientConnection:
        backoff, last = Backoff(), None
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
                await backoff.wait()
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

    # -- credentials -----------------------------------------------------------------------

    async def _credentials(self) -> Credentials:
        """known_hosts and the user's key pair(s), loaded afresh for each connection attempt."""
        known, keys = await asyncio.to_thread(self._load_credentials)
        if self.key_source is not None:
            keys = import_keys(await self.key_source(), self.host)
        return known, keys

    def _key_names(self) -> str:
        return ", ".join(self.client_keys) or "from memory"

    def _load_credentials(self) -> Credentials:
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

    # -- after the handshake ---------------------------------------------------------------

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


def import_keys(material: KeyMaterial, host: str) -> list[asyncssh.SSHKeyPair]:
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
