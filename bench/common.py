"""What the benchmarks share: slurmctld's RPC counters (sdiag), jobs held in the queue and their
clean-up, sshd's login count, processes and their clean-up, and small statistics. Measures
nothing. The hubs they start are the test harness's (harness/, through bench/hubs.py).

Every helper here runs as root on the hub machine with the test cluster up.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOGIN_HOST = "10.213.0.2"
KEYS = Path("/etc/hubdash-testcluster/keys")
KNOWN_HOSTS = "/etc/hubdash-testcluster/known_hosts"
USERS = ("alice", "bob", "carol", "dave", "erin")
CLUSTER_LOGS = Path("/var/log/hubdash-testcluster")
SSHD_LOG = CLUSTER_LOGS / "sshd.log"
SLURMCTLD_LOG = CLUSTER_LOGS / "slurmctld.log"
VENV = Path(os.environ.get("HUBDASH_VENV", "/opt/hubdash/venv"))

# ---------------------------------------------------------------------------- sdiag ---

RPC_LINE = re.compile(r"^\s+(\S+)\s+\(\s*\d+\)\s+count:(\d+)\s+ave_time:\d+\s+total_time:(\d+)")


@dataclass
class Sample:
    """sdiag's RPC counters: (count, total µs) by message type and by user, and when."""

    by_type: dict[str, tuple[int, int]]
    by_user: dict[str, tuple[int, int]]
    at: float


def sdiag() -> Sample:
    out = subprocess.run(["sdiag"], capture_output=True, text=True, check=True, timeout=30).stdout
    by_type: dict[str, tuple[int, int]] = {}
    by_user: dict[str, tuple[int, int]] = {}
    table = None
    for line in out.splitlines():
        if "statistics by message type" in line:
            table = by_type
        elif "statistics by user" in line:
            table = by_user
        elif line and not line[0].isspace():
            table = None
        elif table is not None and (match := RPC_LINE.match(line)):
            table[match.group(1)] = (int(match.group(2)), int(match.group(3)))
    return Sample(by_type, by_user, time.monotonic())


def delta(before: dict, after: dict) -> dict[str, tuple[int, int]]:
    """(count, total µs) that changed between two sdiag tables."""
    changed = {}
    for key, (count, total) in after.items():
        count0, total0 = before.get(key, (0, 0))
        if count != count0:
            changed[key] = (count - count0, total - total0)
    return changed


@dataclass
class Load:
    """What some users cost slurmctld in one window, per minute."""

    rpcs_per_min: float  # their RPCs (exact: sdiag counts by user)
    ms_per_min: float  # slurmctld time spent on them
    by_type_ms_per_min: dict[str, float]  # the whole slurmctld, by RPC type (others included)
    others: int  # RPCs of other users meanwhile: noise in by_type


def load_between(before: Sample, after: Sample, users: Sequence[str]) -> Load:
    minutes = (after.at - before.at) / 60.0
    by_user = delta(before.by_user, after.by_user)
    count = sum(by_user.get(user, (0, 0))[0] for user in users)
    total = sum(by_user.get(user, (0, 0))[1] for user in users)
    # sdiag's own REQUEST_STATS_INFO comes from root: not the measured hub's.
    others = sum(c for name, (c, _) in by_user.items() if name not in (*users, "root"))
    types = {
        name: total_us / 1000.0 / minutes
        for name, (_, total_us) in delta(before.by_type, after.by_type).items()
        if name != "REQUEST_STATS_INFO"
    }
    return Load(count / minutes, total / 1000.0 / minutes, types, others)


def top_types(types: dict[str, float], n: int = 3) -> str:
    top = sorted(types.items(), key=lambda item: -item[1])[:n]
    return ", ".join(f"{name.removeprefix('REQUEST_')} {ms:.1f}" for name, ms in top) or "-"


# ----------------------------------------------------------------------------- jobs ---

# Submits `$1` held jobs named `$2` into partition `$3`; ids on stdout. Values are arguments.
SUBMIT_LOOP = (
    'n=0; while [ "$n" -lt "$1" ]; do '
    'sbatch --parsable --hold -J "$2" -p "$3" -t 5 -o /dev/null --wrap "sleep 60" || exit 1; '
    "n=$((n+1)); done"
)


