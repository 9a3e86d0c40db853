"""What a hubdash hub costs the server daemons of OpenPBS and Grid Engine: a real hub on each
test cluster with 1, 10 and 50 servers pending, measured by the commands the hub ran and by the
daemons' CPU time.

Run as root on the hub machine, from the checkout's root:

    /opt/hubdash/venv/bin/python -m bench.scheduler_load_clusters [--cluster pbs,sge]
        [--seconds 30] [--warmup 10] [--levels 1,10,50] [--no-baseline] [--port 13500]
        [--extra-config FILE]

Per cluster it brings the cluster up (`scripts/testcluster up --only X`, a no-op when it is
up) and measures the daemons idle; then, unless --no-baseline, with 1/10/50 jobs of dave
queued straight into the never-starting queue without any hub (what pending jobs cost the
daemons by themselves); then it starts a hubdash hub on the cluster (bench/hub_config.py,
HUBDASH_SCHEDULER=X) and spawns servers of carol through the REST API into that queue (OpenPBS
`hold`: not started; Grid Engine `hold.q`: disabled), so they stay pending, level by level.
Each level is measured for --seconds after --warmup.

Figures per minute: the scheduler commands the hub ran, by command (the hub's /hub/metrics,
hubdash_scheduler_commands_total); sshd logins of carol on the login node (its log); and the
CPU time of the daemons (/proc/<pid>/stat: user + system, with what their ended children used;
they run in network namespaces of this machine, so their pids are seen here): OpenPBS's
pbs_server, and beside it pbs_sched, pbs_comm and the datastore (the PostgreSQL pbs_server
keeps its jobs in); Grid Engine's sge_qmaster (its scheduler is a thread of it).

Every server is stopped through the API and every job of the run cancelled at the end, also on
Ctrl-C or SIGTERM. No peer is measured: the bench's batchspawner (batchspawner_config.py) is
set up for Slurm only.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.common import (
    CLUSTER_LOGS,
    ROOT,
    Cleanup,
    LoginCounter,
    cpu_seconds,
    print_table,
    run_cleanly,
    ssh_argv,
)
from bench.hubs import BenchHub, start_hub
from hubdash.schedulers import pbsjson
from hubdash.schedulers.sgexml import parse_cluster_queues, parse_job_list

USER = "carol"  # the hub's servers
HELD_USER = "dave"  # the baseline's jobs, queued without a hub
# (id, name, state, owner) of a live job, as a listing shows it.
Job = tuple[str, str, str, str]


@dataclass(frozen=True)
class TestCluster:
    """One of the test bed's clusters, as this benchmark uses it."""

    name: str  # scripts/testcluster's, and the demo's HUBDASH_SCHEDULER
    login_host: str
    login_node: str  # its network namespace and hostname
    default_queue: str
    hold_queue: str  # takes jobs, never starts them
    daemons: dict[str, tuple[str, str]]  # name -> (pid file, the process's comm)
    main_daemon: str  # the one that answers the hub's commands
    submit_loop: str  # sh: $1 jobs named $2 into queue $3, ids on stdout
    list_command: str  # sh: every live job of every user, as the listing parser reads it
    parse_listing: Callable[[str], list[Job]]
    free_command: str  # sh: what the free-CPU parser reads
    parse_free: Callable[[str, str], int]  # (stdout, queue): CPUs (slots) idle for the queue

    @property
    def sshd_log(self) -> Path:
        return CLUSTER_LOGS / f"sshd-{self.name}.log"


def _pbs_listing(stdout: str) -> list[Job]:
    return [
        (
            job_id,
            record.get("Job_Name", ""),
            record.get("job_state", ""),
            record.get("Job_Owner", "").split("@", 1)[0],
        )
        for job_id, record in pbsjson.records(stdout, "Jobs", "qstat")
    ]


def _sge_listing(stdout: str) -> list[Job]:
    return [(job.job_id, job.name, job.state, job.owner) for job in parse_job_list(stdout).values()]


def _pbs_free(stdout: str, queue: str) -> int:
    """Idle CPUs of every node (the test bed's queues share them all)."""
    return sum(
        int(node.get("resources_available.ncpus", "0"))
        - int(node.get("resources_assigned.ncpus", "0"))
        for _, node in pbsjson.records(stdout, "nodes", "pbsnodes")
    )


def _sge_free(stdout: str, queue: str) -> int:
    found = parse_cluster_queues(stdout).get(queue)
    return (found.available or 0) if found else 0


