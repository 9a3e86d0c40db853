"""The forward keeper process: holds notebook forwards (a listener here, its far side through
the cluster user's own SSH connection) for as long as the hub renews their leases, whether or
not the hub process lives meanwhile.

Requests, one per line (wire.py), each with an `id` the answer repeats:
  open   {forward, login, user, keys, dest, listen_port, spares, lease}
         the forward named `forward` (an id of the hub's: user and server) to dest=[host, port];
         one already held for the same dest is kept and its lease renewed (after a hub restart)
  renew  {forwards: [...], lease}   answers which of them it does not hold
  close  {forward}
  list   {}   every forward held: id, listen port, dest, open, lease left
  stop   {}   closes every forward and ends the process
A forward whose lease ran out (its hub gone for longer than that, or its server gone with it)
is closed; so is the SSH connection of a user with no forward left. With no forward and no
hub connected for `idle_exit` seconds the process ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from hubdash.keeper.wire import MAX_LINE, WireError, check_peer, encode, read_message
from hubdash.transport.base import Forward, Transport, TransportError
from hubdash.transport.credentials import KeyMaterial
from hubdash.transport.factory import LoginSettings, UserKeys, make_transport
from hubdash.transport.throttle import ConnectThrottle

_log = logging.getLogger("hubdash.keeper")
REAP_INTERVAL = 5.0  # seconds between looks for leases that ran out and idleness
MAX_LEASE = 7 * 24 * 3600.0


class KeeperRequestError(Exception):
    """A request the keeper cannot carry out; its text goes back to the hub."""


@dataclass
class _KeyBox:
    """The key a user's transport logs in with, replaced when the hub sends a newer one."""

    material: KeyMaterial | None = None

    async def get(self) -> KeyMaterial:
        if self.material is None:
            raise TransportError("the forward keeper holds no key for this user")
        return self.material


@dataclass
class _UserLink:
    transport: Transport
    keys: _KeyBox = field(default_factory=_KeyBox)


@dataclass
class _Kept:
    forward: Forward
    link_key: tuple[str, str]
    dest: tuple[str, int]
    lease_until: float


def _login_settings(raw: Any) -> LoginSettings:
    if not isinstance(raw, dict):
        raise KeeperRequestError("'login' must be an object of login settings")
    fields = dict(raw)
    fields["local_command_prefix"] = tuple(fields.get("local_command_prefix", ()))
    try:
        login = LoginSettings(**fields)
        login.check("forward keeper")
    except (TypeError, ValueError) as exc:
        raise KeeperRequestError(f"bad login settings: {exc}") from None
    return login


def _lease(raw: Any) -> float:
    if not isinstance(raw, int | float) or not 0 < raw <= MAX_LEASE:
        raise KeeperRequestError(f"'lease' must be seconds between 0 and {MAX_LEASE:g}")
    return float(raw)


def _text(request: dict, name: str) -> str:
    value = request.get(name)
    if not isinstance(value, str) or not value:
        raise KeeperRequestError(f"{name!r} must be a non-empty string")
    return value


def _port(value: Any, name: str, *, zero: bool) -> int:
    low = 0 if zero else 1
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value < 65536:
        raise KeeperRequestError(f"{name!r} must be a TCP port")
    return value


