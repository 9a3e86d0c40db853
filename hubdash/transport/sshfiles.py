"""SSHFiles: a transport's file access over SFTP on its SSHLink, with bounded reads, all on one
SFTP session kept open while it is used.

One session rather than one per operation: a spawn writes, removes and looks for several
files, and each new SFTP session costs a channel, a subsystem start (a process on the login
node) and a handshake. In a burst of 100 spawns opening them took 15 % of the hub's event
loop (bench/class_burst.py)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import posixpath
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncssh
from asyncssh.constants import FILEXFER_TYPE_REGULAR

from hubdash.transport.base import ReadLimit, TransportError, not_regular
from hubdash.transport.sshlink import SSHLink

T = TypeVar("T")
STAT_SESSION_IDLE = 30.0  # seconds the kept SFTP session stays open unused


def _start_sftp(conn: asyncssh.SSHClientConnection) -> Awaitable[asyncssh.SFTPClient]:
    return conn.start_sftp_client()


def _session_lost(exc: BaseException, conn: asyncssh.SSHClientConnection | None) -> bool:
    """Whether an SFTP operation failed because its session or connection went away (worth
    one more try on a new one), not because the server refused it (final)."""
    if conn is not None and conn.is_closed():
        return True
    gone = (asyncssh.SFTPConnectionLost, asyncssh.SFTPNoConnection, asyncssh.ChannelOpenError)
    return isinstance(exc, gone) or not isinstance(exc, asyncssh.Error)


class SSHFiles:
    """read_file, read_tail, write_file, remove and exists of the Transport contract, on one
    SFTP session of `link` kept open while used (it holds one of the link's session slots)."""

    def __init__(self, link: SSHLink) -> None:
        self._link = link
        self.host = link.host
        self._stat_lock = asyncio.Lock()
        self._stat_sftp: tuple[asyncssh.SSHClientConnection, asyncssh.SFTPClient] | None = None
        self._stat_idle: asyncio.TimerHandle | None = None

    def _denied(self, path: str) -> PermissionError:
        return PermissionError(errno.EACCES, f"Permission denied on {self.host}", path)

    async def _sftp(
        self, path: str, what: str, op: Callable[[asyncssh.SFTPClient], Awaitable[T]]
    ) -> T:
        """Run one SFTP operation on the kept session, again on a new one if the session or
        the connection was lost (all are idempotent). With a single session slot allowed, on
        a session of its own (the slot must stay free for commands)."""
        for attempt in (1, 2):
            conn, kept = None, None
            try:
                if self._link.max_sessions < 2:
                    session = self._link.session(f"SFTP ({what} {path})", _start_sftp)
                    async with session as (conn, sftp), sftp:
                        return await op(sftp)
                conn, sftp = kept = await self._kept_client()
                self._keep_open()
                return await op(sftp)
            except asyncssh.SFTPNoSuchFile:
                raise FileNotFoundError(
                    errno.ENOENT, f"No such file on {self.host}", path
                ) from None
            except asyncssh.SFTPPermissionDenied:
                raise self._denied(path) from None
            except (OSError, asyncssh.Error) as exc:
                lost = _session_lost(exc, conn)
                if lost and kept is not None:
                    self.close(kept[1])
                if attempt == 1 and lost:
                    self._link.log.info(
                        "SFTP session on %s was lost; %s of %s again on a new one",
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
        limit = ReadLimit(path, max_bytes, where=self.host, what=what)

        async def op(sftp: asyncssh.SFTPClient) -> bytes:
            self._check_regular(await sftp.stat(path), path)
            async with sftp.open(path, "rb") as f:
                limit.check_size(await self._regular_size(f, path))
                return limit.check_read(await f.read(limit.ask, 0))

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
        # Looked at before opening too (see not_regular).
        if attrs.type != FILEXFER_TYPE_REGULAR:
            raise not_regular(path, self.host)

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

    # -- the kept session -------------------------------------------------------------------

    async def exists(self, path: str) -> bool:
        """One SFTP stat on the kept session (it holds one session slot; closed after
        STAT_SESSION_IDLE seconds without use)."""
        for attempt in (1, 2):
            _, sftp = await self._kept_client()
            self._keep_open()
            try:
                await sftp.stat(path)
                return True
            except asyncssh.SFTPNoSuchFile:
                return False
            except asyncssh.SFTPPermissionDenied:
                raise self._denied(path) from None
            except (OSError, asyncssh.Error) as exc:
                self.close(sftp)
                if attempt == 2:
                    raise TransportError(
                        f"Could not look for {path} on {self.host} over SFTP: {exc}."
                    ) from None
        raise AssertionError("unreachable")

    async def _kept_client(self) -> tuple[asyncssh.SSHClientConnection, asyncssh.SFTPClient]:
        async with self._stat_lock:
            if self._stat_sftp is not None:
                conn, sftp = self._stat_sftp
                if conn is self._link.conn and not conn.is_closed():
                    return conn, sftp
                self.close()
            self._stat_sftp = await self._link.hold_session("SFTP (files)", _start_sftp)
            return self._stat_sftp

    def _keep_open(self) -> None:
        if self._stat_idle is not None:
            self._stat_idle.cancel()
        loop = asyncio.get_running_loop()
        self._stat_idle = loop.call_later(STAT_SESSION_IDLE, self.close)

    def close(self, only: asyncssh.SFTPClient | None = None) -> None:
        """Close the kept session, if open (with `only`: if it is that one, not a newer one
        that replaced it); the next operation opens another."""
        if only is not None and (self._stat_sftp is None or self._stat_sftp[1] is not only):
            return
        if self._stat_idle is not None:
            self._stat_idle.cancel()
            self._stat_idle = None
        if self._stat_sftp is not None:
            _, sftp = self._stat_sftp
            self._stat_sftp = None
            sftp.exit()
            self._link.release_session()