PBS_HOME = "/var/spool/pbs"
CLUSTERS = {
    "pbs": TestCluster(
        name="pbs",
        login_host="10.214.0.2",
        login_node="pbs-login",
        default_queue="workq",
        hold_queue="hold",
        daemons={
            "pbs_server": (f"{PBS_HOME}/server_priv/server.lock", "pbs_server.bin"),
            "pbs_sched": (f"{PBS_HOME}/sched_priv/sched.lock", "pbs_sched"),
            "pbs_comm": (f"{PBS_HOME}/server_priv/comm.lock", "pbs_comm"),
            "datastore": (f"{PBS_HOME}/datastore/postmaster.pid", "postgres"),
        },
        main_daemon="pbs_server",
        submit_loop=(
            'n=0; while [ "$n" -lt "$1" ]; do '
            'echo "sleep 60" | qsub -N "$2" -q "$3" -l walltime=0:05:00 -o /dev/null -j oe '
            "|| exit 1; n=$((n+1)); done"
        ),
        list_command="qstat -f -F json",
        parse_listing=_pbs_listing,
        free_command="pbsnodes -a -F json",
        parse_free=_pbs_free,
    ),
    "sge": TestCluster(
        name="sge",
        login_host="10.215.0.2",
        login_node="sge-login",
        default_queue="all.q",
        hold_queue="hold.q",
        daemons={
            "sge_qmaster": ("/var/spool/gridengine/qmaster/qmaster.pid", "sge_qmaster"),
        },
        main_daemon="sge_qmaster",
        submit_loop=(
            'n=0; while [ "$n" -lt "$1" ]; do '
            'qsub -terse -N "$2" -q "$3" -l h_rt=0:05:00 -o /dev/null -j y -b y /bin/sleep 60 '
            "|| exit 1; n=$((n+1)); done"
        ),
        list_command="qstat -u '*' -xml",
        parse_listing=_sge_listing,
        free_command="qstat -g c -xml",
        parse_free=_sge_free,
    ),
}


# ----------------------------------------------------------------------- the cluster ---


def on_login(cluster: TestCluster, user: str, script: str, *args: str) -> str:
    """Run an sh script on the cluster's login node as `user`; its standard output."""
    remote = shlex.join(["sh", "-c", script, "sh", *args])
    done = subprocess.run(
        [*ssh_argv(user, host=cluster.login_host), remote],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{script[:40]}... as {user} failed: {done.stderr.strip()[-300:]}")
    return done.stdout


def jobs_of_prefix(cluster: TestCluster, prefix: str, asker: str = USER) -> list[Job]:
    """Every user's live jobs named `prefix` or `prefix-...` (listed as `asker`: both test
    clusters show every user's jobs to everyone)."""
    listing = cluster.parse_listing(on_login(cluster, asker, cluster.list_command))
    return [job for job in listing if job[1] == prefix or job[1].startswith(f"{prefix}-")]


def live_jobs(cluster: TestCluster, user: str, prefix: str) -> list[tuple[str, str, str]]:
    """(id, name, state) of `user`'s live jobs named `prefix` or `prefix-...`."""
    return [
        (job_id, name, state)
        for job_id, name, state, owner in jobs_of_prefix(cluster, prefix, user)
        if owner == user
    ]


def _qdel(cluster: TestCluster, user: str, ids: list[str]) -> None:
    for start in range(0, len(ids), 100):
        on_login(cluster, user, 'qdel "$@" >/dev/null', *ids[start : start + 100])


def cancel_jobs(cluster: TestCluster, user: str, prefix: str) -> int:
    """Cancel `user`'s live jobs of `prefix` (as live_jobs matches it); how many there were."""
    ids = [job_id for job_id, _, _ in live_jobs(cluster, user, prefix)]
    _qdel(cluster, user, ids)
    return len(ids)


def cancel_everyones_jobs(cluster: TestCluster, prefix: str) -> list[Job]:
    """Cancel every user's live jobs of `prefix`, each by its owner (over SSH, as the users
    may); the jobs there were."""
    jobs = jobs_of_prefix(cluster, prefix)
    by_owner: dict[str, list[str]] = {}
    for job_id, _, _, owner in jobs:
        by_owner.setdefault(owner, []).append(job_id)
    for owner, ids in by_owner.items():
        _qdel(cluster, owner, ids)
    return jobs


def free_cpus(cluster: TestCluster, queue: str) -> int:
    """CPUs (Grid Engine: slots) idle for jobs of `queue`."""
    return cluster.parse_free(on_login(cluster, USER, cluster.free_command), queue)


def daemon_pids(cluster: TestCluster) -> dict[str, int]:
    """The daemons' pids, from their pid files (checked against the process's name)."""
    pids = {}
    for name, (pid_file, comm) in cluster.daemons.items():
        pid = int(Path(pid_file).read_text().split()[0])
        if Path(f"/proc/{pid}/comm").read_text().strip() != comm:
            raise RuntimeError(f"{name}: pid {pid} of {pid_file} is not {comm}")
        pids[name] = pid
    return pids


# ----------------------------------------------------------------------- the hub ---


def hub_commands_by_cluster(hub: BenchHub) -> dict[str, dict[str, float]]:
    """The hub's scheduler commands so far, by cluster (its metrics' label) and command
    (its /hub/metrics)."""
    answer = requests.get(
        f"{hub.url}/hub/metrics", headers={"Authorization": f"token {hub.token}"}, timeout=60
    )
    answer.raise_for_status()
    counts: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(answer.text):
        if family.name != "hubdash_scheduler_commands":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                by_command = counts.setdefault(sample.labels["cluster"], {})
                command = sample.labels["command"]
                by_command[command] = by_command.get(command, 0.0) + sample.value
    return counts


def hub_commands(hub: BenchHub) -> dict[str, float]:
    """The hub's scheduler commands so far, by command, all clusters together."""
    counts: dict[str, float] = {}
    for by_command in hub_commands_by_cluster(hub).values():
        for command, count in by_command.items():
            counts[command] = counts.get(command, 0.0) + count
    return counts


def spawn_pending(hub: BenchHub, cluster: TestCluster, names: list[str]) -> None:
    options = {"queue": cluster.hold_queue, "walltime": "30"}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda name: hub.spawn(USER, name, **options), names))


