"""A scheduler on paper, behind a Transport: answers scontrol, squeue and qstat the way the
recorded samples show, records every command, and can be told to fail. Unit tests only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from hubdash.transport.base import CommandResult, FileTooLarge, Forward, Transport, TransportError

# Seconds a test gives a start on paper to reach its tunnel or end: it takes milliseconds, so
# this only bounds a start a bug holds up (and what such a bug costs a mutation run). Not less:
# on 2 busy cores (the unit tier beside a mutation run) a start once took more than 5 s.
START_BOUND = 15.0


@dataclass
class PaperJob:
    state: str = "PENDING"  # Slurm's word
    reason: str = "Priority"
    partition: str = "debug"
    nodes: str = ""
    exit_code: str = "0:0"
    owner: str = "alice"
    name: str = ""
    # What `scontrol show job` (the hub's look at an ended job's details) gives as its exit
    # code when the monitor's answer had none (`exit_code` ""): as qacct does after qstat.
    accounted_exit_code: str = ""


class PaperScheduler:
    """Jobs by id; `failing` makes every scheduler command fail as slurmctld does when busy,
    `transport_down` makes the transport itself fail (timeout, lost connection)."""

    def __init__(self) -> None:
        self.jobs: dict[str, PaperJob] = {}
        self.commands: list[list[str]] = []
        self.failing = False
        self.transport_down = False
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, int] = {}  # each file's mode, as last written
        self.reads: list[str] = []  # the files read, in order (tests may clear it)
        self.next_id = 1000
        self.notebook_forward_opened = asyncio.Event()  # by any transport on it

    def _submit(self, script_path: str) -> CommandResult:
        """sbatch: the job runs at once and writes its connection file, as the launcher does."""
        job_id = str(self.next_id)
        self.next_id += 1
        self.jobs[job_id] = PaperJob("RUNNING", "None", nodes="cn1")
        folder = script_path.rsplit("/", 1)[0]
        connection = {"host": "cn1", "port": 41234, "job_id": job_id}
        self.files[f"{folder}/connection.json"] = json.dumps(connection).encode()
        return CommandResult(0, f"{job_id}\n", "")

    def _squeue(self, job_ids: list[str] | None, user: str = "") -> CommandResult:
        lines = [
            f"{i}|{j.state}|{j.reason}|{j.partition}|{j.nodes}|N/A|1"
            for i, j in self.jobs.items()
            if (job_ids is None and j.owner == user) or (job_ids and i in job_ids)
        ]
        if not lines and job_ids is not None and len(job_ids) == 1:
            return CommandResult(1, "", "slurm_load_jobs error: Invalid job id specified\n")
        return CommandResult(0, "".join(line + "\n" for line in lines), "")

    def _user_jobs(self, argv: list[str]) -> CommandResult:
        """squeue -u USER [-n NAME] -t STATES -o '%i' or '%i|%j': a user's live jobs."""
        user, fields = argv[argv.index("-u") + 1], argv[argv.index("-o") + 1]
        name = argv[argv.index("-n") + 1] if "-n" in argv else None
        states = argv[argv.index("-t") + 1].split(",") if "-t" in argv else None
        lines = [
            job_id if fields == "%i" else f"{job_id}|{job.name}"
            for job_id, job in self.jobs.items()
            if job.owner == user
            and (name is None or job.name == name)
            and (states is None or job.state in states)
        ]
        return CommandResult(0, "".join(line + "\n" for line in lines), "")

    def lookups_of(self, job_id: str) -> int:
        return sum(
            1 for argv in self.commands if argv[0] in ("scontrol", "qstat") and job_id in argv
        )

    def answer(self, argv: list[str]) -> CommandResult:
        self.commands.append(list(argv))
        if self.failing:
            return CommandResult(1, "", "slurm_load_jobs error: Socket timed out on send/recv\n")
        if argv[:2] == ["sbatch", "--parsable"]:
            return self._submit(argv[-1])
        if argv[0] == "scancel":
            for job_id in argv[1:]:
                if job_id in self.jobs:
                    self.jobs[job_id].state = "CANCELLED"
            return CommandResult(0, "", "")
        if argv[0] == "squeue" and "-j" in argv:
            return self._squeue(argv[argv.index("-j") + 1].split(","))
        if argv[0] == "squeue" and "-u" in argv and argv[argv.index("-o") + 1] in ("%i", "%i|%j"):
            return self._user_jobs(argv)
        if argv[0] == "squeue" and "-u" in argv:
            return self._squeue(None, argv[argv.index("-u") + 1])
        if argv[:5] == ["scontrol", "--local", "-o", "show", "job"]:
            return self._scontrol(argv[5])
        if argv[:4] == ["scontrol", "show", "job", "-o"]:  # a job's details, exit code too
            return self._scontrol(argv[4], accounted=True)
        if argv[0] == "squeue" and "--states=PENDING" in argv:
            queue = argv[argv.index("-p") + 1]
            pending = [
                i for i, j in self.jobs.items() if j.state == "PENDING" and j.partition == queue
            ]
            return CommandResult(0, "".join(f"{i}\n" for i in pending), "")
        if argv[:2] == ["qstat", "-f"]:
            return self._qstat(argv[2:])
        return CommandResult(127, "", f"{argv[0]}: command not found\n")

    def _scontrol(self, job_id: str, accounted: bool = False) -> CommandResult:
        job = self.jobs.get(job_id)
        if job is None:
            return CommandResult(1, "", "slurm_load_jobs error: Invalid job id specified\n")
        exit_code = (
            job.accounted_exit_code if accounted and job.accounted_exit_code else job.exit_code
        )
        line = (
            f"JobId={job_id} JobName=jupyterhub-alice-default UserId=alice(1001) "
            f"JobState={job.state} Reason={job.reason} ExitCode={exit_code} "
            f"StartTime=Unknown Partition={job.partition} NodeList={job.nodes or '(null)'} "
            "StdOut=/home/alice/job.log Power=\n"
        )
        return CommandResult(0, line, "")

    def _qstat(self, ids: list[str]) -> CommandResult:
        letters = {"PENDING": "Q", "RUNNING": "R", "COMPLETED": "C"}
        out, err = [], []
        for job_id in ids:
            job = self.jobs.get(job_id)
            if job is None:
                err.append(f"qstat: Unknown Job Id {job_id}\n")
                continue
            out.append(
                f"Job Id: {job_id}\n    job_state = {letters.get(job.state, 'Q')}\n"
                f"    queue = {job.partition}\n"
            )
            if job.state == "COMPLETED":
                out.append(f"    exit_status = {job.exit_code.split(':')[0]}\n")
            out.append("\n")
        return CommandResult(153 if err else 0, "".join(out), "".join(err))


