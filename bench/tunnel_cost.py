"""What the tunnel costs: a 100 MB download and small requests (each on a new connection) into a
notebook server on a compute node, by every path side by side: through the hub's proxy (and so
the spawner's asyncssh forward), the spawner's forward alone, our Tunnel opened here with and
without the pty-first session (sshd's Nagle), OpenSSH `ssh -L` over the same login node (with
`-N`, and with a pty session), and
directly from inside the compute node's network namespace.

Run as root on the hub machine, with the test cluster up:

    /opt/hubdash/venv/bin/python -m bench.tunnel_cost [--requests 300] [--downloads 3]
        [--size-mb 100] [--port 13100] [--target notebook|plain]

It starts a hubdash hub, spawns one server of carol (queue debug), writes two files into her
home (served by jupyter-server's /files/ with the bench's token), measures, and removes the
files, the server and every process it started, also on Ctrl-C or SIGTERM. The same client
(bench/httpclient.py, one process per measurement) is used on every path, and the paths take
turns (round-robin), so that load from elsewhere falls on all of them alike. `--target plain`
serves the files with Python's http.server on cn1 instead (no hub: the tunnels alone).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    KEYS,
    KNOWN_HOSTS,
    LOGIN_HOST,
    ROOT,
    VENV,
    Cleanup,
    percentile,
    print_table,
    run_cleanly,
    serve_directory,
    ssh_argv,
)
from bench.hubs import start_hub
from hubdash.spawner.tunnel import Tunnel
from hubdash.transport.ssh import SSHTransport

USER = "carol"
SERVER = "tunnel"
CLIENT = [str(VENV / "bin" / "python"), str(ROOT / "bench" / "httpclient.py")]


@dataclass
class PathResult:
    name: str
    mb_per_s: float
    latencies_ms: list[float]


class OwnTunnel:
    """hubdash's Tunnel over its own SSHTransport, served by an event loop in a thread."""

    def __init__(self, node: str, port: int, pty_first: bool, spares: int) -> None:
        self.node, self.port, self.pty_first, self.spares = node, port, pty_first, spares
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.transport: SSHTransport | None = None
        self.tunnel: Tunnel | None = None

    def _call(self, coro, timeout: float = 60):  # noqa: ANN001, ANN202
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def open(self) -> int:
        async def go() -> int:
            self.transport = SSHTransport(
                LOGIN_HOST,
                username=USER,
                client_keys=[str(KEYS / USER)],
                known_hosts=KNOWN_HOSTS,
                pty_first=self.pty_first,
            )
            self.tunnel = Tunnel(self.transport, spare_connections=self.spares)
            return await self.tunnel.open_notebook_forward(self.node, self.port)

        return self._call(go())

    def close(self) -> None:
        async def go() -> None:
            if self.tunnel is not None:
                await self.tunnel.close()
            if self.transport is not None:
                await self.transport.close()

        try:
            self._call(go(), 30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def run_client(prefix: list[str], url: str, token: str, *args: str) -> dict:
    out = subprocess.run(
        [*prefix, *CLIENT, url, "--token", token, *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(out.stdout)


@dataclass
class Route:
    """One way to the server: a name, the URL base, and a command prefix for the client."""

    name: str
    base: str
    prefix: list[str]


def measure(routes: list[Route], token: str, args: argparse.Namespace) -> list[PathResult]:
    """Every route in turn, round after round (downloads, then chunks of small requests), so
    that load from elsewhere on the machine falls on all of them alike."""
    speeds: dict[str, list[float]] = {r.name: [] for r in routes}
    latencies: dict[str, list[float]] = {r.name: [] for r in routes}
    for _ in range(args.downloads):
        for r in routes:
            got = run_client(r.prefix, f"{r.base}/files/{args.big}", token, "--download")
            if got["bytes"] < args.size_mb * 1_000_000:
                raise RuntimeError(f"{r.name}: short download ({got['bytes']} B, {got['status']})")
            speeds[r.name].append(got["bytes"] / got["seconds"] / 1e6)
    chunk = 50
    for done in range(0, args.requests, chunk):
        for r in routes:
            n = str(min(chunk, args.requests - done))
            got = run_client(r.prefix, f"{r.base}/files/{args.small}", token, "--requests", n)
            if "200" not in got["status"]:
                raise RuntimeError(f"{r.name}: small requests answered {got['status']!r}")
            latencies[r.name] += [s * 1000 for s in got["latencies"]]
    results = [
        PathResult(r.name, percentile(speeds[r.name], 50), latencies[r.name]) for r in routes
    ]
    for result in results:
        lat = result.latencies_ms
        print(
            f"  {result.name:<34} {result.mb_per_s:8.0f} MB/s  p50 {percentile(lat, 50):6.2f} ms"
            f"  p99 {percentile(lat, 99):6.2f} ms",
            flush=True,
        )
    return results


def write_files(args: argparse.Namespace) -> list[Path]:
    """The download and the small file in carol's home; for the plain server also under
    <plain_dir>/files/, the path jupyter-server's /files/ gives them."""
    home = Path("/home") / USER
    big, small = home / args.big, home / args.small
    with open(big, "wb") as fh:
        for _ in range(args.size_mb):
            fh.write(os.urandom(1_000_000))
    small.write_text("hdbench small file\n")
    made = [big, small]
    if args.target == "plain":
        folder = home / args.plain_dir / "files"
        folder.mkdir(parents=True)
        for path in (big, small):
            os.link(path, folder / path.name)
            made.append(folder / path.name)
    owner = home.stat()
    for path in made:
        os.chown(path, owner.st_uid, owner.st_gid)
    return made


def report(results: list[PathResult]) -> None:
    by_name = {r.name: r for r in results}
    # The ratio is to OpenSSH's better throughput of its two ways.
    openssh = max(
        (r for r in results if r.name.startswith("OpenSSH")),
        key=lambda r: r.mb_per_s,
        default=None,
    )
    direct = by_name.get("direct (in the node's netns)")
    rows = []
    for r in results:
        p50, p99 = percentile(r.latencies_ms, 50), percentile(r.latencies_ms, 99)
        rows.append(
            (
                r.name,
                f"{r.mb_per_s:.0f}",
                f"{r.mb_per_s / openssh.mb_per_s:.2f}" if openssh else "-",
                f"{p50:.2f}",
                f"{p99:.2f}",
                f"{max(r.latencies_ms):.1f}",
                f"{p50 - percentile(direct.latencies_ms, 50):+.2f}" if direct else "-",
                str(sum(1 for v in r.latencies_ms if v >= 20)),
            )
        )
    print()
    print_table(
        [
            "path",
            "MB/s",
            "x OpenSSH's best",
            "p50 ms",
            "p99 ms",
            "max ms",
            "p50 added vs direct",
            "requests >= 20 ms",
        ],
        rows,
    )


def notebook_routes(args: argparse.Namespace, prefix: str, cleanup: Cleanup) -> tuple:
    """A hubdash hub and one notebook server of carol; (node, port, URL path, token, routes
    that only exist with the hub)."""
    hub = start_hub("hubdash", args.port, prefix)
    cleanup.append(hub.terminate)
    cleanup.append(lambda: hub.stop_all(timeout=120))
    hub.ensure_users([USER])
    hub.spawn(USER, SERVER, queue="debug", walltime="30")
    hub.ready_time(USER, SERVER, timeout=180)
    job = (hub.server(USER, SERVER) or {})["state"]["job"]
    node, port, local = job["node"], int(job["remote_port"]), int(job["local_port"])
    print(f"server on {node}:{port}; the spawner's forward is 127.0.0.1:{local}", flush=True)
    path_part = f"/user/{USER}/{SERVER}"
    hub_routes = [
        Route("hub proxy (+ spawner's forward)", f"{hub.url}{path_part}", []),
        Route("spawner's forward", f"http://127.0.0.1:{local}{path_part}", []),
    ]
    return node, port, path_part, hub.token, hub_routes


def plain_server(args: argparse.Namespace, cleanup: Cleanup) -> tuple:
    """Python's http.server on cn1, serving carol's home (as carol), in place of the notebook:
    the tunnels without the notebook server's own cost. Same return as notebook_routes."""
    node, port = "cn1", 20000 + os.getpid() % 10000
    serve_directory(node, USER, f"/home/{USER}/{args.plain_dir}", port, cleanup)
    print(f"plain http.server on {node}:{port}", flush=True)
    return node, port, "", "", []


def bench(args: argparse.Namespace, prefix: str, cleanup: Cleanup) -> list[PathResult]:
    files = write_files(args)
    cleanup.append(lambda: [f.unlink(missing_ok=True) for f in files])
    if args.target == "notebook":
        node, port, path_part, token, hub_routes = notebook_routes(args, prefix, cleanup)
    else:
        node, port, path_part, token, hub_routes = plain_server(args, cleanup)
    direct = Route(
        "direct (in the node's netns)",
        f"http://127.0.0.1:{port}{path_part}",
        ["nsenter", f"--net=/var/run/netns/{node}"],
    )
    routes = [direct, *hub_routes]
    # The product's defaults first (pty session first, one spare connection), then without
    # each: what the spare saves, and what sshd's Nagle costs.
    for pty_first, spares in ((True, 1), (True, 0), (False, 0)):
        own = OwnTunnel(node, port, pty_first, spares)
        cleanup.append(own.close)
        base = f"http://127.0.0.1:{own.open()}{path_part}"
        label = f"Tunnel, pty_first={pty_first}, {spares} spare"
        routes.append(Route(label, base, []))
    # ssh -N opens no session, so sshd leaves Nagle on; with a pty session it turns it off.
    for label, extra, remote in (
        ("OpenSSH ssh -N -L", ["-N"], []),
        ("OpenSSH ssh -tt -L (pty session)", ["-tt"], ["sleep", "3600"]),
    ):
        ssh_port = free_port()
        forward = ["-o", "ExitOnForwardFailure=yes", "-L", f"127.0.0.1:{ssh_port}:{node}:{port}"]
        openssh = subprocess.Popen(
            ssh_argv(USER, *extra, *forward) + remote,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        cleanup.append(lambda process=openssh: (process.terminate(), process.wait(10)))
        wait_listening(ssh_port)
        routes.append(Route(label, f"http://127.0.0.1:{ssh_port}{path_part}", []))
    results = measure(routes, token, args)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="small requests per path")
    parser.add_argument("--downloads", type=int, default=5, help="downloads per path (median)")
    parser.add_argument("--size-mb", type=int, default=100, help="size of the download")
    parser.add_argument("--port", type=int, default=13100, help="the hub's port")
    parser.add_argument(
        "--target",
        choices=["notebook", "plain"],
        default="notebook",
        help="the notebook server through a hub, or Python's http.server on cn1 (no hub)",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: it enters the compute node's namespace and writes carol's files")
        return 2
    prefix = f"hdbench{os.getpid()}"
    args.big, args.small = f"{prefix}-big.bin", f"{prefix}-small.txt"
    args.plain_dir = f"{prefix}-plain"
    results: list[PathResult] = []

    def body(cleanup: Cleanup) -> None:
        cleanup.append(lambda: shutil.rmtree(Path("/home") / USER / args.plain_dir, True))
        results.extend(bench(args, prefix, cleanup))

    if not run_cleanly(prefix, body):
        return 130
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
