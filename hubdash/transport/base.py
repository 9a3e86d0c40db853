"""The transport contract: run commands, move files and open port forwards as one user.

The interface and the pieces its implementations share; it imports none of them
(SSHTransport lives in ssh.py, LocalTransport in local.py, factory.py chooses).
"""

from __future__ import annotations

import abc
import asyncio
import logging
import shlex
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "CommandResult",
    "FileTooLarge",
    "Forward",
    "HostKeyError",
    "ReadLimit",
    "Transport",
    "TransportError",
    "command_line",
    "not_regular",
]

_log = logging.getLogger(__name__)

# Bytes of stdout, and of stderr, a command may print before it is stopped: its output is
# held in memory, and a command's output can be steered by any cluster user (job names,
# reasons, queue listings).
DEFAULT_MAX_OUTPUT = 1024 * 1024
READ_CHUNK = 64 * 1024


@dataclass
class CommandResult:
    exit_status: int  # the command's status; negative -N when a signal N killed it
    stdout: str
    stderr: str


class TransportError(Exception):
    """The transport failed (connection, authentication, timeout); never a command's own failure."""


class FileTooLarge(TransportError):
    """A file is larger than the hub reads of its kind; nothing of it was kept.

    The files the hub reads live in the user's folders: a 20 GB one must be an error, not
    20 GB in the hub's memory.
    """

    def __init__(
        self,
        path: str,
        size: int,
        limit: int,
        *,
        where: str,
        what: str = "a file",
        at_least: bool = False,
    ) -> None:
        size_text = f"at least {size}" if at_least else str(size)  # it grew while read
        super().__init__(
            f"{path} on {where} is {size_text} bytes, over the {limit}-byte limit for {what}."
        )
        self.path, self.size, self.limit = path, size, limit


@dataclass(frozen=True)
class ReadLimit:
    """The bound on one read_file, shared by the transports: FileTooLarge, naming the file as
    `what`, when its size says it is over `max_bytes` (checked before reading) or when a read
    of `ask` bytes returned more (it grew since)."""

    path: str
    max_bytes: int
    where: str  # the machine, for messages: a login node's name, or "this machine"
    what: str = "a file"

    @property
    def ask(self) -> int:
        """Bytes to read: one more than allowed shows a file that grew after its size was seen."""
        return self.max_bytes + 1

    def too_large(self, size: int, *, at_least: bool = False) -> FileTooLarge:
        return FileTooLarge(
            self.path, size, self.max_bytes, where=self.where, what=self.what, at_least=at_least
        )

    def check_size(self, size: int) -> None:
        if size > self.max_bytes:
            raise self.too_large(size)

    def check_read(self, data: bytes) -> bytes:
        if len(data) > self.max_bytes:
            raise self.too_large(len(data), at_least=True)
        return data


def not_regular(path: str, where: str) -> TransportError:
    """The refusal of a FIFO, device or directory, looked for before opening: opening a FIFO
    waits for a writer that may never come, and a device (a link to /dev/zero) has no size
    and no end."""
    return TransportError(f"{path} on {where} is not a regular file; not read.")


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
        # A remote forward whose users follow its port may be re-opened on another one
        # when the old port is taken (see sshforwards.py).
        self.may_move = False
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


class Transport(abc.ABC):
    """Acts on the cluster as one user. A command's non-zero exit is a result, not an error.

    Relative paths are relative to the user's home directory.
    """

    @abc.abstractmethod
    async def run(
        self, argv: list[str], *, input: str | None = None, timeout: float = 30
    ) -> CommandResult:  # noqa: ASYNC109 (the contract)
        """Run argv (quoted for a POSIX shell); on `timeout` seconds, TransportError. So too
        (the command stopped) when it prints more than the transport's bound on stdout or
        stderr (`max_output`): output is held in memory."""

    @abc.abstractmethod
    async def read_file(self, path: str, *, max_bytes: int, what: str = "a file") -> bytes:
        """The whole of a regular file of at most `max_bytes`.

        FileTooLarge, naming it as `what` (e.g. "a connection file"), when it is larger: by
        its size, and by what was read, never more than max_bytes + 1 bytes even if it grows
        meanwhile. TransportError for a FIFO, device or directory.
        """

    @abc.abstractmethod
    async def read_tail(self, path: str, *, max_bytes: int) -> bytes:
        """The last `max_bytes` (at most) of a regular file, read from its end: a log of
        any size costs the same."""

    @abc.abstractmethod
    async def write_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        """Replace `path` atomically by a file created with `mode` (never wider even for a
        moment); missing parent directories are created with mode 0700."""

    @abc.abstractmethod
    async def remove(self, path: str) -> None:
        """Remove a file; a missing file is fine."""

    async def exists(self, path: str) -> bool:
        """Whether `path` exists; cheap enough to ask every second (watching for a file).

        This default reads a byte of the file; transports with a cheaper way override it.
        """
        try:
            await self.read_tail(path, max_bytes=1)
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


def output_limit_error(where: str, stream: str, limit: int, command: str) -> TransportError:
    return TransportError(
        f"A command {where} printed more than {limit} bytes on {stream} and was stopped: {command}"
    )


class OutputTooLarge(Exception):
    """Internal: a stream passed its limit (the transport turns it into a TransportError)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.stream = stream


async def read_capped(read: Callable[[int], Awaitable[bytes]], limit: int, stream: str) -> bytes:
    """A stream to its end, chunk by chunk; OutputTooLarge as soon as it passes `limit`
    (nothing more is read: the caller stops the command)."""
    chunks: list[bytes] = []
    size = 0
    while data := await read(READ_CHUNK):
        size += len(data)
        if size > limit:
            raise OutputTooLarge(stream)
        chunks.append(data)
    return b"".join(chunks)


async def read_outputs(
    stdout: Callable[[int], Awaitable[bytes]],
    stderr: Callable[[int], Awaitable[bytes]],
    limit: int,
) -> tuple[bytes, bytes]:
    """stdout and stderr at once (a command blocked on a full stderr would never end its
    stdout); OutputTooLarge from the first to pass `limit`, the other read no further."""
    tasks = [
        asyncio.ensure_future(read_capped(stdout, limit, "stdout")),
        asyncio.ensure_future(read_capped(stderr, limit, "stderr")),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task.done() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return tasks[0].result(), tasks[1].result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def output_text(output: object) -> str:
    if isinstance(output, bytes):
        return output.decode("utf-8", errors="replace")
    return output if isinstance(output, str) else ""
