"""A class starting at once: N distinct users (100 by default) log in to the hub (PAM, its login
form) and each asks for a server through the REST API, all within a few seconds; hubdash against
batchspawner, one after the other in one run, both through a login node whose sshd has OpenSSH's
default limits (MaxStartups 10:30:100, MaxSessions 10).

Run as root on the hub machine, with the test cluster up with enough users and room
(`scripts/testcluster up --users 100`: the five test users and student001 ... student095; the
Slurm nodes take 128 one-CPU jobs at once, and so do the OpenPBS nodes and Grid Engine's all.q
with --users):

    /opt/hubdash/venv/bin/python -m bench.class_burst [--scheduler slurm|pbs|sge]
        [--users 100] [--window 5] [--kinds hubdash,batchspawner] [--port 13100]
        [--sshd-port 15022] [--hub-first]
        [--hubdash-config 'c.JobSpawner.scheduler_precheck = False' ...]

--scheduler picks the test cluster (Slurm by default): its login node, the hub's
HUBDASH_SCHEDULER, and the servers' queue, the cluster's default (Slurm `debug`, OpenPBS
`workq`, Grid Engine `all.q`); batchspawner's hub runs on that login node with its PBSSpawner or
GridengineSpawner (bench/batchspawner_config.py).

With --hub-first each hub's processes (and what they start) get the CPUs first, as on a hub
host of their own; without it they share the 2 cores with the test cluster's job starts and
SSH sessions at one equal share per session (Linux's autogroup scheduling).

The server is bench/tinyserver.py (the same for both hubs), so that only the spawners' cost
counts; hubdash's hub runs without the demo's software environments (no Lmod in the job), as
batchspawner's. The bench starts its own sshd on the cluster's login node (port --sshd-port,
the test bed's host keys, LogLevel VERBOSE, no MaxStartups or MaxSessions line: OpenSSH's
defaults) and points both hubs there; the test bed's own sshd, tuned for the test suite, is not
used.

Per hub, for the burst (from the first login to the last server ready or failed):
    request -> ready   from the user's POST /hub/api/users/<name>/server to the progress
                       stream's `ready` (p50 / p95 / max), and each failure with its message
    logins             the hub's login form (PAM) per user, p50 / p95
    SSH                sshd's accepted logins (all, and the most in one second), the most
                       connections not yet authenticated at once (what MaxStartups counts),
                       connections it dropped past MaxStartups, sessions it refused (MaxSessions)
    scheduler          Slurm: the users' RPCs and slurmctld's time on them (sdiag by user);
                       OpenPBS, Grid Engine: the hub's scheduler commands (its metrics) and
                       the server daemons' CPU time (everyone's; pbs_server, or sge_qmaster, in
                       the table, the others on the line above it), as
                       scheduler_load_clusters.py measures them
    hub                longest event-loop stall (JupyterHub logs each above 0.1 s; overall, and
                       once every user has logged in and asked: the spawns alone), RSS at its
                       peak, CPU time (the hub process and the commands it ran; hubdash's forward
                       keeper on its own line)
then every server is stopped through the API and the queue must hold none of the bench's jobs.
Every job, hub, keeper and the bench's sshd are stopped at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import requests

from bench.common import (
    KEYS,
    LOGIN_HOST,
    Cleanup,
    cancel_jobs,
    cpu_seconds,
    free_cpus,
    live_jobs,
    load_between,
    own_cpu_seconds,
    peak_rss_mb,
    percentile,
    print_table,
    queue_is_quiet,
    run_cleanly,
    sdiag,
    test_users,
    top_types,
)
from bench.hubs import BenchHub, add_hub_arguments, hubs_to_measure, start_hub
from bench.scheduler_load_clusters import (
    CLUSTERS,
    TestCluster,
    cancel_everyones_jobs,
    daemon_pids,
    hub_commands,
    jobs_of_prefix,
    on_login,
    top,
)
from bench.scheduler_load_clusters import free_cpus as cluster_free_cpus

TESTBED = Path("/etc/hubdash-testcluster")
# The test bed's lines the bench's sshd leaves out, so that OpenSSH's defaults apply.
TUNED = re.compile(r"^\s*(MaxStartups|MaxSessions|ListenAddress|PidFile|LogLevel)\b", re.I)
# What sshd (LogLevel VERBOSE) says about logins and refusals.
ACCEPTED = re.compile(r"^Accepted publickey for (\S+) from (\S+) port (\d+) ")
CONNECTED = re.compile(r"^Connection from (\S+) port (\d+) on ")
CLOSED = re.compile(r"^(?:Connection (?:closed|reset)|Disconnected) .*?(\S+) port (\d+)")
# JupyterHub's log line of a stall, with its time.
STALL_AT = re.compile(
    r"^\[W (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) .*Event loop was unresponsive for at "
    r"least ([\d.]+)s",
    re.M,
)
DROPPED = re.compile(r"past MaxStartups")
NO_SESSION = re.compile(r"no more sessions")
STOP_TIMEOUT = 300  # seconds every server may take to stop, all at once


# ----------------------------------------------------------------------- the cluster ---


@dataclass(frozen=True)
class LoginNode:
    """A test cluster's login node, where the bench runs its own sshd."""

    address: str
    name: str  # its network namespace and hostname
    sshd_dir: Path  # the test bed's sshd_config and host keys of this login node

    @property
    def host_keys(self) -> list[Path]:
        return sorted(self.sshd_dir.glob("ssh_host_*_key.pub"))


