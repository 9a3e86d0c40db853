"""One run of bench/relay_ab.py against one source tree: our Tunnel and SSHTransport imported
from that tree, a warm-up, then `--requests` small requests timed by bench/httpclient.py and
the relay's CPU time. Prints {"p50_ms", "cpu_ms_per_request"}.

Run by relay_ab.py as `python -P bench/relay_worker.py ...` with PYTHONPATH=<tree>: the tree
is then the only place on sys.path the product can come from (besides the venv, which the
check below rules out). Standard library only, besides the tree's own modules; knows both
layouts, `hubdash.*` and the older top-level `spawner.*`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import statistics
import subprocess
import time
from pathlib import Path
from types import ModuleType

# Where each layout keeps the two classes: (file in the tree, module name), newest first.
TUNNEL = (
    ("hubdash/spawner/tunnel.py", "hubdash.spawner.tunnel"),
    ("hubdash/transport/tunnel.py", "hubdash.transport.tunnel"),
    ("spawner/tunnel.py", "spawner.tunnel"),
)
SSH = (
    ("hubdash/transport/ssh.py", "hubdash.transport.ssh"),
    ("hubdash/transport/ssh/__init__.py", "hubdash.transport.ssh"),
    ("spawner/ssh.py", "spawner.ssh"),
)


def import_from_tree(tree: Path, candidates: tuple[tuple[str, str], ...]) -> ModuleType:
    """The first candidate module the tree has, imported from the tree itself (not from an
    installed copy of the product that happens to have the same name)."""
    for file, name in candidates:
        if (tree / file).is_file():
            module = importlib.import_module(name)
            origin = Path(module.__file__ or "").resolve()
            if not origin.is_relative_to(tree):
                raise SystemExit(f"{name} came from {origin}, not from {tree}")
            return module
    raise SystemExit(f"{tree} has none of {', '.join(file for file, _ in candidates)}")


async def measure(args: argparse.Namespace, tunnel_class: type, transport_class: type) -> dict:
    transport = transport_class(
        args.login_host,
        username=args.user,
        client_keys=[args.key],
        known_hosts=args.known_hosts,
    )
    # Trees from before the spare connection existed have no such argument.
    spares = (
        {"spare_connections": args.spares}
        if "spare_connections" in inspect.signature(tunnel_class).parameters
        else {}
    )
    tunnel = tunnel_class(transport, **spares)
    client = json.loads(args.client)
    try:
        port = await tunnel.open_notebook_forward(args.node, args.port)
        url = f"http://127.0.0.1:{port}/small.txt"

        async def run_client(n: int) -> list[float]:
            process = await asyncio.create_subprocess_exec(
                *client, url, "--requests", str(n), stdout=subprocess.PIPE
            )
            out, _ = await process.communicate()
            return json.loads(out)["latencies"]

        await run_client(50)  # warm-up: connection, spares, caches
        cpu = time.process_time()
        latencies = await run_client(args.requests)
        cpu = time.process_time() - cpu
    finally:
        await tunnel.close()
        await transport.close()
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "cpu_ms_per_request": cpu / args.requests * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", required=True, help="the source tree to import from")
    parser.add_argument("--port", type=int, required=True, help="the far side's port")
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--spares", type=int, required=True)
    parser.add_argument("--login-host", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--known-hosts", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--client", required=True, help="the HTTP client's argv, as JSON")
    args = parser.parse_args()
    tree = Path(args.src).resolve()
    tunnel_class = import_from_tree(tree, TUNNEL).Tunnel
    transport_class = import_from_tree(tree, SSH).SSHTransport
    print(json.dumps(asyncio.run(measure(args, tunnel_class, transport_class))))


if __name__ == "__main__":
    main()
