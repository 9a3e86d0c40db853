"""What whole hubs cost slurmctld and sshd: hubdash against batchspawner (over SSH), each a real
JupyterHub with 1, 10 and 50 servers pending and with some running, measured with sdiag.

Run as root on the hub machine, with the test cluster up (scripts/testcluster up):

    /opt/hubdash/venv/bin/python -m bench.scheduler_load_hubs [--seconds 30] [--levels 1,10,50]
        [--running 10] [--held 1000] [--kinds hubdash,batchspawner] [--port 13100]

It holds `--held` jobs of dave in the `hold` partition (the load a real queue puts on every
full scan), then per hub kind starts a hub (hubdash on --port, batchspawner on --port+200 in
the login node's network namespace), spawns servers of carol through the REST API into `hold`
(pending for ever), level by level, and measures each level for `--seconds` after `--warmup`.
Then it stops those and spawns `--running` servers in `debug` (bench/tinyserver.py: only the
spawner's cost matters) and measures again, for at least 60 s (JupyterHub polls running servers
every 30 s). Every job it made is cancelled at the end, also on
Ctrl-C or SIGTERM.

Figures per minute: carol's RPCs and slurmctld time on them (exact: sdiag counts by user),
the top RPC types of the whole slurmctld (others' activity shows there: the script says when),
and sshd logins of carol (sshd's log).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bench.common import (
    Cleanup,
    LoginCounter,
    cancel_jobs,
    hold_jobs,
    live_jobs,
    load_between,
    note_other_users,
    print_table,
    queue_is_quiet,
    run_cleanly,
    sdiag,
    top_types,
)
from bench.hubs import BenchHub, add_hub_arguments, hubs_to_measure, start_hub

USER = "carol"
HELD_USER = "dave"


@dataclass
class Row:
    kind: str
    level: str
    rpcs: float
    ms: float
    logins: float
    types: str
    others: int


def spawn_many(hub: BenchHub, names: list[str], queue: str) -> None:
    options = {"queue": queue, "walltime": "30"} if hub.kind == "hubdash" else {"partition": queue}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda name: hub.spawn(USER, name, **options), names))


def wait_pending(hub: BenchHub, count: int, timeout: float = 600) -> None:
    def pending() -> bool:
        """every server's job in the queue"""
        return len([j for j in live_jobs(hub.job_prefix) if j[2] == "PENDING"]) >= count

    hub.wait_for(pending, timeout, step=1)


def wait_running(hub: BenchHub, count: int, timeout: float = 600) -> int:
    """Wait until every spawn has ended, ready or failed; how many servers are ready."""

    def running_phase() -> list[dict]:
        return [model for _, name, model in hub.servers() if name.startswith("r")]

    def settled() -> bool:
        """every spawn ready or failed"""
        return all(model.get("ready") for model in running_phase())

    hub.wait_for(settled, timeout, step=1)
    ready = sum(1 for model in running_phase() if model.get("ready"))
    if ready < count:
        print(f"  {hub.kind}: {count - ready} of {count} running servers failed to start")
    return ready


def measure(hub: BenchHub, level: str, args: argparse.Namespace, seconds: float) -> Row:
    time.sleep(args.warmup)
    logins = LoginCounter()
    logins.mark()
    before = sdiag()
    time.sleep(seconds)
    after = sdiag()
    minutes = (after.at - before.at) / 60
    load = load_between(before, after, [USER])
    row = Row(
        hub.kind,
        level,
        load.rpcs_per_min,
        load.ms_per_min,
        logins.since_mark([USER]) / minutes,
        top_types(load.by_type_ms_per_min),
        load.others,
    )
    print(
        f"  {hub.kind:>12} {level:>11}: {row.rpcs:7.0f} RPCs/min {row.ms:8.1f} ms/min "
        f"{row.logins:6.0f} logins/min",
        flush=True,
    )
    return row


