"""Hostile input and identities on each test cluster (Slurm, OpenPBS, Grid Engine): real sshd,
real login shells, each scheduler's own submit command (and Slurm's qsub wrapper), and each hub
user's own SSH key.

A payload that ran would create a marker file in /tmp: the login nodes are network and UTS
namespaces of this machine, so their /tmp is this one. It must never appear. A job a scheduler
accepts is held, in a queue that never starts jobs, and cancelled at once.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cache
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from traitlets.config import Config

from hubdash.cluster.cluster import Cluster
from hubdash.schedulers import pbsjson
from hubdash.schedulers.base import JobRequest, SchedulerError
from hubdash.schedulers.pbs import PBSAdapter
from hubdash.spawner.jobspawner import JobSpawner
from hubdash.transport.base import Transport, TransportError, command_line

from ..conftest import JOB_PREFIX, KEY_DIR, KNOWN_HOSTS, ROOT
from ..hostile import ODD_VALUES, TALLY, marker_name, payloads

pytestmark = pytest.mark.integration

MARKER = f"/tmp/{marker_name()}"
words = st.one_of(st.sampled_from(payloads(MARKER) + ODD_VALUES), st.text(max_size=30)).filter(
    lambda s: "\x00" not in s
)
SCRIPT_DIR = ".hubdash-it-hostile"


@dataclass(frozen=True)
class Bed:
    """One test cluster, as a hub is configured for it and as these tests hold its jobs."""

    testbed: str  # its name for scripts/testcluster
    settings: dict[str, str]  # the JobSpawner settings of a hub on it
    hold_queue: str  # takes jobs and never starts them
    hold_line: str  # a job script line that holds the job: a second guard
    hold_flag: str  # the same for the submit command
    describe: tuple[str, ...]  # the command that describes one job (its id appended)
    raw: bool = True  # whether hostile words may go to its submit command (see below)


SLURM = {"scheduler": "slurm", "login_host": "10.213.0.2"}
SLURM_JOB = ("squeue", "--json", "-j")
BEDS = {
    "slurm": Bed("slurm", SLURM, "hold", "#SBATCH --hold", "--hold", SLURM_JOB),
    # Slurm's qsub wrapper joins its arguments into a shell line: hostile words would run
    # there by its design. The adapter gives it only checked words (the wrapper test below).
    "slurm-torque": Bed(
        "slurm", {**SLURM, "scheduler": "pbs", "pbs_flavor": "slurm-torque"},
        "hold", "#SBATCH --hold", "-h", SLURM_JOB, raw=False,
    ),
    "pbs": Bed(
        "pbs", {"scheduler": "pbs", "pbs_flavor": "pbspro", "login_host": "10.214.0.2"},
        "hold", "#PBS -h", "-h", ("qstat", "-f", "-F", "json"),
    ),
    "sge": Bed(
        "sge", {"scheduler": "sge", "login_host": "10.215.0.2"},
        "hold.q", "#$ -h", "-h", ("qstat", "-xml", "-j"),
    ),
}  # fmt: skip
LOGIN_NODES = ("slurm", "pbs", "sge")


@cache
def _bring_up(testbed: str) -> None:
    subprocess.run(
        [str(ROOT / "scripts" / "testcluster"), "up", "--only", testbed], check=True, timeout=900
    )


def bring_up(request: pytest.FixtureRequest, bed: Bed) -> None:
    """The bed's cluster up (a no-op when it is); Slurm's through the session's fixture, which
    also checks that no job of the session is left."""
    if bed.testbed == "slurm":
        request.getfixturevalue("test_cluster")
    else:
        _bring_up(bed.testbed)


def hub_spawner(name: str, bed: Bed) -> JobSpawner:
    """A spawner configured as a hub on `bed` would be, for hub user `name`."""
    config = Config()
    for setting, value in bed.settings.items():
        setattr(config.JobSpawner, setting, value)
    config.JobSpawner.known_hosts = str(KNOWN_HOSTS)
    config.JobSpawner.ssh_key_path = str(KEY_DIR / "{username}")
    user = SimpleNamespace(name=name, groups=[], url=f"/user/{name}/", escaped_name=name)
    return JobSpawner(config=config, user=user)


# --- the login shell --------------------------------------------------------------------------


@pytest.fixture(scope="module", params=LOGIN_NODES)
async def alice(request):
    """Alice's transport to a login node, as the hub makes it."""
    bed = BEDS[request.param]
    bring_up(request, bed)
    spawner = hub_spawner("alice", bed)
    yield spawner.user_transport()
    await spawner.cluster.close()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(words, min_size=1, max_size=4))