class PaperTransport(Transport):
    """A transport whose commands reach the PaperScheduler and whose files live in it."""

    def __init__(self, scheduler: PaperScheduler, username: str = "alice") -> None:
        self.scheduler, self.username = scheduler, username
        self.argvs: list[list[str]] = []
        self.writes: list[tuple[str, bytes, int]] = []

    async def run(
        self, argv: list[str], *, input: str | None = None, timeout: float = 30
    ) -> CommandResult:
        self.argvs.append(list(argv))
        if self.scheduler.transport_down:
            raise TransportError("A command on login timed out after 30 s")
        return self.scheduler.answer(argv)

    async def read_file(self, path: str, *, max_bytes: int, what: str = "a file") -> bytes:
        self.scheduler.reads.append(path)
        data = self._file(path)
        if len(data) > max_bytes:
            raise FileTooLarge(path, len(data), max_bytes, where="paper", what=what)
        return data

    async def read_tail(self, path: str, *, max_bytes: int) -> bytes:
        data = self._file(path)
        return data[max(0, len(data) - max_bytes) :]

    def _file(self, path: str) -> bytes:
        if self.scheduler.transport_down:
            raise TransportError("connection lost")
        try:
            return self.scheduler.files[path]
        except KeyError:
            raise FileNotFoundError(path) from None

    async def write_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        self.writes.append((path, data, mode))
        self.scheduler.files[path] = data
        self.scheduler.modes[path] = mode

    async def remove(self, path: str) -> None:
        self.scheduler.files.pop(path, None)

    async def open_local_forward(
        self, dest_host, dest_port, *, listen_port=0, listen_host="127.0.0.1", **_options
    ):
        self.scheduler.notebook_forward_opened.set()
        return Forward(listen_host, listen_port or 40000)

    async def open_remote_forward(self, listen_host, listen_port, dest_host, dest_port):
        return Forward(listen_host, listen_port or 40001)

    async def close(self) -> None:
        pass


class PaperLoginNodes:
    """Login nodes on paper for the clusters' health check: each answers with an SSH greeting
    unless its host is in `down`; `asked` lists the hosts checked, in order."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.asked: list[str] = []

    async def probe(self, host: str, port: int, timeout: float) -> str:
        self.asked.append(host)
        if host in self.down:
            raise OSError("connection refused")
        return "SSH-2.0-paper"

    def install(self, monkeypatch) -> PaperLoginNodes:
        """In place of the real check for the test's duration (hubdash.cluster.cluster)."""
        from hubdash.cluster import cluster as cluster_module

        monkeypatch.setattr(cluster_module, "probe_login_node", self.probe)
        return self


def paper_spawner(server: str, queues: dict, **settings):
    """A JobSpawner of alice's server `server`, on login.example.org with these queues, as
    a hub would build it (no hub forward; `settings` are more JobSpawner settings)."""
    from types import SimpleNamespace

    from jupyterhub.objects import Hub
    from traitlets.config import Config

    from hubdash.spawner.jobspawner import JobSpawner

    config = Config()
    config.JobSpawner.login_host = "login.example.org"
    config.JobSpawner.queues = queues
    config.JobSpawner.forward_hub_api = False
    config.JobSpawner.forward_keeper = "hub"  # paper transports: forwards of their own
    config.JobSpawner.hub_id = "h1"
    for name, value in settings.items():
        setattr(config.JobSpawner, name, value)
    user = SimpleNamespace(name="alice", url="/user/alice/", escaped_name="alice", groups=[])
    row = SimpleNamespace(name=server, display_name="", server=None, state=None)
    return JobSpawner(config=config, user=user, hub=Hub(base_url="/hub/"), orm_spawner=row)


@contextlib.asynccontextmanager
async def start_at_tunnel(spawner, scheduler: PaperScheduler) -> AsyncIterator[None]:
    """Runs `spawner.start()` until its notebook tunnel opens (nothing answers behind it on
    paper), for the block to look at the spawner then; the start is cancelled after. Fails
    with the start's own error if it ended before the tunnel."""
    start = asyncio.ensure_future(spawner.start())
    opened = asyncio.ensure_future(scheduler.notebook_forward_opened.wait())
    try:
        await asyncio.wait({start, opened}, timeout=START_BOUND, return_when="FIRST_COMPLETED")
        assert opened.done(), start.exception() if start.done() else "no tunnel yet"
        yield
    finally:
        start.cancel()
        opened.cancel()
        await asyncio.gather(start, opened, return_exceptions=True)
