"""Runs inside the batch job, beside the server: the server's way to the hub API.

The single-user server talks to 127.0.0.1:<port> on its own node; each connection is relayed
to the hub forward on the login node, at the address the hub last wrote into the server's
private folder (hubdash.job.contract: ROUTE_FILE, HubRoute). When the hub has to move its
forward to another port (the old one was taken by someone else while the hub was down), it
rewrites that file and the next connection follows: the server never needs to know. Bytes
are relayed as they are: with internal TLS the server verifies the hub itself, end to end,
whoever holds a port between.

Runs on a compute node as the user; imports nothing of the hub side so it starts fast.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import sys
from pathlib import Path

from hubdash.job.contract import ROUTE_FILE, ROUTE_FILE_LIMIT, HubRoute

CONNECT_TIMEOUT = 10.0
CHUNK = 64 * 1024
PARENT_CHECK_INTERVAL = 5.0  # seconds between looks at whether the server still runs


class RouteError(Exception):
    """The route file is missing, too large or not a host and a port."""


def read_route(state_dir: Path) -> tuple[str, int]:
    """The login node's host and port of the hub forward, as the hub last wrote them."""
    path = state_dir / ROUTE_FILE
    try:
        with open(path, "rb") as fh:
            raw = fh.read(ROUTE_FILE_LIMIT + 1)
    except OSError as exc:
        raise RouteError(f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > ROUTE_FILE_LIMIT:
        raise RouteError(f"{path} is over {ROUTE_FILE_LIMIT} bytes")
    try:
        route = HubRoute.decode(raw)
    except ValueError as exc:
        raise RouteError(f"{path} {exc}") from None
    return route.host, route.port


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF; drain() keeps at most a chunk or two in memory on a slow side."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, RuntimeError):
        pass


class HubRelay:
    """Accepts the server's connections and relays each to the current hub route."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._last_problem = ""
        self._last_route: tuple[str, int] | None = None

    def _say(self, text: str) -> None:
        print(f"hubdash relay: {text}", file=sys.stderr, flush=True)

    def _problem(self, text: str) -> None:
        # One line per outage, not one per connection the server retries.
        if text != self._last_problem:
            self._last_problem = text
            self._say(text)

    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        hub_w = None
        try:
            try:
                route = read_route(self.state_dir)
            except RouteError as exc:
                self._problem(f"no route to the hub: {exc}")
                return
            if route != self._last_route:
                self._last_route = route
                self._say(f"hub API via {route[0]}:{route[1]}")
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    hub_r, hub_w = await asyncio.open_connection(*route)
            except (OSError, TimeoutError) as exc:
                self._problem(f"cannot reach the hub forward {route[0]}:{route[1]}: {exc}")
                return
            self._last_problem = ""
            await asyncio.gather(_pipe(client_r, hub_w), _pipe(hub_r, client_w))
        finally:
            for writer in (client_w, hub_w):
                if writer is not None:
                    writer.close()


async def serve(listener: socket.socket, state_dir: Path, parent: int) -> None:
    """Relay until the server (our parent: the launcher exec'd into it) is gone."""
    relay = HubRelay(state_dir)
    server = await asyncio.start_server(relay.handle, sock=listener)
    async with server:
        while os.getppid() == parent:  # noqa: ASYNC110 (nothing to wait on but a pid)
            await asyncio.sleep(PARENT_CHECK_INTERVAL)


def listen_on_loopback() -> socket.socket:
    """A listening socket on this node's loopback, on a port the kernel picks."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hubdash.job.hubrelay")
    parser.add_argument("--state-dir", required=True, help="the server's folder")
    parser.add_argument("--fd", type=int, required=True, help="the inherited listening socket")
    parser.add_argument("--parent", type=int, required=True, help="exit when this pid is gone")
    args = parser.parse_args(argv)
    listener = socket.socket(fileno=args.fd)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(listener, Path(args.state_dir).expanduser(), args.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
