"""What the tunnel costs: a 100 MB download and small requests (each on a new connection) into a
notebook server on a compute node, by every path side by side: through the hub's proxy (and so
the spawner's asyncssh forward), the spawner's forward alone, our Tunnel opened here with and
without the pty-first session (sshd's Nagle), OpenSSH `ssh -L` over the same login node (with
`-N`, and with a pty session), and
directly from inside the compute node's network namespace.

Run as root on the hub machine, with the test cluster up:

    /opt/hubdash/venv/bin/python bench/tunnel_cost.py [--requests 300] [--downloads 3]
        [--size-mb 100] [--port 13100]

It starts a hubdash hub, spawns one server of carol (queue debug), writes two files into her
home (served by jupyter-server's /files/ with the bench's token), measures, and removes the
files, the server and every process it started, also on Ctrl-C or SIGTERM. The same client
(bench/httpclient.py, one process per measurement) is used on every path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from common import (
    KEYS,
    KNOWN_HOSTS,
    LOGIN_HOST,
    ROOT,
    VENV,
    cancel_jobs,
    ignore_interrupts,
    interrupt_on_sigterm,
    percentile,
    print_table,
    ssh_argv,
)
from hubs import start_hub

sys.path.insert(0, str(ROOT))  # the checkout's spawner: the code under test
from spawner.ssh import SSHTransport  # noqa: E402
from spawner.tunnel import Tunnel  # noqa: E402

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

    def __init__(self, node: str, port: int, pty_first: bool) -> None:
        self.node, self.port, self.pty_first = node, port, pty_first
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
            self.tunnel = Tunnel(self.transport)
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


def measure_path(
    name: str, base: str, token: str, args: argparse.Namespace, prefix: list[str] | None = None
) -> PathResult:
    prefix = prefix or []
    speeds = []
    for _ in range(args.downloads):
        got = run_client(prefix, f"{base}/files/{args.big}", token, "--download")
        if got["bytes"] < args.size_mb * 1_000_000:
            raise RuntimeError(f"{name}: short download ({got['bytes']} bytes, {got['status']})")
        speeds.append(got["bytes"] / got["seconds"] / 1e6)
    small = run_client(prefix, f"{base}/files/{args.small}", token, "--requests", str(args.requests))
    if "200" not in small["status"]:
        raise RuntimeError(f"{name}: small requests answered {small['status']!r}")
    result = PathResult(name, percentile(speeds, 50), [s * 1000 for s in small["latencies"]])
    lat = result.latencies_ms
    print(
        f"  {name:<34} {result.mb_per_s:8.0f} MB/s  p50 {percentile(lat, 50):6.2f} ms  "
        f"p99 {percentile(lat, 99):6.2f} ms",
        flush=True,
    )
    return result


def write_files(args: argparse.Namespace) -> list[Path]:
    home = Path("/home") / USER
    big, small = home / args.big, home / args.small
    with open(big, "wb") as fh:
        for _ in range(args.size_mb):
            fh.write(os.urandom(1_000_000))
    small.write_text("hdbench small file\n")
    owner = home.stat()
    for path in (big, small):
        os.chown(path, owner.st_uid, owner.st_gid)
    return [big, small]


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


def bench(args: argparse.Namespace, prefix: str, cleanup: list) -> list[PathResult]:
    hub = start_hub("hubdash", args.port, prefix)
    cleanup.append(hub.process.terminate)
    cleanup.append(lambda: hub.stop_all(timeout=120))
    hub.ensure_users([USER])
    hub.spawn(USER, SERVER, queue="debug", walltime="30")
    hub.ready_time(USER, SERVER, timeout=180)
    job = (hub.server(USER, SERVER) or {})["state"]["job"]
    node, port, local = job["node"], int(job["remote_port"]), int(job["local_port"])
    path = f"/user/{USER}/{SERVER}"
    token = hub.process.token
    print(f"server on {node}:{port}; the spawner's forward is 127.0.0.1:{local}", flush=True)
    files = write_files(args)
    cleanup.append(lambda: [f.unlink(missing_ok=True) for f in files])

    results = [
        measure_path("direct (in the node's netns)", f"http://127.0.0.1:{port}{path}", token, args,
                     ["nsenter", f"--net=/var/run/netns/{node}"]),  # fmt: skip
        measure_path("hub proxy (+ spawner's forward)", f"{hub.url}{path}", token, args),
        measure_path("spawner's forward (asyncssh)", f"http://127.0.0.1:{local}{path}", token, args),
    ]
    for pty_first in (True, False):
        own = OwnTunnel(node, port, pty_first)
        try:
            local_port = own.open()
            name = f"Tunnel, pty_first={pty_first}"
            results.append(measure_path(name, f"http://127.0.0.1:{local_port}{path}", token, args))
        finally:
            own.close()
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
        try:
            wait_listening(ssh_port)
            base = f"http://127.0.0.1:{ssh_port}{path}"
            results.append(measure_path(label, base, token, args))
        finally:
            openssh.terminate()
            openssh.wait(10)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="small requests per path")
    parser.add_argument("--downloads", type=int, default=3, help="downloads per path (median)")
    parser.add_argument("--size-mb", type=int, default=100, help="size of the download")
    parser.add_argument("--port", type=int, default=13100, help="the hub's port")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: it enters the compute node's namespace and writes carol's files")
        return 2
    prefix = f"hdbench{os.getpid()}"
    args.big, args.small = f"{prefix}-big.bin", f"{prefix}-small.txt"
    cleanup: list = []
    with interrupt_on_sigterm():
        try:
            results = bench(args, prefix, cleanup)
        except KeyboardInterrupt:
            print("\ninterrupted", file=sys.stderr)
            return 130
        finally:
            ignore_interrupts()
            for step in reversed(cleanup):
                try:
                    step()
                except Exception as exc:  # noqa: BLE001 - clean up the rest all the same
                    print(f"clean-up step failed: {exc}", file=sys.stderr)
            print(f"cancelled {cancel_jobs(prefix)} leftover job(s) of the bench", flush=True)
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
