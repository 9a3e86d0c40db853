"""LocalTransport: for a hub on the login node itself; commands run here under a prefix such as
`sudo -n -u USER --`. Never makes shell text from input: paths reach scripts as arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import posixpath
import shlex
import tempfile
from collections.abc import Sequence

from .relay import FarSide, RelayedConnection, RelayListener, open_socket_far_side
from .transport import (
    CommandResult,
    Forward,
    ListenerForward,
    Transport,
    TransportError,
    command_line,
    output_text,
    timeout_error,
)

_log = logging.getLogger(__name__)

# Scripts for file access under a prefix (sudo -u USER ...). Paths and modes arrive as "$1",
# "$2": never part of the script text. A relative path is taken from the user's home.
_CD_HOME = 'h=$(getent passwd "$(id -u)" | cut -d: -f6); cd -- "${h:-$HOME}" || exit 1; '
_READ = '[ -e "$1" ] || exit 66; exec cat -- "$1"'
_WRITE = (
    'umask 077; d=$(dirname -- "$1") && mkdir -p -- "$d" && t=$(mktemp -- "$d/.hubdash.XXXXXX")'
    ' || exit 1; if cat > "$t" && chmod -- "$2" "$t" && mv -f -- "$t" "$1"; then exit 0; fi;'
    ' rm -f -- "$t"; exit 1'
)
_REMOVE = 'exec rm -f -- "$1"'


class _DirectForward(Forward):
    """No forward at all: the destination is reachable as it is (LocalTransport)."""


class LocalTransport(Transport):
    """For a hub on the login node itself: commands run here, as `prefix` says.

    `prefix` is put before every command, e.g. ["sudo", "-n", "-u", "alice", "--"] (the caller
    fills in the user). Without a prefix, files are read and written directly by this process.
    A remote forward is not needed here: open_remote_forward returns a Forward that names the
    destination itself.
    """

    def __init__(self, prefix: Sequence[str] = (), *, log: logging.Logger | None = None) -> None:
        self.prefix = list(prefix)
        self.log = log or _log
        self._forwards: set[Forward] = set()

    def __repr__(self) -> str:
        return f"<LocalTransport prefix={self.prefix!r}>"

    async def _exec(
        self, argv: Sequence[str], stdin: bytes | None, timeout: float
    ) -> tuple[int, bytes, bytes]:  # noqa: ASYNC109
        command = command_line(argv)
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.prefix,
                *argv,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
            )
        except FileNotFoundError as exc:
            if self.prefix:
                raise TransportError(
                    f"Cannot start {self.prefix[0]!r}, the command prefix: {exc.strerror}."
                ) from None
            return 127, b"", f"{argv[0]}: command not found\n".encode()
        try:
            async with asyncio.timeout(timeout):
                out, err = await proc.communicate(stdin)
        except BaseException as exc:
            await _stop(proc)
            if isinstance(exc, TimeoutError):
                raise timeout_error("here", timeout, command) from None
            raise
        assert proc.returncode is not None
        return proc.returncode, out, err

    async def run(
        self, argv: list[str], *, input: str | None = None, timeout: float = 30
    ) -> CommandResult:  # noqa: ASYNC109 (the contract)
        status, out, err = await self._exec(
            argv, None if input is None else input.encode(), timeout
        )
        return CommandResult(status, output_text(out), output_text(err))

    async def _script(
        self,
        script: str,
        path: str,
        *args: str,
        stdin: bytes | None = None,
    ) -> tuple[int, bytes, str]:
        if not posixpath.isabs(path):
            script = _CD_HOME + script
        status, out, err = await self._exec(["sh", "-c", script, "sh", path, *args], stdin, 60)
        return status, out, output_text(err).strip()

    async def read_file(self, path: str) -> bytes:
        if not self.prefix:
            return await asyncio.to_thread(_read_here, path)
        status, out, err = await self._script(_READ, path)
        if status == 66:
            raise FileNotFoundError(errno.ENOENT, "No such file", path)
        if status != 0:
            raise _file_error("read", path, self.prefix, err)
        return out

    async def write_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        if not self.prefix:
            return await asyncio.to_thread(_write_here, path, data, mode)
        status, _, err = await self._script(_WRITE, path, format(mode, "o"), stdin=data)
        if status != 0:
            raise _file_error("write", path, self.prefix, err)

    async def remove(self, path: str) -> None:
        if not self.prefix:
            return await asyncio.to_thread(_remove_here, path)
        status, _, err = await self._script(_REMOVE, path)
        if status != 0:
            raise _file_error("remove", path, self.prefix, err)

    async def open_local_forward(
        self,
        dest_host: str,
        dest_port: int,
        *,
        listen_port: int = 0,
        listen_host: str = "127.0.0.1",
        spares: int = 0,
    ) -> Forward:
        async def open_far(near: RelayedConnection) -> FarSide:
            return await open_socket_far_side(near, dest_host, dest_port)

        listener = await RelayListener.start(
            listen_host, listen_port, open_far, spares=spares, log=self.log
        )
        forward = ListenerForward(listener, lambda: True, self._forwards.discard)
        self._forwards.add(forward)
        return forward

    async def open_remote_forward(
        self, listen_host: str, listen_port: int, dest_host: str, dest_port: int
    ) -> Forward:
        return _DirectForward(dest_host, dest_port)

    async def close(self) -> None:
        for forward in list(self._forwards):
            await forward.close()


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """TERM first (sudo passes it on to the command), KILL after two seconds."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 2)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def _file_error(what: str, path: str, prefix: list[str], err: str) -> Exception:
    if "Permission denied" in err:
        return PermissionError(errno.EACCES, err, path)
    return TransportError(f"Could not {what} {path} through {shlex.join(prefix)}: {err}")


def _here(path: str) -> str:
    return path if os.path.isabs(path) else os.path.join(os.path.expanduser("~"), path)


def _read_here(path: str) -> bytes:
    with open(_here(path), "rb") as f:
        return f.read()


def _write_here(path: str, data: bytes, mode: int) -> None:
    path = _here(path)
    parent = os.path.dirname(path)
    missing = []
    while not os.path.isdir(parent):  # os.makedirs would give the intermediate ones 0777-umask
        missing.append(parent)
        parent = os.path.dirname(parent)
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, 0o700)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".hubdash.")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _remove_here(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_here(path))
