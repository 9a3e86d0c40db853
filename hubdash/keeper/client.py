"""The hub's side of the forward keeper: one connection per keeper socket, the keeper started
when none answers there, and the notebook forwards it holds as the Tunnel sees them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hubdash.keeper.wire import (
    MAX_LINE,
    WireError,
    check_peer,
    encode,
    private_folder,
    read_message,
)
from hubdash.transport.base import Forward, TransportError
from hubdash.transport.factory import LoginSettings, UserKeys

_log = logging.getLogger("hubdash.keeper")
START_WAIT = 10.0  # seconds a keeper just started has to answer on its socket
REQUEST_TIMEOUT = 60.0  # an open waits for the user's SSH login (with its retries)
LOG_ROTATE_BYTES = 1024 * 1024  # keeper.log is renamed keeper.log.1 at start beyond this


class KeeperError(TransportError):
    """The forward keeper could not be reached or refused a request; the text says which."""


class KeeperAbsent(KeeperError):
    """No forward keeper answers, and none was to be started."""


class KeeperClient:
    """Requests to the keeper at `socket_path`; with `start`, a keeper is started (as a process
    of its own session, so that it outlives this one) when none answers."""

    def __init__(
        self,
        socket_path: str,
        *,
        start: bool = True,
        python: str = sys.executable,
        idle_exit: float = 600.0,
        log: logging.Logger | None = None,
    ) -> None:
        self.socket_path = socket_path
        self.start, self.python, self.idle_exit = start, python, idle_exit
        self.log = log or _log
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task | None = None
        self._pending: dict[int, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._connect_lock = asyncio.Lock()

    async def request(
        self,
        op: str,
        *,
        timeout: float = REQUEST_TIMEOUT,  # noqa: ASYNC109
        start: bool = True,
        **fields: Any,
    ) -> dict:
        """The keeper's answer to one request; KeeperError when it refuses or is not there.
        With `start` False no keeper is started for it (KeeperAbsent when none answers)."""
        writer = await self._connection(start)
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            writer.write(encode({"id": request_id, "op": op, **fields}))
            await writer.drain()
            async with asyncio.timeout(timeout):
                answer = await future
        except (ConnectionError, TimeoutError, WireError) as exc:
            raise KeeperError(
                f"The forward keeper at {self.socket_path} did not answer {op}: {exc or 'timeout'}"
            ) from None
        finally:
            self._pending.pop(request_id, None)
        if not answer.get("ok"):
            raise KeeperError(f"The forward keeper refused {op}: {answer.get('error')}")
        return answer

    async def _connection(self, start: bool) -> asyncio.StreamWriter:
        async with self._connect_lock:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            reader, writer = await self._connect(start and self.start)
            self._writer = writer
            self._reader_task = asyncio.ensure_future(self._read_answers(reader, writer))
            return writer

    async def _connect(self, start: bool) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        started = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_WAIT
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(
                    self.socket_path, limit=MAX_LINE
                )
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                if not start:
                    raise KeeperAbsent(
                        f"No forward keeper answers at {self.socket_path} ({exc.strerror}): start "
                        "one (python -m hubdash.keeper) or let the hub start it "
                        "(JobSpawner.forward_keeper_start)"
                    ) from None
                if not started:
                    await self._start_keeper()
                    started = True
                if loop.time() > deadline:
                    raise KeeperError(
                        f"The forward keeper started for {self.socket_path} does not answer; "
                        f"see {self._log_path()}"
                    ) from None
                await asyncio.sleep(0.1)
                continue
            try:
                check_peer(writer)
            except WireError as exc:
                writer.close()
                raise KeeperError(
                    f"Not using the forward keeper socket {self.socket_path}: {exc}"
                ) from None
            return reader, writer

    def _log_path(self) -> Path:
        return Path(self.socket_path).parent / "keeper.log"

    async def _start_keeper(self) -> None:
        folder = Path(self.socket_path).parent
        try:
            await asyncio.to_thread(private_folder, folder)
        except ValueError as exc:
            raise KeeperError(str(exc)) from None
        log_path = self._log_path()
        with contextlib.suppress(FileNotFoundError):
            if log_path.stat().st_size > LOG_ROTATE_BYTES:
                log_path.replace(log_path.with_name("keeper.log.1"))
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            process = await asyncio.create_subprocess_exec(
                self.python,
                "-m",
                "hubdash.keeper",
                "--socket",
                self.socket_path,
                "--idle-exit",
                str(self.idle_exit),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
                start_new_session=True,  # not in the hub's process group: outlives its stop
            )
        finally:
            os.close(fd)
        self.log.info("Started the forward keeper (pid %d) on %s", process.pid, self.socket_path)

    async def _read_answers(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        error: Exception = ConnectionError("the forward keeper closed its connection")
        try:
            while True:
                answer = await read_message(reader)
                if answer is None:
                    break
                future = self._pending.get(answer.get("id"))  # type: ignore[arg-type]
                if future is not None and not future.done():
                    future.set_result(answer)
        except (WireError, ConnectionError) as exc:
            error = exc
        finally:
            writer.close()
            if self._writer is writer:
                self._writer = None
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(error)

    async def close(self) -> None:
        """Drop the connection; the keeper and its forwards stay."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(BaseException):
                await self._reader_task


