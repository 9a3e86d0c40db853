"""A/B of the tunnel's relay: small requests, each on a new connection, through our Tunnel
built from two (or more) source trees, in alternating runs, so that a change worth 0.05 ms is
told apart from the ±0.1 ms a single run moves by on a shared machine.

Run as root on the hub machine, with the test cluster up, from the checkout's root:

    git worktree add /tmp/hubdash-before <commit>     # the code to compare against
    /opt/hubdash/venv/bin/python -m bench.relay_ab --tree before=/tmp/hubdash-before \
        --tree after=. [--rounds 8] [--requests 2000] [--spares 1]

The far side is Python's http.server on cn1 (as carol), serving one small file: next to
nothing, so the relay's own cost shows. Each run is its own process (bench/relay_worker.py):
it imports the tree's Tunnel and SSHTransport (from `hubdash`, or from `spawner` in trees
from before the package got its name), opens an SSHTransport and a Tunnel (`--spares` spare
connections, where the tree has them), warms up, then times `--requests` requests with
bench/httpclient.py and the relay's CPU time. Prints every run's p50 and, per tree, the
median of those and of CPU per request.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench.common import (
    KEYS,
    KNOWN_HOSTS,
    LOGIN_HOST,
    ROOT,
    VENV,
    Cleanup,
    run_cleanly,
    serve_directory,
)

USER = "carol"
NODE = "cn1"
CLIENT = [str(VENV / "bin" / "python"), str(ROOT / "bench" / "httpclient.py")]
WORKER = ROOT / "bench" / "relay_worker.py"


def run_worker(src: str, port: int, args: argparse.Namespace) -> subprocess.CompletedProcess:
    """One run against the tree `src`, in a process whose only source of the product is that
    tree: `-P` keeps the worker's folder off sys.path, PYTHONPATH names the tree."""
    tree = str(Path(src).resolve())
    argv = [
        sys.executable, "-P", str(WORKER), "--src", tree, "--port", str(port),
        "--requests", str(args.requests), "--spares", str(args.spares),
        "--login-host", LOGIN_HOST, "--user", USER, "--key", str(KEYS / USER),
        "--known-hosts", str(KNOWN_HOSTS), "--node", NODE, "--client", json.dumps(CLIENT),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": tree}
    return subprocess.run(argv, capture_output=True, text=True, cwd=tree, env=env)


def bench(args: argparse.Namespace, cleanup: Cleanup) -> None:
    trees = dict(tree.split("=", 1) for tree in args.tree) or {"checkout": str(ROOT)}
    folder = Path("/home") / USER / f"hdbench-ab-{os.getpid()}"
    folder.mkdir()
    (folder / "small.txt").write_text("hdbench small file\n")
    owner = folder.parent.stat()
    for path in (folder, folder / "small.txt"):
        os.chown(path, owner.st_uid, owner.st_gid)
    cleanup.append(lambda: ((folder / "small.txt").unlink(), folder.rmdir()))
    port = 20000 + os.getpid() % 10000
    serve_directory(NODE, USER, str(folder), port, cleanup)
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    for n in range(args.rounds):
        for name, src in trees.items():
            done = run_worker(src, port, args)
            if done.returncode != 0:
                raise RuntimeError(f"the run of {name} ({src}) failed:\n{done.stderr}")
            runs[name].append(json.loads(done.stdout))
            print(f"  round {n + 1}: {name:<12} p50 {runs[name][-1]['p50_ms']:.3f} ms", flush=True)
    print(f"\n{args.requests} requests a run, {args.rounds} runs a tree, {args.spares} spare(s)\n")
    for name, results in runs.items():
        p50s = sorted(r["p50_ms"] for r in results)
        cpu = statistics.median(r["cpu_ms_per_request"] for r in results)
        print(
            f"{name:>12}: median p50 {statistics.median(p50s):.3f} ms "
            f"(runs: {' '.join(f'{p:.3f}' for p in p50s)}); relay CPU {cpu:.3f} ms/request"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", default=[], help="NAME=PATH of a checkout")
    parser.add_argument("--rounds", type=int, default=8, help="runs per tree, alternating")
    parser.add_argument("--requests", type=int, default=2000, help="requests per run")
    parser.add_argument("--spares", type=int, default=1, help="tunnel_spare_connections")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: the far side runs in cn1's namespace as carol")
        return 2
    return 0 if run_cleanly(f"hdbench{os.getpid()}", lambda c: bench(args, c)) else 130


if __name__ == "__main__":
    sys.exit(main())