async def test_hostile_arguments_reach_the_login_shell_as_the_same_words(alice, argv):
    with TALLY.trying(argv) as trial:
        result = await alice.run(["printf", "%s\\0", "first", *argv])
        assert result.exit_status == 0, result.stderr
        assert result.stdout.split("\0")[:-1] == ["first", *argv]
        assert not (await alice.run(["test", "-e", MARKER])).exit_status == 0, "a payload ran"
        trial.taken(any(command_line([a]) != a for a in argv))  # quoted, or plain words


# --- the scheduler's submit command -----------------------------------------------------------


@dataclass
class Submitter:
    """Alice's jobs on one bed: submitted two ways, held, described, cancelled at once."""

    bed: Bed
    cluster: Cluster
    alice: Transport
    live: set[str]  # accepted, not cancelled yet

    script = f"{SCRIPT_DIR}/hostile-{JOB_PREFIX}.sh"
    log = f"{SCRIPT_DIR}/hostile-{JOB_PREFIX}.log"  # never written: no job runs

    def request(self, field: str, value: str, output_path: str) -> JobRequest:
        values = {"job_name": f"hd-hostile-{JOB_PREFIX}", "queue": self.bed.hold_queue}
        return JobRequest(walltime_seconds=300, output_path=output_path, **{**values, field: value})

    async def as_the_hub_does(self, field: str, value: str) -> str | None:
        """The hub's path: the adapter's directives in the script, submitted through the
        cluster's client. The job id, or None where the adapter or the scheduler refused."""
        request = self.request(field, value, self.log)
        try:
            header = self.cluster.adapter.directives(request)
        except ValueError:
            return None  # refused before anything reached the cluster
        lines = ["#!/bin/bash", *header, self.bed.hold_line, "true", ""]
        await self.alice.write_file(self.script, "\n".join(lines).encode(), mode=0o700)
        try:
            return await self.cluster.client.submit(self.alice, self.script, request)
        except SchedulerError:
            return None

    async def as_one_word(self, field: str, value: str) -> str | None:
        """Past the adapter's check: the value as one argument of the submit command, in the
        place the adapter's own option puts it (`-N <value>`, `--job-name=<value>`)."""
        stand_in = "hdSTANDIN"
        options = self.cluster.adapter.submit_options(self.request(field, stand_in, "/dev/null"))
        words = [word.replace(stand_in, value) for o in options for word in o.split(" ", 1)]
        *command, script = self.cluster.adapter.submit_command(self.script)
        result = await self.alice.run([*command, self.bed.hold_flag, *words, script])
        return self.cluster.adapter.parse_submit(result.stdout) if result.exit_status == 0 else None

    async def kept(self, job_id: str) -> dict[str, str]:
        """The job's name and account (Grid Engine: project) as the scheduler keeps them."""
        result = await self.alice.run([*self.bed.describe, job_id])
        assert result.exit_status == 0, result.stderr
        if self.bed.describe == SLURM_JOB:
            # Slurm 22.05's squeue --json lists every job whatever -j says.
            jobs = json.loads(result.stdout)["jobs"]
            (job,) = [job for job in jobs if str(job["job_id"]) == job_id]
            return {"job_name": job["name"], "account": job["account"]}
        if self.bed.testbed == "pbs":
            ((_, job),) = pbsjson.load(result.stdout, "qstat")["Jobs"].items()
            return {"job_name": job["Job_Name"], "account": job.get("Account_Name", "")}
        root = ET.fromstring(result.stdout)
        return {field: root.findtext(f".//{tag}") or "" for field, tag in GRID_ENGINE_TAGS}

    async def cancel(self, job_id: str) -> None:
        await self.cluster.client.cancel(self.alice, [job_id])
        self.live.discard(job_id)


GRID_ENGINE_TAGS = (("job_name", "JB_job_name"), ("account", "JB_project"))