class KeptForward(Forward):
    """A notebook forward the keeper holds. `lost` once the keeper says it no longer holds it
    (the keeper was restarted, or the lease ran out): then it must be opened again."""

    def __init__(self, keeper: KeeperForwards, listen_port: int, *, adopted: bool) -> None:
        super().__init__("127.0.0.1", listen_port)
        self.keeper, self.adopted = keeper, adopted
        self.lost = False

    @property
    def is_open(self) -> bool:
        return not self._closed and not self.lost

    async def renew(self) -> bool:
        """Extend the lease; False when the keeper no longer holds this forward. An unanswered
        renewal is not a loss: the forward may well be there."""
        if self._closed or self.lost:
            return False
        try:
            self.lost = not await self.keeper.renew()
        except KeeperError as exc:
            self.keeper.client.log.warning(
                "Could not renew the lease of %s: %s", self.keeper.forward_id, exc
            )
        return not self.lost

    async def close(self) -> None:
        await super().close()
        await self.keeper.close()


class KeeperForwards:
    """Opens the notebook forward of one server in the keeper, as cluster user `username` with
    that user's keys: what Tunnel asks a transport for, done by the keeper instead."""

    def __init__(
        self,
        client: KeeperClient,
        forward_id: str,
        login: LoginSettings,
        username: str,
        keys: UserKeys,
        *,
        lease: float,
    ) -> None:
        self.client, self.forward_id = client, forward_id
        self.login, self.username, self.keys = login, username, keys
        self.lease = lease

    async def _keys(self) -> dict[str, Any]:
        if self.keys.key_source is None:
            return {"files": list(self.keys.key_files), "certs": list(self.keys.cert_files)}
        material = await self.keys.key_source()

        def text(value: str | bytes | None) -> str | None:
            return value.decode() if isinstance(value, bytes) else value

        return {
            "private_key": text(material.private_key),
            "certificate": text(material.certificate),
            "source": material.source,
        }

    async def open_local_forward(
        self, dest_host: str, dest_port: int, *, listen_port: int = 0, spares: int = 0
    ) -> KeptForward:
        answer = await self.client.request(
            "open",
            forward=self.forward_id,
            login=asdict(self.login),
            user=self.username,
            keys=await self._keys(),
            dest=[dest_host, dest_port],
            listen_port=listen_port,
            spares=spares,
            lease=self.lease,
        )
        port = answer.get("listen_port")
        if not isinstance(port, int) or not 0 < port < 65536:
            raise KeeperError(f"The forward keeper answered open with no port: {answer!r}")
        return KeptForward(self, port, adopted=bool(answer.get("adopted")))

    async def renew(self) -> bool:
        answer = await self.client.request("renew", forwards=[self.forward_id], lease=self.lease)
        return self.forward_id not in answer.get("missing", [])

    async def close(self) -> None:
        """Close the forward in the keeper; a keeper that is gone holds nothing to close, and
        none is started to be told so."""
        try:
            await self.client.request("close", forward=self.forward_id, timeout=10, start=False)
        except KeeperAbsent:
            pass
        except KeeperError as exc:
            self.client.log.warning(
                "Could not close forward %s in the keeper: %s", self.forward_id, exc
            )
