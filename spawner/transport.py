"""The transport contract: run commands, move files and open port forwards as one user.

Interface and shared pieces only; SSHTransport lives in ssh.py, LocalTransport in local.py.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .relay import RelayListener

if TYPE_CHECKING:  # re-exported below, loaded on first use (ssh.py and local.py import this)
    from .local import LocalTransport
    from .ssh import SSHTransport

__all__ = [
    "CommandResult",
    "Forward",
    "HostKeyError",
    "LocalTransport",
    "SSHTransport",
    "Transport",
    "TransportError",
    "command_line",
]

_log = logging.getLogger(__name__)


@dataclass
class CommandResult:
    exit_status: int  # the command's status; negative -N when a signal N killed it
    stdout: str
    stderr: str


class TransportError(Exception):
    """The transport failed (connection, authentication, timeout); never a command's own failure."""


class HostKeyError(TransportError):
    """The server offered a host key that the admin's known_hosts file does not vouch for."""

    def __init__(self, message: str, *, host: str, port: int, fingerprint: str) -> None:
        super().__init__(message)
        self.host, self.port, self.fingerprint = host, port, fingerprint


def command_line(argv: Sequence[str]) -> str:
    """The one place an argument list becomes text for a remote POSIX shell."""
    if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
        raise TypeError(f"argv must be a non-empty list of strings, not {argv!r}")
    for item in argv:
        if "\x00" in item:
            # sshd hands the command to the shell as a C string: it would end there.
            raise ValueError(f"an argument holds a NUL character and cannot be sent: {item!r:.60}")
    return shlex.join(argv)


class Forward:
    """A port forward as its owner sees it; the transport keeps it on the same port across
    reconnects. `reopened` is set and `on_reopen(forward)` called each time that happened."""

    def __init__(self, listen_host: str, listen_port: int) -> None:
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.reopened = asyncio.Event()  # the owner may clear it to wait for the next one
        self.on_reopen: Callable[[Forward], object] | None = None
        self._closed = False

    @property
    def is_open(self) -> bool:
        return not self._closed

    async def close(self) -> None:
        self._closed = True

    def _announce_reopen(self) -> None:
        self.reopened.set()
        if self.on_reopen is not None:
            try:
                self.on_reopen(self)
            except Exception:
                _log.exception("on_reopen callback of forward on port %d failed", self.listen_port)

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"<{type(self).__name__} {self.listen_host}:{self.listen_port} {state}>"


class ListenerForward(Forward):
    """Our own local listener; it outlives SSH reconnects, so its port never changes."""

    def __init__(
        self,
        listener: RelayListener,
        link_up: Callable[[], bool],
        forget: Callable[[Forward], None],
    ) -> None:
        super().__init__(listener.host, listener.port)
        self.listener, self._link_up, self._forget = listener, link_up, forget

    @property
    def is_open(self) -> bool:
        return not self._closed and self.listener.is_serving and self._link_up()

    async def close(self) -> None:
        self._closed = True
        self._forget(self)
        await self.listener.close()


class Transport(abc.ABC):
    """Acts on the cluster as one user. A command's non-zero exit is a result, not an error.

    Relative paths are relative to the user's home directory.
    """

    @abc.abstractmethod
    async def run(
        self, argv: list[str], *, input: str | None = None, timeout: float = 30
    ) -> CommandResult:  # noqa: ASYNC109 (the contract)
        """Run argv (quoted for a POSIX shell); on `timeout` seconds, TransportError."""

    @abc.abstractmethod
    async def read_file(self, path: str) -> bytes: ...

    @abc.abstractmethod
    async def write_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        """Replace `path` atomically by a file created with `mode` (never wider even for a
        moment); missing parent directories are created with mode 0700."""

    @abc.abstractmethod
    async def remove(self, path: str) -> None:
        """Remove a file; a missing file is fine."""

    async def exists(self, path: str) -> bool:
        """Whether `path` exists; cheap enough to ask every second (watching for a file).

        This default reads the file; transports with a cheaper way override it.
        """
        try:
            await self.read_file(path)
        except FileNotFoundError:
            return False
        return True

    @abc.abstractmethod
    async def open_local_forward(
        self,
        dest_host: str,
        dest_port: int,
        *,
        listen_port: int = 0,
        listen_host: str = "127.0.0.1",
        spares: int = 0,
    ) -> Forward:
        """Listen on this machine; each connection goes on to dest as seen from the login node.

        `spares`: connections to dest kept open ahead of clients (see RelayListener)."""

    @abc.abstractmethod
    async def open_remote_forward(
        self, listen_host: str, listen_port: int, dest_host: str, dest_port: int
    ) -> Forward:
        """Listen on the login node; each connection comes back to dest on the hub side."""

    @abc.abstractmethod
    async def close(self) -> None: ...


def timeout_error(where: str, timeout: float, command: str) -> TransportError:
    return TransportError(f"A command {where} timed out after {timeout:g} s: {command}")


def output_text(output: object) -> str:
    if isinstance(output, bytes):
        return output.decode("utf-8", errors="replace")
    return output if isinstance(output, str) else ""


def __getattr__(name: str) -> Any:
    # `from spawner.transport import SSHTransport` keeps working without an import cycle.
    if name == "SSHTransport":
        from .ssh import SSHTransport

        return SSHTransport
    if name == "LocalTransport":
        from .local import LocalTransport

        return LocalTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
