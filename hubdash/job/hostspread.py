"""Copies of one command spread over the hosts of a multi-host job: what the Grid Engine and
PBS engine launchers (pehosts.py, pbshosts.py) share. Runs inside the job, standard library
only; each launcher brings its host list and its scheduler's way onto another host.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable

# What the copies on other hosts need from this environment: a task started by the
# scheduler on another host (qrsh -inherit, pbs_tmrsh) gets a minimal environment.
FORWARDED_VARIABLES = (
    "PATH",
    "LD_LIBRARY_PATH",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "IPYTHONDIR",
    "LANG",
    "LC_ALL",
)

# (host, copies) -> the argv that starts `local --count copies` on that host
RemoteStarter = Callable[[str, int], list[str]]


def same_host(a: str, b: str) -> bool:
    """Host names as schedulers and gethostname() write them: short or fully qualified."""
    return a.lower().split(".")[0] == b.lower().split(".")[0]


def place(hosts: list[tuple[str, int]], engines: int, per_node: int) -> list[tuple[str, int]]:
    """How many copies each host runs: up to `per_node` on each host first (spread, as the
    form promised), then up to each host's slots, then any left over round the hosts.

    >>> place([("a", 2), ("b", 2)], 4, 2)
    [('a', 2), ('b', 2)]
    >>> place([("a", 3), ("b", 1)], 4, 2)  # $round_robin on a busy cluster
    [('a', 3), ('b', 1)]
    >>> place([("a", 8), ("b", 8)], 3, 2)
    [('a', 2), ('b', 1)]
    """
    counts = [0] * len(hosts)
    left = engines
    for limit in (lambda i: min(per_node, hosts[i][1]), lambda i: hosts[i][1]):
        for i in range(len(hosts)):
            extra = max(0, min(limit(i) - counts[i], left))
            counts[i] += extra
            left -= extra
    for i in range(left):  # more copies than slots: the job asked for too few
        counts[i % len(hosts)] += 1
    return [(host, count) for (host, _), count in zip(hosts, counts, strict=True) if count]


def wait_all(processes: list[subprocess.Popen]) -> int:
    """Wait for every child, passing on SIGTERM, SIGINT and SIGHUP; the first failure's code."""

    def forward(signum: int, _frame: object) -> None:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signum)

    signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    before = {sig: signal.signal(sig, forward) for sig in signals}
    try:
        codes = [process.wait() for process in processes]
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    return next((code for code in codes if code), 0)


def local(count: int, command: list[str]) -> int:
    """`count` copies of `command` on this host, until they all end."""
    processes = [subprocess.Popen(command, stdin=subprocess.DEVNULL) for _ in range(count)]
    return wait_all(processes)


def spread_over(
    hosts: list[tuple[str, int]],
    engines: int,
    per_node: int,
    command: list[str],
    remote: Callable[[], RemoteStarter],
) -> int:
    """Start this host's copies here and one remote starter per other host; wait for all.

    `remote()` is asked only when some copy goes to another host (finding the scheduler's
    command may fail, and a one-host job must not need it).
    """
    here = socket.gethostname()
    # This host first: its copies start without a task of the scheduler.
    hosts = sorted(hosts, key=lambda entry: not same_host(entry[0], here))
    plan = place(hosts, engines, max(per_node, 1))
    start = remote() if any(not same_host(host, here) for host, _ in plan) else None
    processes = []
    for host, count in plan:
        if same_host(host, here):
            processes += [subprocess.Popen(command, stdin=subprocess.DEVNULL) for _ in range(count)]
        else:
            assert start is not None
            processes.append(subprocess.Popen(start(host, count), stdin=subprocess.DEVNULL))
    return wait_all(processes)


def main(
    argv: list[str] | None,
    module: str,
    hosts_file: str,
    spread: Callable[[int, int, list[str]], int],
) -> int:
    """The launchers' command line: `spread --engines N --per-node P -- CMD...` and
    `local --count K -- CMD...`."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}")
    actions = parser.add_subparsers(dest="action", required=True)
    spread_parser = actions.add_parser("spread", help=f"run copies across {hosts_file}'s hosts")
    spread_parser.add_argument("--engines", type=int, required=True)
    spread_parser.add_argument("--per-node", type=int, default=1)
    spread_parser.add_argument("command", nargs="+")
    local_parser = actions.add_parser("local", help="run copies on this host")
    local_parser.add_argument("--count", type=int, required=True)
    local_parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    try:
        if args.action == "local":
            return local(args.count, args.command)
        return spread(args.engines, args.per_node, args.command)
    except OSError as exc:
        print(f"hubdash: cannot start the engines: {exc}", file=sys.stderr, flush=True)
        return 127


def forwarded_environment() -> list[str]:
    """`NAME=value` words of the variables the copies on other hosts need."""
    return [f"{name}={os.environ[name]}" for name in FORWARDED_VARIABLES if name in os.environ]