def ssh_argv(user: str, *extra: str, host: str = LOGIN_HOST) -> list[str]:
    """OpenSSH to a login node (the Slurm cluster's by default) as `user`, with the test
    clusters' key and known_hosts."""
    return [
        "ssh",
        "-i",
        str(KEYS / user),
        "-o",
        f"UserKnownHostsFile={KNOWN_HOSTS}",
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        *extra,
        f"{user}@{host}",
    ]


def hold_jobs(user: str, count: int, name: str, partition: str = "hold") -> list[str]:
    """Submit `count` held jobs of `user` named `name` (as the user, over SSH); their ids."""
    if count <= 0:
        return []
    remote = shlex.join(["sh", "-c", SUBMIT_LOOP, "sh", str(count), name, partition])
    argv = ssh_argv(user) + [remote]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    ids = [line.split(";")[0] for line in out.stdout.split()]
    if out.returncode != 0 or len(ids) != count:
        raise RuntimeError(f"holding jobs as {user} failed: {out.stderr.strip()[-300:]}")
    return ids


def live_jobs(name_prefix: str) -> list[tuple[str, str, str]]:
    """(id, name, state) of every job not yet ended whose name is `name_prefix` or starts with
    `name_prefix-` (so hdbench123 never takes hdbench1234's jobs; a job COMPLETING has been
    cancelled or has ended already: not listed)."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "PD,R,S,CF", "-o", "%i|%j|%T"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    rows = [tuple(line.split("|", 2)) for line in out.splitlines() if line.count("|") == 2]
    return [
        row  # type: ignore[misc]
        for row in rows
        if row[1] == name_prefix or row[1].startswith(f"{name_prefix}-")
    ]


def cancel_jobs(name_prefix: str) -> str:
    """As root, directly (works even when SSH does not): cancel every live job of
    `name_prefix` (as live_jobs matches it). Returns what was cancelled, as
    "<count> <name>, ..." ("none"): jobs a hub left behind show up here by their names."""
    jobs = live_jobs(name_prefix)
    ids = [job_id for job_id, _, _ in jobs]
    for start in range(0, len(ids), 200):
        subprocess.run(["scancel", *ids[start : start + 200]], timeout=120, check=False)
    counts = Counter(name for _, name, _ in jobs)
    return ", ".join(f"{n} {name}" for name, n in sorted(counts.items())) or "none"


def queue_is_quiet(ignore_prefix: str = "") -> tuple[bool, str]:
    """Whether nobody else has jobs running or many pending; a line saying what is there."""
    out = subprocess.run(
        ["squeue", "-h", "-o", "%T|%j|%u"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    rows = [line.split("|") for line in out.splitlines() if line.count("|") == 2]
    rows = [row for row in rows if not (ignore_prefix and row[1].startswith(ignore_prefix))]
    running = sum(1 for state, _, _ in rows if state == "RUNNING")
    pending = sum(1 for state, _, _ in rows if state == "PENDING")
    users = sorted({user for _, _, user in rows})
    text = f"{running} running and {pending} pending job(s) of others ({', '.join(users) or '-'})"
    return (running == 0 and pending < 10), text


def free_cpus(partition: str = "debug") -> int:
    out = subprocess.run(
        ["sinfo", "-h", "-p", partition, "-o", "%C"], capture_output=True, text=True, timeout=30
    ).stdout.strip()
    try:
        return int(out.split("/")[1])  # allocated/idle/other/total
    except (IndexError, ValueError):
        return 0


def test_users(count: int) -> list[str]:
    """The first `count` test users: the five, then student001, student002 ... (made by
    `scripts/testcluster up --users N`, N test users in all).

    >>> test_users(7)
    ['alice', 'bob', 'carol', 'dave', 'erin', 'student001', 'student002']
    """
    students = [f"student{n:03d}" for n in range(1, count - len(USERS) + 1)]
    return [*USERS[:count], *students]


# ------------------------------------------------------------------------- ssh logins ---


class LoginCounter:
    """Counts sshd's accepted logins (its log, LogLevel INFO) from `mark()` on."""

    PATTERN = re.compile(r"Accepted publickey for (\S+)")

    def __init__(self, path: Path = SSHD_LOG) -> None:
        self.path = path
        self.offset = 0

    def mark(self) -> None:
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def since_mark(self, users: Sequence[str]) -> int:
        with open(self.path, "rb") as log:
            log.seek(self.offset)
            text = log.read().decode("utf-8", "replace")
        return sum(1 for m in self.PATTERN.finditer(text) if m.group(1) in users)


