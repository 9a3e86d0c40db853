"""What following pending servers costs slurmctld: the hub's JobMonitor against a poller per
server (`squeue -j ID` every 0.5 s, as batchspawner does), measured with sdiag on the test cluster.

Run as root on the hub machine, with the test cluster up (scripts/testcluster up):

    /opt/hubdash/venv/bin/python -m bench.scheduler_load [--seconds 60] [--levels 1,20,50]

It holds 1,000 jobs of bob in the queue (the load a real queue puts on every full scan),
submits held `sleep` jobs of the bench user (erin by default: nobody else uses her, so
sdiag's per-user figures are hers alone) and, per level, tracks that many with a fresh
JobMonitor at the hub's default settings for `--seconds`. It cancels every job it submitted
at the end, also on Ctrl-C or SIGTERM.

Figures: slurmctld time (sdiag total_time) per minute, from sdiag deltas. "user" is the
bench user's own RPCs (exact); "by type" is the whole slurmctld, so other users' activity
during the run shows up there (the script warns when it sees any).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench.common import (
    KEYS,
    KNOWN_HOSTS,
    LOGIN_HOST,
    SUBMIT_LOOP,
    Cleanup,
    load_between,
    run_cleanly,
    sdiag,
    top_types,
)
from hubdash.cluster.cluster import Cluster
from hubdash.cluster.config import ClusterConfig
from hubdash.cluster.monitor import MonitorSettings
from hubdash.metrics import commands_run
from hubdash.transport.base import TransportError
from hubdash.transport.ssh import SSHTransport

STATUS_FORMAT = "%i|%T|%r|%P|%N|%S|%Q"


@dataclass
class Measure:
    user_ms_per_min: float
    user_rpcs_per_min: float
    by_type_ms_per_min: dict[str, float]
    others: int  # RPCs of other users during the window (noise in by_type)
    expected_rpcs_per_min: float  # what the bench's own commands account for

    @property
    def clean(self) -> bool:
        """Whether the bench user's RPCs are the bench's own: nobody else used the account."""
        return self.user_rpcs_per_min <= self.expected_rpcs_per_min * 1.1 + 3


def expected_rpcs(argv: list[str]) -> int:
    """RPCs a command makes to slurmctld (seen with sdiag: bench/query_shapes.py)."""
    local = "--local" in argv
    if argv[0] == "scontrol":
        return 1 if local else 2
    if argv[0] != "squeue":
        return 0
    for option in ("-j", "-u"):  # one job or one user: + FED_INFO unless --local
        if option in argv and "," not in argv[argv.index(option) + 1]:
            return 2 if local else 3
    return 2  # REQUEST_JOB_INFO + REQUEST_PARTITION_INFO


class CountingTransport(SSHTransport):
    """Counts the commands run while a measuring window is open, for the pollution check."""

    window: list[list[str]] | None = None  # shared by all: the open window's commands

    async def run(self, argv: list[str], **kwargs):  # type: ignore[override]
        if CountingTransport.window is not None:
            CountingTransport.window.append(argv)
        return await super().run(argv, **kwargs)


async def window(seconds: float, user: str) -> Measure:
    """sdiag deltas over `seconds`, with the bench's own commands of that time."""
    CountingTransport.window = commands = []
    before = await asyncio.to_thread(sdiag)
    await asyncio.sleep(seconds)
    after = await asyncio.to_thread(sdiag)
    CountingTransport.window = None
    load = load_between(before, after, [user])
    minutes = (after.at - before.at) / 60.0
    expected = sum(expected_rpcs(argv) for argv in commands) / minutes
    return Measure(
        load.ms_per_min, load.rpcs_per_min, load.by_type_ms_per_min, load.others, expected
    )


def transport(user: str) -> SSHTransport:
    return CountingTransport(
        LOGIN_HOST, username=user, client_keys=[str(KEYS / user)], known_hosts=KNOWN_HOSTS
    )


async def submit_held(user: str, count: int, name: str) -> list[str]:
    conn = transport(user)
    try:
        argv = ["sh", "-c", SUBMIT_LOOP, "sh", str(count), name, "debug"]
        result = await conn.run(argv, timeout=900)
    finally:
        await conn.close()
    ids = [line.split(";")[0] for line in result.stdout.split()]
    if result.exit_status != 0 or len(ids) != count:
        raise RuntimeError(f"submitting as {user} failed: {result.stderr.strip()[-300:]}")
    return ids


async def run_monitor(
    user: str, job_ids: list[str], seconds: float, warmup: float, one_per_user: bool
) -> tuple[Measure, dict[str, int]]:
    """A fresh monitor at the hub's default settings, following these pending jobs; what
    slurmctld spent, and the commands a minute the monitor ran (from the hub's metrics).

    `one_per_user`: look the jobs up as if each belonged to another user (one lookup per
    job, never a per-user query); slurmctld's cost of a lookup does not depend on who asks.
    """
    config = ClusterConfig(name=f"bench-{len(job_ids)}-{one_per_user}", monitor=MonitorSettings())
    cluster = Cluster(config, transport_maker=lambda name, _keys: transport(name))
    if one_per_user:
        cluster.adapter.lookup_batch_min = len(job_ids) + 1
    try:
        for job_id in job_ids:
            cluster.monitor.track(job_id, user)  # starting: a spawn waiting in the queue
        await asyncio.sleep(warmup)
        before = commands_run(config.name)
        measured = await window(seconds, user)
        after = commands_run(config.name)
        per_minute = {
            command: round((count - before.get(command, 0)) * 60 / seconds)
            for command, count in after.items()
        }
        return measured, per_minute
    finally:
        await cluster.close()