def as_kept(bed: Bed, field: str, value: str) -> str:
    """What the scheduler should keep of `value`: the value, but Slurm keeps accounts in
    lower case (ASCII letters only)."""
    if bed.describe == SLURM_JOB and field == "account":
        return "".join(c.lower() if c.isascii() else c for c in value)
    return value


@pytest.fixture(scope="module", params=list(BEDS))
async def submitter(request) -> AsyncIterator[Submitter]:
    bed = BEDS[request.param]
    bring_up(request, bed)
    spawner = hub_spawner("alice", bed)
    alice = spawner.user_transport()
    await alice.run(["mkdir", "-p", SCRIPT_DIR])
    submitter = Submitter(bed, spawner.cluster, alice, set())
    yield submitter
    try:
        if submitter.live:  # a failed test's: cancelled all the same
            await submitter.cluster.client.cancel(alice, sorted(submitter.live))
        await alice.run(["rm", "-f", submitter.script, submitter.log])
        await alice.run(["rmdir", "--ignore-fail-on-non-empty", SCRIPT_DIR])
    finally:
        await spawner.cluster.close()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# hypothesis: 30 values, each submitted, read back and cancelled, two ways on some beds
@pytest.mark.timeout(600)
@given(field=st.sampled_from(["job_name", "queue", "account"]), value=words)
async def test_hostile_job_values_reach_the_scheduler_as_one_word_and_never_run(
    submitter, field, value
):
    paths = [submitter.as_the_hub_does] + ([submitter.as_one_word] if submitter.bed.raw else [])
    with TALLY.trying(value) as trial:
        for submit in paths:
            job_id = await submit(field, value)
            if submit == submitter.as_the_hub_does:  # what the hub did is what counts
                if job_id is None:
                    trial.refused()
                else:
                    trial.taken(shlex.quote(value) != value)
            if job_id is None:
                continue  # refused: by the adapter, or by the scheduler
            submitter.live.add(job_id)
            try:
                # Accepted: the scheduler got the value whole, as one word (where it keeps it).
                if field != "queue" and value.strip():
                    kept = (await submitter.kept(job_id))[field]
                    assert kept == as_kept(submitter.bed, field, value), (submit.__name__, kept)
            finally:
                await submitter.cancel(job_id)
        ran = await submitter.alice.run(["test", "-e", MARKER])
        assert ran.exit_status != 0, "a payload ran"


def test_slurms_qsub_wrapper_gets_only_arguments_its_shell_line_keeps_whole(tmp_path):
    # The wrapper joins its arguments into one line for a shell (perl backticks): every
    # argument the adapter builds must read back as the same word.
    adapter = PBSAdapter("slurm-torque")
    request = JobRequest(
        job_name="jupyterhub-alice-x",
        queue="debug",
        walltime_seconds=600,
        output_path=".hubdash/servers/a.b+c-d_e/job.log",
    )
    argv = adapter.submit_command(".hubdash/servers/a.b+c-d_e/job.sh", request)
    done = subprocess.run(
        [f"/usr/bin/{argv[0]}", "--sbatchline", *argv[1:]],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        check=True,
    )
    line = done.stdout.strip()
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    sbatch = list(lexer)
    assert sbatch[0].endswith("sbatch")
    for value in (request.output_path, ".hubdash/servers/a.b+c-d_e/job.sh", "--no-requeue"):
        assert value in sbatch, (value, line)


# --- identities -------------------------------------------------------------------------------


@pytest.mark.parametrize("testbed", LOGIN_NODES)
async def test_each_hub_users_commands_run_as_that_cluster_user(request, testbed):
    bed = BEDS[testbed]
    bring_up(request, bed)
    spawners = {name: hub_spawner(name, bed) for name in ("alice", "bob")}
    cluster = spawners["alice"].cluster
    try:
        for name, spawner in spawners.items():
            transport = spawner.user_transport()
            result = await transport.run(["id", "-un"])
            assert result.stdout.strip() == name
        # What the job monitor does: ask by name. Bob's own transport, or none at all.
        assert (await cluster.transport_for("bob").run(["id", "-un"])).stdout.strip() == "bob"
        with pytest.raises(TransportError, match="carol"):
            cluster.transport_for("carol")
    finally:
        await cluster.close()