@dataclass
class SchedulerLoad:
    """What the burst cost the scheduler, in the figures each one gives."""

    count: int | None  # Slurm: the users' RPCs (sdiag); OpenPBS, Grid Engine: the hub's
    # scheduler commands (its metrics; None for batchspawner, which has none)
    ms: float  # Slurm: slurmctld's time on those RPCs; others: the server daemon's CPU time
    detail: str  # the report's line about it


@dataclass(frozen=True)
class Target:
    """The test cluster a burst runs on, and how the bench asks it what it needs: Slurm
    through common.py's helpers (sdiag, squeue, scancel as root), OpenPBS and Grid Engine
    through scheduler_load_clusters.py's (commands as the users over the test bed's sshd,
    the server daemons' CPU time from /proc)."""

    scheduler: str
    queue: str  # the cluster's default queue, where the servers run
    login: LoginNode
    cluster: TestCluster | None  # None for Slurm

    @classmethod
    def of(cls, scheduler: str) -> Target:
        if scheduler == "slurm":
            return cls("slurm", "debug", LoginNode(LOGIN_HOST, "login", TESTBED), None)
        cluster = CLUSTERS[scheduler]
        login = LoginNode(cluster.login_host, cluster.login_node, TESTBED / scheduler)
        return cls(scheduler, cluster.default_queue, login, cluster)

    @property
    def load_headers(self) -> tuple[str, str]:
        if self.cluster is None:
            return "slurmctld RPCs", "slurmctld ms"
        return "hub commands", f"{self.cluster.main_daemon} CPU ms"

    def before(self) -> tuple[str, int]:
        """What the queue holds before the run, and the CPUs idle for the servers."""
        if self.cluster is None:
            return queue_is_quiet()[1], free_cpus(self.queue)
        jobs = self.cluster.parse_listing(
            on_login(self.cluster, "alice", self.cluster.list_command)
        )
        owners = sorted({owner for *_, owner in jobs})
        text = f"{len(jobs)} live job(s) ({', '.join(owners) or '-'})"
        return text, cluster_free_cpus(self.cluster, self.queue)

    def measure_load(self, hub: BenchHub, users: list[str]) -> Callable[[], SchedulerLoad]:
        """Start measuring; the function returned ends it and gives the figures."""
        if self.cluster is None:
            return _slurm_load(users)
        return _daemon_load(self.cluster, hub)

    def live_jobs(self, prefix: str) -> list[str]:
        """The run's jobs not yet ended, as "id name state"."""
        if self.cluster is None:
            return [" ".join(job) for job in live_jobs(prefix)]
        return [" ".join(job[:3]) for job in jobs_of_prefix(self.cluster, prefix)]

    def sweep(self, prefix: str) -> str:
        """Cancel whatever the run left in the queue; what that was."""
        if self.cluster is None:
            return cancel_jobs(prefix)
        # As common.cancel_jobs says it: "<count> <name>, ..." or "none".
        counts = Counter(name for _, name, _, _ in cancel_everyones_jobs(self.cluster, prefix))
        return ", ".join(f"{n} {name}" for name, n in sorted(counts.items())) or "none"