async def run_pollers(user: str, job_ids: list[str], seconds: float, every: float) -> Measure:
    """One poller per server: `squeue -j ID` every `every` seconds, as batchspawner does."""
    conn = transport(user)
    stop = asyncio.Event()

    async def poll(job_id: str) -> None:
        while not stop.is_set():
            started = time.monotonic()
            argv = ["squeue", "-h", "--states=all", "-j", job_id, "-o", STATUS_FORMAT]
            try:
                await conn.run(argv)
            except TransportError as exc:  # e.g. sshd restarted by someone: go on
                print(f"        poller: {exc}", file=sys.stderr)
            await asyncio.sleep(max(0.0, every - (time.monotonic() - started)))

    tasks: list[asyncio.Future[None]] = []
    try:
        await conn.run(["true"])  # connected before the window opens
        tasks = [asyncio.ensure_future(poll(job_id)) for job_id in job_ids]
        return await window(seconds, user)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await conn.close()


def polluted(measured: Measure, user: str) -> str:
    return (
        f"{user} made {measured.user_rpcs_per_min:.0f} RPCs/min, the bench's commands "
        f"account for {measured.expected_rpcs_per_min:.0f}: someone else used {user}"
    )


def run_as_root_cleanly(
    bench: Callable[[argparse.Namespace, str, str], Awaitable[None]], args: argparse.Namespace
) -> int:
    """What main() of scheduler_load.py and query_shapes.py does: as root, run
    `bench(args, held_name, tracked_name)`, which submits jobs under these two names, and
    cancel them all at the end, also on Ctrl-C or SIGTERM. The exit status (130: interrupted)."""
    if os.geteuid() != 0:
        print("run as root: sdiag and scancel of other users' jobs need it", file=sys.stderr)
        return 2
    prefix = f"hdbench{os.getpid()}"

    def body(cleanup: Cleanup) -> None:
        asyncio.run(bench(args, f"{prefix}-held", f"{prefix}-track"))

    return 0 if run_cleanly(prefix, body) else 130


async def bench(args: argparse.Namespace, held_name: str, tracked_name: str) -> None:
    levels = [int(n) for n in args.levels.split(",")]
    print(f"holding {args.held} jobs of bob in the queue ...", flush=True)
    await submit_held("bob", args.held, held_name)
    tracked = await submit_held(args.user, max(levels), tracked_name)
    whose = "each of another user" if args.one_server_per_user else f"all of {args.user}"
    print(
        f"slurmctld time per minute (sdiag total_time), {args.held} other jobs held, "
        f"{args.seconds:g} s per level, pending servers {whose}\n"
    )
    by_type = "by RPC type (whole slurmctld)"
    header = (
        f"{'pending':>7} | {'monitor ms/min':>14} | {'RPCs/min':>8} | {by_type:<44}"
        f" | {'poller ms/min':>13} | {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    per_server = None
    for level in levels:
        ids = tracked[:level]
        for _attempt in range(1 + args.retries):
            hub, commands = await run_monitor(
                args.user, ids, args.seconds, args.warmup, args.one_server_per_user
            )
            if hub.clean:
                break
            print(f"        ({polluted(hub, args.user)}; measuring again)", flush=True)
        if level in args.poller_levels or per_server is None:
            for _attempt in range(1 + args.retries):
                poller = await run_pollers(args.user, ids, args.seconds, args.poll_every)
                if poller.clean:
                    break
                print(f"        ({polluted(poller, args.user)}; measuring again)", flush=True)
            poller_ms, note = poller.user_ms_per_min, "" if poller.clean else "!"
            per_server = poller_ms / level
        else:
            poller_ms, note = per_server * level, "*"
        ratio = poller_ms / hub.user_ms_per_min if hub.user_ms_per_min else float("inf")
        print(
            f"{level:>7} | {hub.user_ms_per_min:>14.1f} | {hub.user_rpcs_per_min:>8.0f} | "
            f"{top_types(hub.by_type_ms_per_min, 4):<44} | {poller_ms:>12.1f}{note or ' '} | "
            f"{ratio:>5.0f}x",
            flush=True,
        )
        print(f"        monitor's commands in its last minute: {commands}")
        if not hub.clean:
            print(f"        ! {polluted(hub, args.user)}: this figure is too high")
        if hub.others:
            print(
                f"        (other users made {hub.others} RPCs meanwhile: 'by type' includes them)"
            )
    if any(level not in args.poller_levels for level in levels[1:]):
        print("\n* per-server pollers not run at this level: the measured cost of one, times level")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured time per level")
    parser.add_argument("--warmup", type=float, default=10.0, help="unmeasured start per level")
    parser.add_argument("--levels", default="1,20,50", help="numbers of pending servers")
    parser.add_argument("--held", type=int, default=1000, help="other jobs held in the queue")
    parser.add_argument("--user", default="erin", help="the user whose servers are pending")
    parser.add_argument("--poll-every", type=float, default=0.5, help="the pollers' interval")
    parser.add_argument(
        "--retries", type=int, default=2, help="measure again when another user's RPCs mixed in"
    )
    parser.add_argument(
        "--one-server-per-user",
        action="store_true",
        help="look the servers up as if each belonged to another user (the usual hub: "
        "one lookup per job) instead of one query for all of the bench user's jobs",
    )
    parser.add_argument(
        "--poller-levels",
        default="1,20",
        help="levels at which the per-server pollers really run (others: scaled from the "
        "measured cost of one; 50 pollers at 0.5 s need 100 SSH commands a second)",
    )
    args = parser.parse_args()
    args.poller_levels = {int(n) for n in args.poller_levels.split(",") if n}
    return run_as_root_cleanly(bench, args)


if __name__ == "__main__":
    sys.exit(main())