def wait_queued(cluster: TestCluster, user: str, prefix: str, count: int) -> None:
    deadline = time.monotonic() + 600
    while len(live_jobs(cluster, user, prefix)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} jobs of {user} not queued on {cluster.name} in 600 s")
        time.sleep(2)


# ----------------------------------------------------------------------- measuring ---


@dataclass
class Row:
    cluster: str
    level: str
    pending: int
    with_hub: bool
    commands: float  # the hub's scheduler commands a minute
    by_command: dict[str, float]
    logins: float  # sshd logins of carol a minute
    daemon_ms: dict[str, float]  # CPU ms a minute, by daemon


def measure(
    cluster: TestCluster,
    pids: dict[str, int],
    hub: BenchHub | None,
    level: str,
    pending: int,
    args: argparse.Namespace,
) -> Row:
    time.sleep(args.warmup)
    logins = LoginCounter(cluster.sshd_log)
    logins.mark()
    commands = hub_commands(hub) if hub else {}
    cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.monotonic()
    time.sleep(args.seconds)
    minutes = (time.monotonic() - started) / 60
    cpu = {name: (cpu_seconds(pid) - cpu[name]) * 1000 / minutes for name, pid in pids.items()}
    after = hub_commands(hub) if hub else {}
    by_command = {
        command: (count - commands.get(command, 0.0)) / minutes
        for command, count in after.items()
        if count != commands.get(command, 0.0)
    }
    row = Row(
        cluster.name,
        level,
        pending,
        hub is not None,
        sum(by_command.values()),
        by_command,
        logins.since_mark([USER]) / minutes,
        cpu,
    )
    print(
        f"  {cluster.name:>4} {level:>20}: {row.commands:5.1f} commands/min "
        f"{cpu[cluster.main_daemon]:7.1f} ms/min {cluster.main_daemon}",
        flush=True,
    )
    return row


def bench_cluster(
    cluster: TestCluster, port: int, prefix: str, args: argparse.Namespace, cleanup: Cleanup
) -> list[Row]:
    print(f"== {cluster.name}: scripts/testcluster up --only {cluster.name}", flush=True)
    subprocess.run([str(ROOT / "scripts" / "testcluster"), "up", "--only", cluster.name],
                   check=True, timeout=1800, stdout=subprocess.DEVNULL)  # fmt: skip
    pids = daemon_pids(cluster)
    own, held = f"{prefix}-{USER}", f"{prefix}-held"
    cleanup.append(lambda: cancel_jobs(cluster, USER, own))
    cleanup.append(lambda: cancel_jobs(cluster, HELD_USER, held))
    rows = [measure(cluster, pids, None, "idle, no hub", 0, args)]
    if args.baseline:
        queued = 0
        for level in args.levels:
            on_login(cluster, HELD_USER, cluster.submit_loop, str(level - queued), held,
                     cluster.hold_queue)  # fmt: skip
            queued = level
            wait_queued(cluster, HELD_USER, held, level)
            rows.append(measure(cluster, pids, None, f"{level} queued, no hub", level, args))
        cancel_jobs(cluster, HELD_USER, held)
    extra = Path(args.extra_config).read_text() if args.extra_config else ""
    hub = start_hub("hubdash", port, prefix, tiny=True, scheduler=cluster.name, extra_config=extra)
    try:
        hub.ensure_users([USER])
        spawned: list[str] = []
        for level in args.levels:
            names = [f"p{n}" for n in range(len(spawned), level)]
            spawn_pending(hub, cluster, names)
            spawned += names
            wait_queued(cluster, USER, own, level)
            rows.append(measure(cluster, pids, hub, f"{level} pending, hub", level, args))
    finally:
        try:
            hub.stop_all(timeout=300)
        finally:
            hub.terminate()
            # Every server was stopped through the API: a job still here is one the hub lost.
            time.sleep(2)
            left = cancel_jobs(cluster, USER, own)
            print(f"  {cluster.name}: jobs left after stopping every server: {left}", flush=True)
    return rows