def _slurm_load(users: list[str]) -> Callable[[], SchedulerLoad]:
    before = sdiag()

    def finish() -> SchedulerLoad:
        after = sdiag()
        load = load_between(before, after, users)
        minutes = (after.at - before.at) / 60.0
        types = top_types({k: v * minutes for k, v in load.by_type_ms_per_min.items()})
        return SchedulerLoad(
            round(load.rpcs_per_min * minutes),
            load.ms_per_min * minutes,
            f"top RPC types (ms, all users): {types}",
        )

    return finish


def _daemon_load(cluster: TestCluster, hub: BenchHub) -> Callable[[], SchedulerLoad]:
    # The daemons' CPU time is everyone's (nobody else used these clusters during the runs);
    # the hub's commands come from its metrics, which only hubdash has.
    pids = daemon_pids(cluster)
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    commands0 = hub_commands(hub) if hub.kind == "hubdash" else None

    def finish() -> SchedulerLoad:
        ms = {name: (cpu_seconds(pid) - cpu0[name]) * 1000 for name, pid in pids.items()}
        detail = f"daemons' CPU ms: {top(ms, len(ms))}"
        if commands0 is None:
            return SchedulerLoad(None, ms[cluster.main_daemon], detail)
        by_command = {
            command: count - commands0.get(command, 0.0)
            for command, count in hub_commands(hub).items()
            if count != commands0.get(command, 0.0)
        }
        detail += f"; the hub's commands: {top(by_command, len(by_command))}"
        return SchedulerLoad(round(sum(by_command.values())), ms[cluster.main_daemon], detail)

    return finish


# ----------------------------------------------------------------------- the sshd ---


