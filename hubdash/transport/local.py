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
import stat
import tempfile
from collections.abc import Sequence

from hubdash.transport.base import (
    DEFAULT_MAX_OUTPUT,
    CommandResult,
    Forward,
    OutputTooLarge,
    ReadLimit,
    Transport,
    TransportError,
    command_line,
    not_regular,
    output_limit_error,
    output_text,
    read_outputs,
    timeout_error,
)
from hubdash.transport.relay import (
    FarSide,
    ListenerForward,
    RelayedConnection,
    RelayListener,
    open_socket_far_side,
)

_log = logging.getLogger(__name__)
HERE = "this machine"  # where files are, in messages

# Scripts for file access under a prefix (sudo -u USER ...). Paths and modes arrive as "$1",
# "$2": never part of the script text. A relative path is taken from the user's home.
_CD_HOME = 'h=$(getent passwd "$(id -u)" | cut -d: -f6); cd -- "${h:-$HOME}" || exit 1; '
# Read: 66 missing, 65 not a regular file, 67 (with the size) too large; else at most $2 + 1
# bytes (GNU stat and head, as on any Linux login node).
_READ = (
    '[ -e "$1" ] || exit 66; [ -f "$1" ] || exit 65; s=$(stat -L -c %s -- "$1") || exit 1;'
    ' if [ "$s" -gt "$2" ]; then echo "$s"; exit 67; fi; exec head -c "$(($2 + 1))" -- "$1"'
)
_TAIL = '[ -e "$1" ] || exit 66; [ -f "$1" ] || exit 65; exec tail -c "$2" -- "$1"'
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

    def __init__(
        self,
        prefix: Sequence[str] = (),
        *,
        max_output: int = DEFAULT_MAX_OUTPUT,
        log: logging.Logger | None = None,
    ) -> None:
        self.prefix = list(prefix)
        self.max_output = max_output  # bytes of stdout, and of stderr, kept of a command
        self.log = log or _log
        self._forwards: set[Forward] = set()

    def __repr__(self) -> str:
        return f"<LocalTransport prefix={self.prefix!r}>"

    async def _exec(
        self, argv: Sequence[str], stdin: bytes | None, timeout: float, limit: int | None = None
    ) -> tuple[int, bytes, bytes]:  # noqa: ASYNC109
        command = command_line(argv)
        limit = self.max_output if limit is None else limit
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
        feeding = asyncio.ensure_future(_feed(proc, stdin))
        try:
            async with asyncio.timeout(timeout):
                # Read as it comes, never communicate(): that buffers all output.
                assert proc.stdout is not None and proc.stderr is not None
                out, err = await read_outputs(proc.stdout.read, proc.stderr.read, limit)
                await proc.wait()
        except BaseException as exc:
            await _stop(proc)
            if isinstance(exc, TimeoutError):
                raise timeout_error("here", timeout, command) from None
            if isinstance(exc, OutputTooLarge):
                raise output_limit_error("here", exc.stream, limit, command) from None
            raise
        finally:
            feeding.cancel()
            await asyncio.gather(feeding, return_exceptions=True)
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
        limit: int | None = None,
    ) -> tuple[int, bytes, str]:
        if not posixpath.isabs(path):
            script = _CD_HOME + script
        argv = ["sh", "-c", script, "sh", path, *args]
        status, out, err = await self._exec(argv, stdin, 60, limit)
        if status == 66:
            raise FileNotFoundError(errno.ENOENT, "No such file", path)
        if status == 65:
            raise not_regular(path, HERE)
        return status, out, output_text(err).strip()

    async def read_file(self, path: str, *, max_bytes: int, what: str = "a file") -> bytes:
        if not self.prefix:
            return await asyncio.to_thread(_read_here, path, max_bytes, what)
        limit = ReadLimit(path, max_bytes, where=HERE, what=what)
        # The size line of a refusal, or the file and one byte more: never more is read.
        status, out, err = await self._script(_READ, path, str(max_bytes), limit=max_bytes + 64)
        if status == 67:
            raise limit.too_large(int(out.strip() or 0))
        if status != 0:
            raise _file_error("read", path, self.prefix, err)
        return limit.check_read(out)

    async def read_tail(self, path: str, *, max_bytes: int) -> bytes:
        if not self.prefix:
            return await asyncio.to_thread(_tail_here, path, max_bytes)
        status, out, err = await self._script(_TAIL, path, str(max_bytes), limit=max_bytes)
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


async def _feed(proc: asyncio.subprocess.Process, stdin: bytes | None) -> None:
    """Write stdin beside the reading of the output (a command may answer as it reads)."""
    if stdin is None or proc.stdin is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        proc.stdin.write(stdin)
        await proc.stdin.drain()
        proc.stdin.close()


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """TERM first (sudo passes it on to the command), KILL after two seconds; then our ends
    of its pipes are closed.

    Not proc.wait(): that also waits for the pipes to close, which a child the command left
    behind (the `yes` of `sh -c 'yes'`) may hold open forever, blocked on a pipe we no
    longer read. With our ends closed its next write fails, and it ends.
    """
    with contextlib.suppress(ProcessLookupError):
        if proc.returncode is None:
            proc.terminate()
            for _ in range(40):
                if proc.returncode is not None:
                    break
                await asyncio.sleep(0.05)
            else:
                proc.kill()
    transport = getattr(proc, "_transport", None)  # asyncio keeps it private
    if transport is not None:
        transport.close()


def _file_error(what: str, path: str, prefix: list[str], err: str) -> Exception:
    if "Permission denied" in err:
        return PermissionError(errno.EACCES, err, path)
    return TransportError(f"Could not {what} {path} through {shlex.join(prefix)}: {err}")


def _here(path: str) -> str:
    return path if os.path.isabs(path) else os.path.join(os.path.expanduser("~"), path)


def _open_regular(path: str) -> tuple[int, int]:
    """An open descriptor of a regular file, and its size. O_NONBLOCK: opening a FIFO
    returns at once (then refused) instead of waiting for a writer."""
    fd = os.open(_here(path), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise not_regular(path, HERE)
    return fd, info.st_size


def _read_here(path: str, max_bytes: int, what: str) -> bytes:
    limit = ReadLimit(path, max_bytes, where=HERE, what=what)
    fd, size = _open_regular(path)
    with open(fd, "rb") as f:
        limit.check_size(size)
        return limit.check_read(f.read(limit.ask))


def _tail_here(path: str, max_bytes: int) -> bytes:
    fd, size = _open_regular(path)
    with open(fd, "rb") as f:
        f.seek(max(0, size - max_bytes))
        return f.read(max_bytes)


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
