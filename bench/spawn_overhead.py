"""Spawn overhead on an idle cluster, hubdash against batchspawner: from the scheduler allocating
the job to the server being ready through the hub, less the single-user server's own start-up.

Run as root on the hub machine, with the test cluster up and its nodes idle:

    /opt/hubdash/venv/bin/python -m bench.spawn_overhead [--spawns 10]
        [--kinds hubdash,batchspawner] [--port 13100]

Per hub kind it spawns `--spawns` servers of carol one after the other (real
jupyterhub-singleuser, queue debug) and reads five instants for each, all from logs except
the last:

    alloc    slurmctld's log: "sched: Allocate JobId=N" or backfill's "Started JobId=N" (ms)
    exec     the job's log: the server process starts. hubdash's launcher logs "hubdash: <time>
             job N starts the server" as it execs it; batchspawner's job script gets a prologue
             that logs the time right before its server command (batchspawner-singleuser)
    first    the server's first log line (jupyter's own timestamp, ms)
    running  its "Jupyter Server ... is running at" line
    ready    the hub's progress stream says `ready` (read by this script as it arrives)

server start-up = running - exec: the server's own, imports included (jupyter-server and
JupyterLab are imported before the first log line: exec -> first is shown on its own).
overhead = (ready - alloc) - server start-up = launch (alloc -> exec: the job starting and the
spawner's own launch) + notice (running -> ready: the spawner and the hub finding out).
Each server is stopped before the next starts; every job is cancelled at the end, also on
Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench.common import (
    SLURMCTLD_LOG,
    Cleanup,
    free_cpus,
    percentile,
    print_table,
    queue_is_quiet,
    run_cleanly,
)
from bench.hubs import KINDS, BenchHub, add_hub_arguments, hubs_to_measure, start_hub

USER = "carol"
JUPYTER_LINE = re.compile(r"^\[[DIWEC] (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) ")
# hubdash's launcher, and the prologue bench/batchspawner_config.py gives batchspawner's script.
EXEC_LINE = re.compile(
    r"^(?:hubdash: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) job \S+ starts the server"
    r"|bench: server exec at (\d+\.\d+))"
)


@dataclass
class Spawn:
    alloc: float
    exec: float
    first: float
    running: float
    ready: float

    @property
    def own_startup(self) -> float:
        return self.running - self.exec

    @property
    def imports(self) -> float:
        """The part of the server's start-up before its first log line."""
        return self.first - self.exec

    @property
    def launch(self) -> float:
        return self.exec - self.alloc

    @property
    def notice(self) -> float:
        return self.ready - self.running

    @property
    def overhead(self) -> float:
        return (self.ready - self.alloc) - self.own_startup


def allocated_at(job_id: str, timeout: float = 30) -> float:
    """When slurmctld allocated the job (its log line's timestamp, local time)."""
    # The main scheduler logs "sched: Allocate JobId=N ...", the backfill scheduler
    # "sched/backfill: _start_job: Started JobId=N ...".
    pattern = re.compile(rf"^\[(\S+)\] sched.*(?:Allocate|Started) JobId={job_id} ")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(SLURMCTLD_LOG, errors="replace") as log:
            for line in log:
                if match := pattern.match(line):
                    return datetime.fromisoformat(match.group(1)).timestamp()
        time.sleep(0.5)
    raise RuntimeError(f"no allocation of job {job_id} in {SLURMCTLD_LOG}")


