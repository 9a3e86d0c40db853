"""Whether configuring more clusters costs the Slurm cluster anything: slurmctld's time per
minute with 50 pending Slurm servers, from a hub of the Slurm cluster alone and from a hub of
all three test clusters whose other two clusters are busy too.

Run as root on the hub machine, from the checkout's root:

    /opt/hubdash/venv/bin/python -m bench.scheduler_load_multi [--seconds 60] [--busy 20]
        [--servers 50] [--warmup 10] [--port 14000]

It brings the test clusters up (`scripts/testcluster up`, a no-op when they are up), then:

  (a) starts a hubdash hub of the Slurm cluster alone (bench/hub_config.py,
      HUBDASH_SCHEDULER=slurm) on --port and spawns --servers servers of carol into Slurm's
      `hold` partition (down: pending for ever), through the REST API;
  (b) stops it, and starts a hub of all three clusters (HUBDASH_SCHEDULER=all) on --port+100
      with the same servers of carol on Slurm (option cluster=slurm) plus --busy servers of
      dave on each of OpenPBS (`hold`, not started) and Grid Engine (`hold.q`, disabled).

Each is measured for --seconds after --warmup: carol's RPCs and slurmctld's time on them
(sdiag by user: exact whatever others do), dave's RPCs on slurmctld (none expected: his
servers are on the other two clusters), the top RPC types of the whole slurmctld, and the
hub's scheduler commands per minute per cluster (its /hub/metrics). It prints both and their
ratio (b)/(a). Every server is stopped through the API and every job of the run cancelled on
all three clusters at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bench import common
from bench.common import (
    LOGIN_HOST,
    ROOT,
    Cleanup,
    delta,
    load_between,
    note_other_users,
    print_table,
    queue_is_quiet,
    run_cleanly,
    sdiag,
    top_types,
)
from bench.hubs import BenchHub, start_hub
from bench.scheduler_load_clusters import CLUSTERS, hub_commands_by_cluster, top, wait_queued
from bench.scheduler_load_clusters import cancel_jobs as cancel_cluster_jobs
from bench.scheduler_load_hubs import wait_pending

USER = "carol"  # the Slurm servers: the figures compared
BUSY_USER = "dave"  # the other clusters' servers: kept out of carol's sdiag figures
SLURM_HOLD = "hold"
NAMES = ("slurm", "pbs", "sge")
# A one-cluster hub names its cluster after its login node (hubdash/spawner/wiring.py).
LABELS = {LOGIN_HOST: "slurm", **{c.login_host: name for name, c in CLUSTERS.items()}}


@dataclass
class Case:
    """One hub's window, per minute."""

    label: str
    clusters: tuple[str, ...]  # the hub's
    servers: str
    rpcs: float  # carol's RPCs
    ms: float  # slurmctld's time on them
    busy_rpcs: float  # dave's RPCs on slurmctld
    types: str
    others: int  # RPCs of other users meanwhile (the top types include them)
    other_users: list[str]
    commands: dict[str, dict[str, float]]  # cluster -> command -> commands a minute


def by_name(counts: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """The hub's command counts keyed by the test bed's cluster names."""
    return {LABELS.get(label, label): commands for label, commands in counts.items()}


def spawn(hub: BenchHub, user: str, names: list[str], options: dict[str, str]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda name: hub.spawn(user, name, **options), names))


def measure(
    hub: BenchHub, label: str, clusters: tuple[str, ...], servers: str, args: argparse.Namespace
) -> Case:
    time.sleep(args.warmup)
    commands = by_name(hub_commands_by_cluster(hub))
    before = sdiag()
    time.sleep(args.seconds)
    after = sdiag()
    commands_after = by_name(hub_commands_by_cluster(hub))
    minutes = (after.at - before.at) / 60
    load = load_between(before, after, [USER])
    busy = load_between(before, after, [BUSY_USER])
    others = load_between(before, after, [USER, BUSY_USER]).others
    ours = (USER, BUSY_USER, "root")  # root: sdiag itself
    other_users = sorted(set(delta(before.by_user, after.by_user)) - set(ours))
    rates = {
        cluster: {
            command: (count - commands.get(cluster, {}).get(command, 0.0)) / minutes
            for command, count in counts.items()
            if count != commands.get(cluster, {}).get(command, 0.0)
        }
        for cluster, counts in commands_after.items()
    }
    case = Case(
        label,
        clusters,
        servers,
        load.rpcs_per_min,
        load.ms_per_min,
        busy.rpcs_per_min,
        top_types(load.by_type_ms_per_min),
        others,
        other_users,
        rates,
    )
    print(
        f"  {label}: {case.rpcs:.0f} RPCs/min, {case.ms:.1f} ms/min of slurmctld; hub "
        + ", ".join(f"{n} {commands_per_min(case, n)}" for n in clusters)
        + " commands/min",
        flush=True,
    )
    return case


def commands_per_min(case: Case, cluster: str) -> str:
    """The hub's commands a minute on one cluster; "-" for a cluster it does not have."""
    if cluster not in case.clusters:
        return "-"
    return f"{sum(case.commands.get(cluster, {}).values()):.1f}"


def left_jobs(prefix: str, users: tuple[str, ...], clusters: tuple[str, ...]) -> str:
    """Cancel this run's jobs of `users` on `clusters`; what was left, by cluster."""
    left = []
    for name in clusters:
        try:
            if name == "slurm":
                # As root, every user's at once (bench/common.py).
                count = common.cancel_jobs(prefix)
            else:
                count = sum(cancel_cluster_jobs(CLUSTERS[name], u, prefix) for u in users)
        except Exception as exc:  # noqa: BLE001 - a cluster not asked: say so, go on
            count = f"not asked ({exc})"
        left.append(f"{name}: {count}")
    return ", ".join(left)