def bench_kind(kind: str, port: int, prefix: str, args: argparse.Namespace) -> list[Row]:
    rows = []
    hub = start_hub(kind, port, prefix, tiny=True)
    try:
        hub.ensure_users([USER])
        spawned: list[str] = []
        for level in args.levels:
            names = [f"p{n}" for n in range(len(spawned), level)]
            spawn_many(hub, names, "hold")
            spawned += names
            wait_pending(hub, level)
            rows.append(measure(hub, f"{level} pending", args, args.seconds))
        hub.stop_all()
        if args.running:
            spawn_many(hub, [f"r{n}" for n in range(args.running)], "debug")
            ready = wait_running(hub, args.running)
            # JupyterHub polls running servers every 30 s: two rounds at least.
            rows.append(measure(hub, f"{ready} running", args, max(args.seconds, 60)))
            hub.stop_all()
    finally:
        try:
            hub.stop_all(timeout=300)
        finally:
            hub.terminate()
            # Every server was stopped through the API: a job still here is one the hub lost.
            own = f"{prefix}-{USER}" if kind == "hubdash" else f"{prefix}-bs"
            time.sleep(2)
            print(f"  {kind}: jobs left after stopping every server: {cancel_jobs(own)}")
    return rows


def _ratio(theirs: float, ours: float) -> str:
    if not ours:
        return "-" if not theirs else "inf"
    return f"{theirs / ours:.1f}x"


def report(rows: list[Row], args: argparse.Namespace) -> None:
    print(
        f"\nslurmctld load of {USER}'s servers, per minute ({args.held} other jobs held, "
        f"{args.seconds:g} s windows after {args.warmup:g} s warm-up)\n"
    )
    print_table(
        ["hub", "servers", "RPCs/min", "slurmctld ms/min", "SSH logins/min", "top RPC types"],
        [
            (r.kind, r.level, f"{r.rpcs:.0f}", f"{r.ms:.1f}", f"{r.logins:.0f}", r.types)
            for r in rows
        ],
    )
    by_level: dict[str, dict[str, Row]] = {}
    for r in rows:
        by_level.setdefault(r.level, {})[r.kind] = r
    ratios = []
    for level, kinds in by_level.items():
        if len(kinds) == 2:
            hd, bs = kinds["hubdash"], kinds["batchspawner"]
            ratios.append((level, _ratio(bs.ms, hd.ms), _ratio(bs.rpcs, hd.rpcs)))
    if ratios:
        print_table(["servers", "batchspawner/hubdash ms", "batchspawner/hubdash RPCs"], ratios)
    note_other_users([f"{r.kind} {r.level} ({r.others})" for r in rows if r.others])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured time per level")
    parser.add_argument("--warmup", type=float, default=10.0, help="unmeasured time per level")
    parser.add_argument("--levels", default="1,10,50", help="numbers of pending servers")
    parser.add_argument(
        "--running", type=int, default=10, help="running servers (the nodes hold 16 at most)"
    )
    parser.add_argument("--held", type=int, default=1000, help="other jobs held in the queue")
    add_hub_arguments(parser)
    args = parser.parse_args()
    args.levels = sorted(int(n) for n in args.levels.split(","))
    if os.geteuid() != 0:
        print("run as root: sdiag, sshd's log and scancel of other users' jobs need it")
        return 2
    prefix = f"hdbench{os.getpid()}"
    quiet, text = queue_is_quiet()
    print(f"queue before the run: {text}{'' if quiet else ' (not quiet: figures are noisier)'}")

    def body(cleanup: Cleanup) -> None:
        print(f"holding {args.held} jobs of {HELD_USER} in partition hold ...", flush=True)
        hold_jobs(HELD_USER, args.held, f"{prefix}-held")
        rows: list[Row] = []
        for kind, port in hubs_to_measure(args):
            rows += bench_kind(kind, port, prefix, args)
        report(rows, args)

    if not run_cleanly(prefix, body):
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