def server_times(log_path: Path, timeout: float = 30) -> tuple[float, float, float]:
    """(exec, first log line, "is running at") from a job's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started = first = running = None
        if log_path.exists():
            for line in log_path.read_text(errors="replace").splitlines():
                if match := EXEC_LINE.match(line):
                    local, epoch = match.groups()
                    started = float(epoch) if epoch else datetime.fromisoformat(local).timestamp()
                elif match := JUPYTER_LINE.match(line):
                    stamp = datetime.fromisoformat(match.group(1)).timestamp()
                    first = first or stamp
                    if "is running at" in line:
                        running = stamp
                        break
        if started and first and running:
            return started, first, running
        time.sleep(0.5)
    raise RuntimeError(f"no server start and 'is running at' lines in {log_path}")


def server_log(hub: BenchHub, name: str, job_id: str) -> Path:
    home = Path("/home") / USER
    if hub.kind == "hubdash":
        return home / ".hubdash" / "servers" / name / "job.log"
    return home / f"jupyterhub_slurmspawner_{job_id}.log"


def one_spawn(hub: BenchHub, name: str) -> Spawn:
    options = {"queue": "debug", "walltime": "10"} if hub.kind == "hubdash" else {}
    hub.spawn(USER, name, **options)
    try:
        ready = hub.ready_time(USER, name, timeout=180)
        job_id = hub.job_id(USER, name)
        alloc = allocated_at(job_id)
        started, first, running = server_times(server_log(hub, name, job_id))
        return Spawn(alloc, started, first, running, ready)
    finally:
        hub.stop(USER, name)
        hub.wait_for(lambda: hub.server(USER, name) is None, 120)


def bench_kind(kind: str, port: int, prefix: str, args: argparse.Namespace) -> list[Spawn]:
    hub = start_hub(kind, port, prefix)
    spawns = []
    try:
        hub.ensure_users([USER])
        one_spawn(hub, "warmup")  # first spawn: connections, caches; not counted
        for n in range(args.spawns):
            spawn = one_spawn(hub, f"s{n}")
            spawns.append(spawn)
            print(
                f"  {kind:>12} #{n + 1}: alloc->ready {spawn.ready - spawn.alloc:5.2f} s, "
                f"server start-up {spawn.own_startup:5.2f} s, overhead {spawn.overhead:5.2f} s",
                flush=True,
            )
    finally:
        try:
            hub.stop_all(timeout=120)
        finally:
            hub.terminate()
    return spawns


def summary(kind: str, spawns: list[Spawn]) -> list[str]:
    def p(values: list[float], q: float) -> str:
        return f"{percentile(values, q):.2f}"

    cols = [
        [s.ready - s.alloc for s in spawns],
        [s.own_startup for s in spawns],
        [s.imports for s in spawns],
        [s.overhead for s in spawns],
        [s.launch for s in spawns],
        [s.notice for s in spawns],
    ]
    return [kind, str(len(spawns)), *(f"{p(c, 50)} / {p(c, 95)}" for c in cols)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spawns", type=int, default=10, help="measured spawns per hub")
    add_hub_arguments(parser)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: slurmctld's log and the users' server logs need it")
        return 2
    prefix = f"hdbench{os.getpid()}"
    quiet, text = queue_is_quiet()
    print(f"queue before the run: {text}; {free_cpus()} idle CPUs in debug")
    if not quiet:
        print("(the cluster is not idle: allocation may wait, and the figures are noisier)")
    results: dict[str, list[Spawn]] = {}

    def body(cleanup: Cleanup) -> None:
        for kind, port in hubs_to_measure(args):
            results[kind] = bench_kind(kind, port, prefix, args)

    if not run_cleanly(prefix, body):
        return 130
    print("\nspawn overhead, seconds, p50 / p95 (overhead = alloc->ready - server start-up)\n")
    print_table(
        [
            "hub",
            "spawns",
            "alloc->ready",
            "server start-up",
            "(of it before 1st line)",
            "overhead",
            "= launch (alloc->exec)",
            "+ notice (running->ready)",
        ],
        [summary(kind, spawns) for kind, spawns in results.items()],
    )
    if len(results) == 2:
        hd, bs = (results[k] for k in KINDS)
        ratio = percentile([s.overhead for s in bs], 50) / percentile([s.overhead for s in hd], 50)
        print(f"batchspawner/hubdash overhead p50: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