def run_hub(
    label: str,
    scheduler: str,
    port: int,
    prefix: str,
    args: argparse.Namespace,
    cleanup: Cleanup,
    populate: Callable[[BenchHub], str],
) -> Case:
    """Start a hub, let `populate` spawn its servers (it says which), measure, stop it."""
    hub = start_hub("hubdash", port, prefix, tiny=True, scheduler=scheduler)
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            try:
                hub.stop_all(timeout=300)
            finally:
                hub.terminate()

    cleanup.append(stop)  # also on Ctrl-C, after run_cleanly has stopped listening to it
    hub.ensure_users([USER, BUSY_USER])
    servers = populate(hub)
    clusters = NAMES if scheduler == "all" else (scheduler,)
    case = measure(hub, label, clusters, servers, args)
    stop()
    # Every server was stopped through the API: a job still here is one the hub lost.
    time.sleep(2)
    lost = left_jobs(prefix, (USER, BUSY_USER), clusters)
    print(f"  {label}: jobs left after stopping every server: {lost}", flush=True)
    return case


def slurm_only(args: argparse.Namespace) -> Callable[[BenchHub], str]:
    def populate(hub: BenchHub) -> str:
        names = [f"p{n}" for n in range(args.servers)]
        spawn(hub, USER, names, {"queue": SLURM_HOLD, "walltime": "30"})
        wait_pending(hub, args.servers)
        return f"{args.servers} slurm ({USER})"

    return populate


def all_three(args: argparse.Namespace, prefix: str) -> Callable[[BenchHub], str]:
    def populate(hub: BenchHub) -> str:
        carol = [f"p{n}" for n in range(args.servers)]
        spawn(hub, USER, carol, {"cluster": "slurm", "queue": SLURM_HOLD, "walltime": "30"})
        for name in ("pbs", "sge"):
            cluster = CLUSTERS[name]
            names = [f"{name}{n}" for n in range(args.busy)]
            options = {"cluster": name, "queue": cluster.hold_queue, "walltime": "30"}
            spawn(hub, BUSY_USER, names, options)
        wait_pending(hub, args.servers)
        for name in ("pbs", "sge"):
            wait_queued(CLUSTERS[name], BUSY_USER, f"{prefix}-{BUSY_USER}", args.busy)
        return f"{args.servers} slurm ({USER}) + {args.busy} pbs + {args.busy} sge ({BUSY_USER})"

    return populate


def ratio(b: float, a: float) -> str:
    return f"{b / a:.2f}" if a else "-"


def report(cases: list[Case], args: argparse.Namespace) -> None:
    print(
        f"\nslurmctld load of {USER}'s {args.servers} pending Slurm servers, per minute "
        f"({args.seconds:g} s windows after {args.warmup:g} s warm-up)\n"
    )
    print_table(
        ["hub", "servers", f"{USER} RPCs/min", "slurmctld ms/min", "ms/RPC",
         f"{BUSY_USER} RPCs/min", *(f"hub {n} cmds/min" for n in NAMES),
         "top RPC types (all users)"],
        [
            (c.label, c.servers, f"{c.rpcs:.0f}", f"{c.ms:.1f}", ratio(c.ms, c.rpcs),
             f"{c.busy_rpcs:.0f}",
             *(commands_per_min(c, n) for n in NAMES), c.types)
            for c in cases
        ],
    )  # fmt: skip
    for c in cases:
        print(
            f"{c.label}: hub commands/min by command: "
            + "; ".join(f"{n} {top(c.commands[n], 5)}" for n in NAMES if n in c.commands)
        )
    if len(cases) == 2:
        a, b = cases
        slurm = [sum(c.commands.get("slurm", {}).values()) for c in cases]
        print(
            f"\n(b)/(a): slurmctld ms/min {ratio(b.ms, a.ms)}, {USER} RPCs/min "
            f"{ratio(b.rpcs, a.rpcs)}, hub slurm commands/min {ratio(slurm[1], slurm[0])}"
        )
    note_other_users(
        [f"{c.label} ({c.others}: {', '.join(c.other_users)})" for c in cases if c.others]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured time per hub")
    parser.add_argument("--warmup", type=float, default=10.0, help="unmeasured time per hub")
    parser.add_argument("--servers", type=int, default=50, help="pending Slurm servers")
    parser.add_argument(
        "--busy", type=int, default=20, help="pending servers on each of OpenPBS and Grid Engine"
    )
    parser.add_argument("--port", type=int, default=14000, help="hub (a)'s port; (b) +100")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: sdiag, scancel of the run's jobs and the test bed need it")
        return 2
    prefix = f"hdbench{os.getpid()}"

    def body(cleanup: Cleanup) -> None:
        print("scripts/testcluster up ...", flush=True)
        subprocess.run([str(ROOT / "scripts" / "testcluster"), "up"],
                       check=True, timeout=1800, stdout=subprocess.DEVNULL)  # fmt: skip
        quiet, text = queue_is_quiet()
        print(f"Slurm queue before the run: {text}{'' if quiet else ' (not quiet)'}")
        cases = [
            run_hub("(a) slurm alone", "slurm", args.port, prefix, args, cleanup,
                    slurm_only(args)),
            run_hub("(b) all three", "all", args.port + 100, prefix, args, cleanup,
                    all_three(args, prefix)),
        ]  # fmt: skip
        report(cases, args)

    def sweep(prefix: str) -> str:
        """Every job of this run, on all three clusters."""
        return left_jobs(prefix, (USER, BUSY_USER), NAMES)

    return 0 if run_cleanly(prefix, body, sweep) else 130  # 130: interrupted, as a shell says


if __name__ == "__main__":
    sys.exit(main())
