"""Which status query costs slurmctld least: each shape the hub could use, measured with sdiag on
the test cluster while 1,000 other jobs wait in the queue. The JobMonitor's choice rests on it.

Run as root on the hub machine, with the test cluster up (scripts/testcluster up):

    /opt/hubdash/venv/bin/python -m bench.query_shapes [--calls 20] [--tracked 50]

It holds `--held` jobs of bob, submits `--tracked` held jobs of erin and a few of dave
(users nobody else uses, so sdiag's per-user figures are the bench's alone), runs every
query shape `--calls` times over SSH as the hub would, and prints slurmctld's time per call
(sdiag total_time of the user's RPCs) and the RPC types it took. Then the cost of one round
over all tracked jobs for each way of asking. Cancels its jobs at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from bench.common import delta, sdiag
from bench.scheduler_load import (
    STATUS_FORMAT,
    expected_rpcs,
    run_as_root_cleanly,
    submit_held,
    transport,
)

BENCH_USER, OTHER_USER = "erin", "dave"


def shapes(ids: list[str], users: list[str]) -> list[tuple[str, list[str]]]:
    one, five, all_ids = ids[0], ",".join(ids[:5]), ",".join(ids)
    fmt = ["-o", STATUS_FORMAT]
    return [
        ("scontrol --local -o show job ID", ["scontrol", "--local", "-o", "show", "job", one]),
        ("scontrol -o show job ID", ["scontrol", "-o", "show", "job", one]),
        ("squeue -j ID", ["squeue", "-h", "--states=all", "-j", one, *fmt]),
        ("squeue --local -j ID", ["squeue", "--local", "-h", "--states=all", "-j", one, *fmt]),
        ("squeue -j ID1,...,ID5", ["squeue", "-h", "--states=all", "-j", five, *fmt]),
        (f"squeue -j <all {len(ids)}>", ["squeue", "-h", "--states=all", "-j", all_ids, *fmt]),
        ("squeue -u USER", ["squeue", "-h", "--states=all", "-u", users[0], *fmt]),
        ("squeue --local -u USER", ["squeue", "--local", "-h", "-u", users[0], *fmt]),
        ("squeue -u USER1,USER2", ["squeue", "-h", "--states=all", "-u", ",".join(users), *fmt]),
        ("squeue --start -j ID", ["squeue", "-h", "--start", "-j", one, "-o", "%i|%S"]),
        (
            "squeue -t PD -p debug (positions)",
            ["squeue", "-h", "-t", "PD", "-p", "debug", "-o", "%i"],
        ),
        ("sinfo (queues)", ["sinfo", "-h", "-o", "%P|%a|%l|%D|%F"]),
        ("qstat -f ID (Torque wrapper)", ["qstat", "-f", one]),
        ("qstat -f ID1 ... ID5 (Torque wrapper)", ["qstat", "-f", *ids[:5]]),
    ]


async def measure_shape(argv: list[str], calls: int) -> tuple[float, float, dict[str, float]]:
    """slurmctld ms per call for the bench user, RPCs per call, ms per call by RPC type."""
    conn = transport(BENCH_USER)
    try:
        await conn.run(["true"])
        before = await asyncio.to_thread(sdiag)
        for _ in range(calls):
            await conn.run(argv)
        after = await asyncio.to_thread(sdiag)
    finally:
        await conn.close()
    count, total = delta(before.by_user, after.by_user).get(BENCH_USER, (0, 0))
    types = {
        name.removeprefix("REQUEST_"): t / 1000.0 / calls
        for name, (_, t) in delta(before.by_type, after.by_type).items()
        if name != "REQUEST_STATS_INFO"
    }
    return total / 1000.0 / calls, count / calls, types


async def bench(args: argparse.Namespace, held: str, tracked: str) -> None:
    print(f"holding {args.held} jobs of bob ...", flush=True)
    await submit_held("bob", args.held, held)
    ids = await submit_held(BENCH_USER, args.tracked, tracked)
    await submit_held(OTHER_USER, 3, tracked)
    queued = args.held + args.tracked + 3
    print(f"\nslurmctld time per call ({args.calls} calls each, {queued} jobs queued)\n")
    print(f"{'query':<40} {'ms/call':>8} {'RPCs':>5}  by RPC type (whole slurmctld, ms/call)")
    costs = {}
    for label, argv in shapes(ids, [BENCH_USER, OTHER_USER]):
        for _attempt in range(3):
            ms, rpcs, types = await measure_shape(argv, args.calls)
            # More RPCs than the command makes: someone else used the account meanwhile.
            clean = argv[0] not in ("scontrol", "squeue") or rpcs <= expected_rpcs(argv) + 0.1
            if clean:
                break
        costs[label] = ms
        top = sorted(types.items(), key=lambda item: -item[1])[:3]
        detail = ", ".join(f"{name} {value:.3f}" for name, value in top)
        mark = " " if clean else "!"
        print(f"{label:<40} {ms:>8.3f}{mark}{rpcs:>5.1f}  {detail}", flush=True)
    n = args.tracked
    print(f"\none round over {n} tracked jobs of 2 users:")
    rounds = [
        (f"{n} x scontrol --local show job", n * costs["scontrol --local -o show job ID"]),
        (f"{n} x squeue -j ID", n * costs["squeue -j ID"]),
        ("2 x squeue -u USER", 2 * costs["squeue -u USER"]),
        (f"1 x squeue -j <all {n}>", costs[f"squeue -j <all {n}>"]),
    ]
    for label, ms in rounds:
        print(f"  {label:<36} {ms:>7.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20, help="calls per query shape")
    parser.add_argument("--tracked", type=int, default=50, help="held jobs of the bench user")
    parser.add_argument("--held", type=int, default=1000, help="other jobs held in the queue")
    args = parser.parse_args()
    return run_as_root_cleanly(bench, args)


if __name__ == "__main__":
    sys.exit(main())