# ----------------------------------------------------------------------- the report ---


def is_flat(values: list[float], slack: float) -> bool:
    """Flat in N: the largest at most twice the smallest, plus `slack` for the window's grain
    (pending servers followed one command each would grow 50x from 1 to 50)."""
    # Rounded as printed: a rate of 10.0000001 a minute is the 10 the table shows.
    return round(max(values), 1) <= 2 * round(min(values), 1) + slack


def top(by_name: dict[str, float], n: int = 3) -> str:
    items = sorted(by_name.items(), key=lambda item: -item[1])[:n]
    return ", ".join(f"{name} {value:.1f}" for name, value in items) or "-"


def report(rows: list[Row], args: argparse.Namespace) -> None:
    print(f"\nper minute, {args.seconds:g} s windows after {args.warmup:g} s warm-up\n")
    print_table(
        ["cluster", "servers", "hub commands/min", "by command", "logins/min", "daemon ms/min",
         "others ms/min"],
        [
            (r.cluster, r.level, f"{r.commands:.1f}" if r.with_hub else "-", top(r.by_command),
             f"{r.logins:.0f}", f"{r.daemon_ms[CLUSTERS[r.cluster].main_daemon]:.1f}",
             top({k: v for k, v in r.daemon_ms.items() if k != CLUSTERS[r.cluster].main_daemon}))
            for r in rows
        ],
    )  # fmt: skip
    for name in dict.fromkeys(r.cluster for r in rows):
        daemon = CLUSTERS[name].main_daemon
        hub = [r for r in rows if r.cluster == name and r.with_hub]
        if len(hub) < 2:
            continue
        commands = [r.commands for r in hub]
        load = [r.daemon_ms[daemon] for r in hub]
        levels = "/".join(str(r.pending) for r in hub)
        print(
            f"{name}: hub commands/min at {levels} pending: "
            + "/".join(f"{v:.1f}" for v in commands)
            + (" flat" if is_flat(commands, slack=2) else " NOT flat")
            + f"; {daemon} ms/min: "
            + "/".join(f"{v:.1f}" for v in load)
            + (" flat" if is_flat(load, slack=5) else " NOT flat")
        )
        baseline = [r for r in rows if r.cluster == name and not r.with_hub and r.pending]
        if baseline:
            print(
                f"{name}: {daemon} ms/min with the same numbers of jobs queued and no hub: "
                + "/".join(f"{r.daemon_ms[daemon]:.1f}" for r in baseline)
            )
    print(
        "flat: the largest figure at most twice the smallest, plus 2 commands or 5 ms a minute "
        "for the window's grain"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cluster", default="pbs,sge", help="test clusters: pbs and/or sge")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured time per level")
    parser.add_argument("--warmup", type=float, default=10.0, help="unmeasured time per level")
    parser.add_argument("--levels", default="1,10,50", help="numbers of pending servers")
    parser.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="skip the levels of jobs queued without a hub",
    )
    parser.add_argument("--port", type=int, default=13500, help="the hub's port (+100 each)")
    parser.add_argument("--extra-config", default="", help="a file of more hub config to try")
    args = parser.parse_args()
    args.levels = sorted(int(n) for n in args.levels.split(","))
    clusters = [CLUSTERS[name] for name in args.cluster.split(",")]
    if os.geteuid() != 0:
        print("run as root: the daemons' /proc figures and sshd's logs need it")
        return 2
    prefix = f"hdbench{os.getpid()}"

    def body(cleanup: Cleanup) -> None:
        rows: list[Row] = []
        for n, cluster in enumerate(clusters):
            rows += bench_cluster(cluster, args.port + 100 * n, prefix, args, cleanup)
        report(rows, args)

    def sweep(prefix: str) -> str:
        """Every job of this run on the clusters it used (there may be no Slurm cluster)."""
        left = []
        for cluster in clusters:
            try:
                count = sum(cancel_jobs(cluster, user, prefix) for user in (USER, HELD_USER))
            except Exception as exc:  # noqa: BLE001 - a cluster never brought up, say so
                left.append(f"{cluster.name}: not asked ({exc})")
            else:
                left.append(f"{cluster.name}: {count}")
        return ", ".join(left)

    return 0 if run_cleanly(prefix, body, sweep) else 130  # 130: interrupted, as a shell says


if __name__ == "__main__":
    sys.exit(main())