# ------------------------------------------------------------------------- processes ---


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its descendants: each thread's time on a CPU (schedstat, in
    ns: /proc's utime and stime come in 10 ms ticks, too coarse for a daemon's minute), plus
    what their ended children used (cutime + cstime, in ticks), so a child that ends keeps
    counting."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    reaped: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # After the command name in parentheses (which may hold spaces): state, ppid, ...
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended meanwhile
        parents[int(stat.parent.name)] = int(fields[1])
        reaped[int(stat.parent.name)] = int(fields[13]) + int(fields[14])
    if pid not in parents:
        raise ProcessLookupError(pid)
    total, todo = 0.0, [pid]
    while todo:
        member = todo.pop()
        todo += [child for child, parent in parents.items() if parent == member]
        total += reaped[member] / tick
        for task in Path(f"/proc/{member}/task").glob("*/schedstat"):
            with contextlib.suppress(OSError):
                total += int(task.read_text().split()[0]) / 1e9
    return total


def own_cpu_seconds(pid: int) -> float:
    """CPU time of one process: its threads' time on a CPU (schedstat, ns) plus what its
    ended children used (cutime + cstime: e.g. the ssh commands a hub runs and waits for),
    but not its children still running (a proxy, a service)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError):
            total += int(task.read_text().split()[0]) / 1e9
    return total


def peak_rss_mb(pid: int) -> float:
    """The most resident memory the process has had (VmHWM), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


@contextlib.contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt like Ctrl-C, so every `finally` cleans up; during the
    clean-up after the block a second signal is ignored."""

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def ignore_interrupts() -> None:
    """Call at the start of a clean-up: a second Ctrl-C must not cut it short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


Cleanup = list[Callable[[], object]]


def run_cleanly(
    prefix: str,
    body: Callable[[Cleanup], object],
    sweep: Callable[[str], object] | None = None,
) -> bool:
    """Run `body(cleanup)` so that nothing it starts outlives it. Ctrl-C and SIGTERM stop it;
    then the clean-up steps it appended run (newest first, each even when another failed)
    and every job whose name starts with `prefix` is cancelled: by `sweep(prefix)`, by
    default on the Slurm cluster. False when interrupted."""
    cleanup: Cleanup = []
    with interrupt_on_sigterm():
        try:
            body(cleanup)
            return True
        except KeyboardInterrupt:
            print("\ninterrupted", file=sys.stderr)
            return False
        finally:
            ignore_interrupts()
            for step in reversed(cleanup):
                try:
                    step()
                except Exception as exc:  # noqa: BLE001 - clean up the rest all the same
                    print(f"a clean-up step failed: {exc}", file=sys.stderr)
            left = (sweep or cancel_jobs)(prefix)
            print(f"left in the queue, now cancelled: {left}", flush=True)


def serve_directory(node: str, user: str, directory: str, port: int, cleanup: Cleanup) -> None:
    """Python's http.server on a compute node, as `user`, serving `directory` on `port`:
    a server that costs next to nothing, for measuring what lies in front of it. Stopped by
    `cleanup`."""
    server = subprocess.Popen(
        [
            "nsenter",
            f"--net=/var/run/netns/{node}",
            "setpriv",
            f"--reuid={user}",
            f"--regid={user}",
            "--init-groups",
            "/usr/bin/python3",
            "-m",
            "http.server",
            str(port),
            "--directory",
            directory,
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    cleanup.append(lambda: (server.terminate(), server.wait(10)))
    time.sleep(1.0)


# ------------------------------------------------------------------------ statistics ---


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), by linear interpolation; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain text table, columns as wide as their widest cell."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print(" | ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
        if n == 0:
            print("-+-".join("-" * width for width in widths))
    print(flush=True)


def note_other_users(noisy: list[str]) -> None:
    """Say which measured windows (`noisy`, described) had other users' slurmctld RPCs: the
    top RPC types count them, the bench user's own figures do not."""
    if noisy:
        print(
            "other users made RPCs during "
            + ", ".join(noisy)
            + ": the top RPC types include them; the per-user figures do not."
        )