class ForwardKeeper:
    """Serves the hub's requests on `socket_path` (in a 0700 folder, see wire.private_folder)."""

    def __init__(self, socket_path: str, *, idle_exit: float = 600.0) -> None:
        self.socket_path = socket_path
        self.idle_exit = idle_exit
        self._kept: dict[str, _Kept] = {}
        self._links: dict[tuple[str, str], _UserLink] = {}
        self._throttles: dict[str, ConnectThrottle] = {}
        # Links with an open under way: not idle, though no forward holds them yet.
        self._opening: Counter[tuple[str, str]] = Counter()
        self._clients = 0
        self._idle_since = time.monotonic()
        self._stopping = asyncio.Event()
        self._lock_file: Any = None

    # --- the process ------------------------------------------------------------------------

    def take_lock(self) -> bool:
        """Hold `<socket>.lock` for this process's life (its pid inside); False when another
        keeper holds it already."""
        lock = open(self.socket_path + ".lock", "a+")  # noqa: SIM115 - held for the process's life
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            return False
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        self._lock_file = lock
        return True

    async def serve(self) -> None:
        """Until a stop request or idleness ends the process."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)  # ours: the lock says no other keeper lives
        old_umask = os.umask(0o177)
        try:
            server = await asyncio.start_unix_server(
                self._serve_client, self.socket_path, limit=MAX_LINE
            )
        finally:
            os.umask(old_umask)
        _log.info("Forward keeper %d listening on %s", os.getpid(), self.socket_path)
        reaper = asyncio.ensure_future(self._reap_forever())
        try:
            await self._stopping.wait()
        finally:
            reaper.cancel()
            server.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket_path)
            await self.close_all()
            _log.info("Forward keeper %d stopped", os.getpid())

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(REAP_INTERVAL)
            await self.reap()

    async def reap(self, now: float | None = None) -> None:
        """Close forwards whose lease ran out, then links that serve none; stop when idle."""
        now = time.monotonic() if now is None else now
        for name, kept in list(self._kept.items()):
            if kept.lease_until <= now:
                _log.info("Lease of forward %s ran out: closing it", name)
                await self._close(name)
        await self._close_unused_links()
        if self._kept or self._clients or self._opening:
            self._idle_since = now
        elif now - self._idle_since >= self.idle_exit:
            _log.info("No forward and no hub for %g s: stopping", self.idle_exit)
            self._stopping.set()

    async def close_all(self) -> None:
        for name in list(self._kept):
            await self._close(name)
        await self._close_unused_links()

    # --- one hub connection -------------------------------------------------------------------

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            check_peer(writer)
        except (WireError, OSError) as exc:
            _log.warning("Refused a connection: %s", exc)
            writer.close()
            return
        self._clients += 1
        tasks: set[asyncio.Task] = set()
        try:
            while True:
                try:
                    request = await read_message(reader)
                except WireError as exc:
                    _log.warning("Dropped a hub connection: %s", exc)
                    break
                if request is None:
                    break
                # Each request in a task of its own: one user's slow SSH login must not hold
                # up the answers to the others.
                task = asyncio.ensure_future(self._answer(request, writer))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            self._clients -= 1
            self._idle_since = time.monotonic()
            for task in tasks:
                task.cancel()
            writer.close()

    async def _answer(self, request: dict, writer: asyncio.StreamWriter) -> None:
        answer: dict[str, Any] = {"id": request.get("id")}
        try:
            answer.update(await self.handle(request), ok=True)
        except KeeperRequestError as exc:
            answer.update(ok=False, error=str(exc))
        except (TransportError, OSError) as exc:
            answer.update(ok=False, error=str(exc) or type(exc).__name__)
        except Exception as exc:  # a bug here: the hub gets an answer, not a 10 s wait
            _log.exception("Request %s failed", request.get("op"))
            answer.update(ok=False, error=f"the keeper failed: {type(exc).__name__}: {exc}")
        with contextlib.suppress(ConnectionError):
            writer.write(encode(answer))
            await writer.drain()

    async def handle(self, request: dict) -> dict[str, Any]:
        """The answer's fields for one request; KeeperRequestError for a bad one."""
        op = request.get("op")
        if op == "open":
            return await self._open(request)
        if op == "renew":
            names = request.get("forwards")
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise KeeperRequestError("'forwards' must be a list of forward ids")
            lease = _lease(request.get("lease"))
            missing = [name for name in names if name not in self._kept]
            for name in names:
                if name in self._kept:
                    self._kept[name].lease_until = time.monotonic() + lease
            return {"missing": missing}
        if op == "close":
            await self._close(_text(request, "forward"))
            await self._close_unused_links()
            return {}
        if op == "list":
            now = time.monotonic()
            return {
                "pid": os.getpid(),
                "forwards": [
                    {
                        "forward": name,
                        "listen_port": kept.forward.listen_port,
                        "dest": list(kept.dest),
                        "open": kept.forward.is_open,
                        "lease_left": round(kept.lease_until - now, 1),
                    }
                    for name, kept in sorted(self._kept.items())
                ],
            }
        if op == "stop":
            self._stopping.set()
            return {}
        raise KeeperRequestError(f"unknown request {op!r}")

    # --- forwards -------------------------------------------------------------------------------

    async def _open(self, request: dict) -> dict[str, Any]:
        name = _text(request, "forward")
        login = _login_settings(request.get("login"))
        user = _text(request, "user")
        dest_raw = request.get("dest")
        if not isinstance(dest_raw, list) or len(dest_raw) != 2:
            raise KeeperRequestError("'dest' must be [host, port]")
        if not isinstance(dest_raw[0], str) or not dest_raw[0]:
            raise KeeperRequestError("'dest' must be [host, port]")
        dest = (dest_raw[0], _port(dest_raw[1], "dest", zero=False))
        listen_port = _port(request.get("listen_port", 0), "listen_port", zero=True)
        spares = request.get("spares", 0)
        if not isinstance(spares, int) or not 0 <= spares <= 16:
            raise KeeperRequestError("'spares' must be 0 to 16")
        lease = _lease(request.get("lease"))
        link_key = (json.dumps(asdict(login), sort_keys=True), user)
        link = self._link(link_key, login, user, request.get("keys"))

        kept = self._kept.get(name)
        if kept is not None and kept.dest == dest and kept.link_key == link_key:
            kept.lease_until = time.monotonic() + lease
            return {"listen_port": kept.forward.listen_port, "adopted": True}
        if kept is not None:
            await self._close(name)
        self._opening[link_key] += 1
        try:
            forward = await link.transport.open_local_forward(
                dest[0], dest[1], listen_port=listen_port, spares=spares
            )
        finally:
            self._opening[link_key] -= 1
            if not self._opening[link_key]:
                del self._opening[link_key]
        self._kept[name] = _Kept(forward, link_key, dest, time.monotonic() + lease)
        _log.info(
            "Forward %s: 127.0.0.1:%d → %s:%d as %s",
            name,
            forward.listen_port,
            dest[0],
            dest[1],
            user,
        )
        return {"listen_port": forward.listen_port, "adopted": False}

    def _link(
        self, key: tuple[str, str], login: LoginSettings, user: str, raw_keys: Any
    ) -> _UserLink:
        """The user's transport, made on first use; a key sent with the request replaces the
        one held (a renewed certificate is used at the next connect)."""
        if not isinstance(raw_keys, dict):
            raise KeeperRequestError("'keys' must be an object")
        material = None
        if "private_key" in raw_keys:
            key_text, cert = raw_keys.get("private_key"), raw_keys.get("certificate")
            if not isinstance(key_text, str) or not isinstance(cert, str | None):
                raise KeeperRequestError("'keys' must hold the key (and certificate) as text")
            material = KeyMaterial(key_text, cert, source=str(raw_keys.get("source", "the hub")))
        link = self._links.get(key)
        if link is None:
            box = _KeyBox(material)
            files = raw_keys.get("files", [])
            certs = raw_keys.get("certs", [])
            if not all(isinstance(p, str) for p in [*files, *certs]):
                raise KeeperRequestError("key files must be paths")
            keys = (
                UserKeys(key_source=box.get)
                if material is not None
                else UserKeys(key_files=tuple(files), cert_files=tuple(certs))
            )
            throttle = self._throttles.get(key[0])
            if throttle is None:
                throttle = self._throttles[key[0]] = login.new_keeper_throttle()
            link = _UserLink(make_transport(login, user, keys, throttle, _log), box)
            self._links[key] = link
        elif material is not None:
            link.keys.material = material
        return link

    async def _close(self, name: str) -> None:
        kept = self._kept.pop(name, None)
        if kept is not None:
            with contextlib.suppress(Exception):
                await kept.forward.close()
            _log.info("Closed forward %s (port %d)", name, kept.forward.listen_port)

    async def _close_unused_links(self) -> None:
        used = {kept.link_key for kept in self._kept.values()} | set(self._opening)
        for key in [k for k in self._links if k not in used]:
            # Another close running beside this one may have taken it while this one waited.
            link = self._links.pop(key, None)
            if link is None:
                continue
            with contextlib.suppress(Exception):
                await link.transport.close()


def run(socket_path: str, idle_exit: float) -> int:
    """The process: 0 when it served and stopped, or found another keeper on this socket."""
    keeper = ForwardKeeper(socket_path, idle_exit=idle_exit)
    if not keeper.take_lock():
        _log.info("Another forward keeper serves %s", socket_path)
        return 0
    asyncio.run(keeper.serve())
    return 0