class BenchSSHD:
    """An sshd on a login node with OpenSSH's default limits; its log followed live
    (sshd's own log lines carry no time: each is stamped as it is read)."""

    def __init__(self, login: LoginNode, port: int, folder: Path) -> None:
        self.login, self.port, self.folder = login, port, folder
        self.config = folder / "sshd_config"
        self.log_path = folder / "sshd.log"
        self.known_hosts = folder / "known_hosts"
        self.process: subprocess.Popen | None = None
        self.lines: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self, cleanup: Cleanup) -> None:
        testbed_config = self.login.sshd_dir / "sshd_config"
        kept = [line for line in testbed_config.read_text().splitlines() if not TUNED.match(line)]
        address = self.login.address
        self.config.write_text(
            "\n".join(
                [
                    *kept,
                    "# bench/class_burst.py: OpenSSH's defaults for MaxStartups and MaxSessions",
                    f"ListenAddress {address}:{self.port}",
                    f"PidFile {self.folder}/sshd.pid",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )
        effective = subprocess.run(
            ["/usr/sbin/sshd", "-T", "-f", str(self.config)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        limits = {
            key: value
            for key, value in (line.split(" ", 1) for line in effective.splitlines() if " " in line)
            if key in ("maxstartups", "maxsessions")
        }
        print(f"bench sshd on {self.login.name} {address}:{self.port}: {limits}", flush=True)
        self.known_hosts.write_text(
            "".join(
                f"[{address}]:{self.port} {' '.join(key.read_text().split()[:2])}\n"
                for key in self.login.host_keys
            )
        )
        os.chmod(self.folder, 0o755)
        self.log_path.touch()
        self.process = subprocess.Popen(
            [
                "nsenter",
                f"--net=/var/run/netns/{self.login.name}",
                "unshare",
                "--uts",
                "sh",
                "-c",
                'hostname "$0"; exec "$@"',
                self.login.name,
                "/usr/sbin/sshd",
                "-D",
                "-f",
                str(self.config),
                "-E",
                str(self.log_path),
            ],  # fmt: skip
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        cleanup.append(self.stop)
        deadline = time.monotonic() + 10
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the bench's sshd did not start; see {self.log_path}")
            time.sleep(0.1)
        self._reader = threading.Thread(target=self._follow, daemon=True)
        self._reader.start()

    def _answers(self) -> bool:
        import socket

        try:
            with socket.create_connection((self.login.address, self.port), timeout=1) as sock:
                return sock.recv(4).startswith(b"SSH-")
        except OSError:
            return False

    def _follow(self) -> None:
        with open(self.log_path, errors="replace") as log:
            while not self._stop.is_set():
                chunk = log.read()
                now = time.time()
                self.lines.extend((now, line) for line in chunk.splitlines())
                time.sleep(0.05)

    def stop(self) -> None:
        """The sshd and what it still runs (sessions of connections not yet closed)."""
        self._stop.set()
        if self.process is None or self.process.poll() is not None:
            return
        sessions = _children(self.process.pid)
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        for pid in sessions:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def between(self, start: float, end: float) -> list[tuple[float, str]]:
        return [(t, line) for t, line in self.lines if start <= t <= end]


def _children(pid: int) -> list[int]:
    """Every process below `pid` (sshd's per-connection processes)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        kids = [child for child, p in parents.items() if p == parent]
        found += kids
        todo += kids
    return found


# ----------------------------------------------------------------------- the burst ---


@dataclass
class Start:
    """One user's way from the login form to a server that answers."""

    user: str
    login_s: float | None = None
    requested: float | None = None  # time.time() of the server request
    ready: float | None = None
    retries: int = 0  # 429 answers (the hub's concurrent_spawn_limit), retried after a while
    error: str = ""

    @property
    def seconds(self) -> float | None:
        if self.requested is None or self.ready is None:
            return None
        return self.ready - self.requested


def _hub_cookie(session: requests.Session, name: str) -> str:
    """A cookie of the hub's own path (the same name may also exist for other paths)."""
    values = [c.value for c in session.cookies if c.name == name and c.path.startswith("/hub")]
    return values[-1] if values else ""


def _post_as_a_browser(session: requests.Session, url: str, **kwargs: object) -> requests.Response:
    """POST, sent once more on a new connection when the kept-alive one it went out on was
    closed with no answer at all, as browsers do. The proxy closes a connection idle for 5 s
    (node's keep-alive timeout): a client thread of this bench that waited that long for a
    CPU between two requests sent its next one onto a connection being closed."""
    try:
        return session.post(url, **kwargs)
    except requests.ConnectionError as exc:
        if "RemoteDisconnected" not in repr(exc):
            raise
        return session.post(url, **kwargs)


def one_start(hub: BenchHub, start: Start, options: dict, at: float, timeout: float) -> None:
    """At `at`: log in as the user through the hub's login form, ask for the user's server
    through the REST API (with the session's cookie, as the browser does), read its
    progress to the end."""
    time.sleep(max(0.0, at - time.time()))
    try:
        session = requests.Session()
        began = time.time()
        session.get(f"{hub.url}/hub/login", timeout=120).raise_for_status()
        answer = _post_as_a_browser(
            session,
            f"{hub.url}/hub/login",
            data={
                "username": start.user,
                "password": start.user,
                "_xsrf": _hub_cookie(session, "_xsrf"),
            },
            allow_redirects=False,
            timeout=120,
        )
        if answer.status_code != 302:
            raise RuntimeError(f"login refused: {answer.status_code} {answer.text[:200]}")
        start.login_s = time.time() - began
        url = f"{hub.url}/hub/api/users/{start.user}/server"
        while True:
            start.requested = time.time()
            answer = _post_as_a_browser(
                session,
                url,
                json={"user_options": options},
                headers={"X-XSRFToken": _hub_cookie(session, "_xsrf")},
                timeout=120,
            )
            if answer.status_code != 429:
                break
            start.retries += 1
            time.sleep(float(answer.headers.get("Retry-After", "5")))
        if answer.status_code not in (201, 202):
            raise RuntimeError(f"server request refused: {answer.status_code} {answer.text[:300]}")
        start.ready = hub.ready_time(start.user, "", timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - every failure is a figure, with its message
        start.error = str(exc)[:500] or type(exc).__name__


@dataclass
class Result:
    kind: str
    starts: list[Start]
    window_s: float  # first login to the last server ready or failed
    logins: int  # sshd's accepted logins in the window
    logins_peak: int  # ... the most in one second
    dropped: int  # connections sshd dropped past MaxStartups
    no_session: int  # sessions sshd refused past MaxSessions
    load: SchedulerLoad
    stalls: list[float]  # the hub's logged event-loop stalls (>= 0.1 s), seconds
    stalls_after_logins: list[float]  # ... of them once every user had logged in
    startups_peak: int  # the most connections sshd had not yet authenticated at once
    hub_cpu_s: float
    hub_rss_peak_mb: float
    keeper_cpu_s: float | None
    keeper_rss_mb: float | None
    machine_busy: float  # % of all CPUs busy during the window (everyone's)
    stop_s: float = 0.0
    not_stopped: int = 0  # servers the hub still had when the bench gave up waiting
    left_in_queue: list[str] = field(default_factory=list)

    @property
    def times(self) -> list[float]:
        return [s.seconds for s in self.starts if s.seconds is not None]

    @property
    def failures(self) -> list[Start]:
        return [s for s in self.starts if s.error]


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


HUB_CGROUP = Path("/sys/fs/cgroup/cpu/hdbench-hub")


def hub_cpus_first(pid: int) -> None:
    """Give the hub, and every process it has started or will start (proxy, dashboard service,
    forward keeper), the machine's CPUs before anything else, as on a hub host of its own:
    a cgroup of the CPU controller with the kernel's highest weight. Without it, Linux's
    autogroup scheduling gives each session an equal share, and at the burst's peak the hub's
    session competes with a hundred job sessions and two hundred SSH sessions of the test
    cluster, which a site runs on other hosts."""
    HUB_CGROUP.mkdir(exist_ok=True)
    (HUB_CGROUP / "cpu.shares").write_text("262144")
    for each in [pid, *_children(pid)]:
        with contextlib.suppress(OSError):
            (HUB_CGROUP / "cgroup.procs").write_text(str(each))


def keeper_of(hub: BenchHub) -> int | None:
    """The pid of the forward keeper this hub started, if any."""
    for pid in [hub.pid, *_children(hub.pid)]:
        with contextlib.suppress(OSError):
            if b"hubdash.keeper" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
    return None


def burst(
    hub: BenchHub, target: Target, users: list[str], sshd: BenchSSHD, args: argparse.Namespace
) -> Result:
    options = {"queue": target.queue, "walltime": "30"} if hub.kind == "hubdash" else {}
    starts = [Start(user) for user in users]
    log_offset = hub.log_path.stat().st_size
    scheduler_load = target.measure_load(hub, users)
    cpu0, jiffies0 = own_cpu_seconds(hub.pid), machine_jiffies()
    keeper0 = keeper_of(hub)
    keeper_cpu0 = own_cpu_seconds(keeper0) if keeper0 else 0.0
    t0 = time.time() + 1.0
    spacing = args.window / len(users)
    threads = [
        threading.Thread(
            target=one_start,
            args=(hub, start, options, t0 + n * spacing, args.ready_timeout),
            daemon=True,
        )
        for n, start in enumerate(starts)
    ]
    for thread in threads:
        thread.start()
    done_printed = 0
    while any(thread.is_alive() for thread in threads):
        time.sleep(1.0)
        done = sum(1 for s in starts if s.ready or s.error)
        if done >= done_printed + 10:
            done_printed = done - done % 10
            print(f"  {hub.kind}: {done} of {len(users)} ready or failed", flush=True)
    end = time.time()
    load = scheduler_load()
    jiffies1 = machine_jiffies()
    keeper = keeper_of(hub)
    lines = sshd.between(t0 - 1.0, end)
    accepted = [t for t, line in lines if ACCEPTED.match(line)]
    per_second = Counter(int(t) for t in accepted)
    with open(hub.log_path, errors="replace") as log:
        log.seek(log_offset)
        stalls = [
            (datetime.fromisoformat(at).timestamp(), float(length))
            for at, length in STALL_AT.findall(log.read())
            if datetime.fromisoformat(at).timestamp() <= end
        ]
    logged_in = max((s.requested for s in starts if s.requested is not None), default=end)
    return Result(
        kind=hub.kind,
        starts=starts,
        window_s=end - t0,
        logins=len(accepted),
        logins_peak=max(per_second.values(), default=0),
        dropped=sum(1 for _, line in lines if DROPPED.search(line)),
        no_session=sum(1 for _, line in lines if NO_SESSION.search(line)),
        load=load,
        stalls=[length for _, length in stalls],
        stalls_after_logins=[length for at, length in stalls if at - length > logged_in],
        startups_peak=startups_peak(lines),
        hub_cpu_s=own_cpu_seconds(hub.pid) - cpu0,
        hub_rss_peak_mb=peak_rss_mb(hub.pid),
        keeper_cpu_s=(own_cpu_seconds(keeper) - (keeper_cpu0 if keeper == keeper0 else 0.0))
        if keeper
        else None,
        keeper_rss_mb=peak_rss_mb(keeper) if keeper else None,
        machine_busy=100.0 * (jiffies1[0] - jiffies0[0]) / max(1, jiffies1[1] - jiffies0[1]),
    )


def startups_peak(lines: list[tuple[float, str]]) -> int:
    """The most connections sshd had accepted and not yet authenticated (or closed) at once,
    from its log, in its order: what MaxStartups counts."""
    events = []
    for at, line in lines:
        if match := CONNECTED.match(line):
            events.append((at, 1, match.groups()))
        elif (match := ACCEPTED.match(line)) or (match := CLOSED.match(line)):
            events.append((at, -1, match.groups()[-2:]))
    open_now: set[tuple[str, ...]] = set()
    peak = 0
    for _, change, key in events:  # in the log's order
        if change > 0:
            open_now.add(key)
            peak = max(peak, len(open_now))
        else:
            open_now.discard(key)
    return peak


def stop_everything(hub: BenchHub, target: Target, result: Result, prefix: str) -> None:
    """Stop every server through the API at once, then look for the bench's jobs."""
    began = time.time()
    users = [start.user for start in result.starts]
    threads = [threading.Thread(target=hub.stop, args=(user,), daemon=True) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    try:
        hub.wait_for(lambda: not hub.servers(), STOP_TIMEOUT, step=1)
    except TimeoutError:  # a hub that cannot stop its servers is a figure, not the bench's end
        result.not_stopped = len(hub.servers())
    result.stop_s = time.time() - began
    # A cancelled job may show for a moment before the scheduler has ended it.
    deadline = time.monotonic() + 30
    while (left := target.live_jobs(prefix)) and time.monotonic() < deadline:
        time.sleep(1)
    result.left_in_queue = left


def bench_kind(
    kind: str,
    port: int,
    prefix: str,
    target: Target,
    users: list[str],
    sshd: BenchSSHD,
    args: argparse.Namespace,
) -> Result:
    extra = ""
    if kind == "hubdash":
        # Only the spawner's cost: no Lmod environment around the tiny server.
        extra = "\n".join(["c.JobSpawner.environments = {}", *args.hubdash_config, ""])
    hub = start_hub(
        kind,
        port,
        prefix,
        partition=target.queue,
        tiny=True,
        extra_config=extra,
        scheduler=target.scheduler,
        users=users,
        env_extra={
            "HUBDASH_BENCH_LOGIN_PORT": str(sshd.port),
            "HUBDASH_BENCH_KNOWN_HOSTS": str(sshd.known_hosts),
        },
    )
    if args.hub_first:
        hub_cpus_first(hub.pid)
    try:
        print(f"  {kind}: {len(users)} users log in and ask for a server within {args.window:g} s")
        result = burst(hub, target, users, sshd, args)
        stop_everything(hub, target, result, prefix)
        return result
    finally:
        try:
            # The servers were asked to stop already (stop_everything): a last, short try.
            hub.stop_all(timeout=60)
        finally:
            hub.terminate()
            if args.hub_first:
                with contextlib.suppress(OSError):  # empty once the hub's processes ended
                    HUB_CGROUP.rmdir()


# ----------------------------------------------------------------------- reporting ---


def row(result: Result) -> list[str]:
    times = result.times
    logins = [s.login_s for s in result.starts if s.login_s is not None]

    def p(values: list[float], q: float) -> str:
        return f"{percentile(values, q):.1f}" if values else "-"

    keeper = (
        f"{result.keeper_cpu_s:.1f} s / {result.keeper_rss_mb:.0f} MB"
        if result.keeper_cpu_s is not None
        else "-"
    )
    return [
        result.kind,
        f"{len(times)}/{len(result.starts)}",
        str(len(result.failures)),
        f"{p(times, 50)} / {p(times, 95)} / {max(times):.1f}" if times else "-",
        f"{p(logins, 50)} / {p(logins, 95)}",
        f"{result.logins} ({result.logins_peak}/s peak)",
        str(result.startups_peak),
        str(result.dropped),
        str(result.no_session),
        "-" if result.load.count is None else str(result.load.count),
        f"{result.load.ms:.0f}",
        f"{max(result.stalls):.2f}" if result.stalls else "< 0.1",
        f"{max(result.stalls_after_logins):.2f}" if result.stalls_after_logins else "< 0.1",
        str(len(result.stalls)),
        f"{result.hub_cpu_s:.1f}",
        f"{result.hub_rss_peak_mb:.0f}",
        keeper,
        f"{result.machine_busy:.0f}",
        f"{result.stop_s:.0f}"
        + (f" ({result.not_stopped} not stopped)" if result.not_stopped else ""),
        "yes" if not result.left_in_queue else f"NO: {len(result.left_in_queue)} left",
    ]


HEADERS = [
    "hub",
    "ready",
    "failed",
    "request->ready s p50/p95/max",
    "login s p50/p95",
    "SSH logins",
    "unauthenticated peak",
    "dropped (MaxStartups)",
    "refused sessions",
    "<scheduler count>",  # Target.load_headers
    "<scheduler ms>",
    "longest stall s",
    "after logins s",
    "stalls >= 0.1 s",
    "hub CPU s",
    "hub RSS peak MB",
    "keeper CPU / RSS",
    "machine busy %",
    "stop all s",
    "queue empty",
]


def report(results: dict[str, Result], target: Target, args: argparse.Namespace) -> None:
    print(
        f"\na class of {args.users} starting at once on {target.scheduler} (log in and ask "
        f"within {args.window:g} s), login node sshd at OpenSSH's defaults; "
        + (
            "each hub's processes get the CPUs first (--hub-first)\n"
            if args.hub_first
            else "the hubs share the CPUs with the test cluster, one equal share per session\n"
        )
    )
    for result in results.values():
        print(f"{result.kind}: burst window {result.window_s:.1f} s; {result.load.detail}")
    print()
    count_header, ms_header = target.load_headers
    headers = [
        {"<scheduler count>": count_header, "<scheduler ms>": ms_header}.get(h, h) for h in HEADERS
    ]
    print_table(headers, [row(r) for r in results.values()])
    for result in results.values():
        # The same failure for many users: counted once, their names left out.
        failed = Counter(
            re.sub(r"\b(?:student\d+|alice|bob|carol|dave|erin)\b", "<user>", start.error)
            for start in result.failures
        )
        for message, count in failed.most_common():
            print(f"  {result.kind} failure x{count}: {message}")
        retried = sum(start.retries for start in result.starts)
        if retried:
            print(f"  {result.kind}: {retried} server request(s) answered 429 and retried")
        for job in result.left_in_queue:
            print(f"  {result.kind}: left in the queue: {job}")
    if set(results) == {"hubdash", "batchspawner"}:
        hd, bs = results["hubdash"], results["batchspawner"]

        def ratio(ours: float, theirs: float) -> str:
            return f"{theirs / ours:.1f}x" if ours > 0 else "-"

        figures = [
            ("request->ready p50", percentile(hd.times, 50), percentile(bs.times, 50)),
            ("request->ready p95", percentile(hd.times, 95), percentile(bs.times, 95)),
            ("request->ready max", max(hd.times, default=0), max(bs.times, default=0)),
            ("SSH logins", hd.logins, bs.logins),
            *(
                [(count_header, hd.load.count or 0, bs.load.count or 0)]
                if bs.load.count is not None
                else []  # batchspawner's commands are its SSH logins
            ),
            (ms_header, hd.load.ms, bs.load.ms),
            ("hub CPU s", hd.hub_cpu_s + (hd.keeper_cpu_s or 0.0), bs.hub_cpu_s),
        ]
        print()
        print_table(
            ["figure", "hubdash", "batchspawner", "batchspawner/hubdash"],
            [[name, f"{a:.1f}", f"{b:.1f}", ratio(a, b)] for name, a, b in figures],
        )
        print("(hubdash's hub CPU here includes its forward keeper's)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100, help="distinct users (test users)")
    parser.add_argument("--window", type=float, default=5.0, help="seconds the logins spread over")
    parser.add_argument(
        "--ready-timeout", type=float, default=600.0, help="seconds a server may take to be ready"
    )
    parser.add_argument("--sshd-port", type=int, default=15022, help="the bench sshd's port")
    parser.add_argument(
        "--scheduler",
        choices=("slurm", "pbs", "sge"),
        default="slurm",
        help="the test cluster: Slurm, OpenPBS or Grid Engine",
    )
    parser.add_argument(
        "--hubdash-config",
        action="append",
        default=[],
        help="a line of hub config for the hubdash hub (repeatable)",
    )
    parser.add_argument(
        "--hub-first",
        action="store_true",
        help="the hub's processes get the CPUs first, as on a host of their own (a cgroup of "
        "the highest CPU weight); unset: one equal share per session, the test cluster's too",
    )
    add_hub_arguments(parser)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: it starts an sshd on the login node and reads /proc and sdiag")
        return 2
    users = test_users(args.users)
    missing = [u for u in users if not (KEYS / u).exists() or not _has_account(u)]
    if missing:
        print(
            f"{len(missing)} test user(s) missing ({', '.join(missing[:3])} ...): run "
            f"scripts/testcluster up --users {args.users}"
        )
        return 2
    target = Target.of(args.scheduler)
    prefix = f"hdbench{os.getpid()}"
    text, idle = target.before()
    print(f"queue before the run: {text}; {idle} idle CPUs for {target.queue}")
    if idle < args.users:
        print(f"(fewer idle CPUs than {args.users} servers: some will wait in the queue)")
    results: dict[str, Result] = {}

    def body(cleanup: Cleanup) -> None:
        folder = Path(tempfile.mkdtemp(prefix="hdbench-sshd-"))
        sshd = BenchSSHD(target.login, args.sshd_port, folder)
        sshd.start(cleanup)
        for kind, port in hubs_to_measure(args):
            results[kind] = bench_kind(kind, port, prefix, target, users, sshd, args)
            time.sleep(5)  # the last jobs' ends reach the scheduler before the next hub starts

    if not run_cleanly(prefix, body, target.sweep):
        return 130
    report(results, target, args)
    return 0


def _has_account(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
