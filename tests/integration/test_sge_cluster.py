"""The Grid Engine adapter against the test bed's real Son of Grid Engine 8.1.9: alice's jobs,
submitted over SSH through hubdash's SchedulerClient, followed with its lookup (and its
follow-ups: scheduling messages, qacct), cancelled, and a job on two hosts whose copies reach
the other host with `qrsh -inherit` (hubdash.job.pehosts).

The cluster comes up with `scripts/testcluster up --only sge` (a no-op when it is up).
"""

from __future__ import annotations

import asyncio
import shlex
import subprocess
import uuid
from collections.abc import Callable

import pytest

from hubdash.cluster.cluster import Cluster
from hubdash.cluster.config import ClusterConfig
from hubdash.schedulers.base import JobInfo, JobRequest, JobState
from hubdash.schedulers.sgexml import parse_job_list
from hubdash.transport.factory import LoginSettings, UserKeys
from tests.conftest import JOB_PREFIX, KEY_DIR, KNOWN_HOSTS, ROOT

pytestmark = pytest.mark.integration

SGE_LOGIN = "10.215.0.2"
SCRIPT_DIR = ".hubdash-it-sge"
PYTHON = "/opt/hubdash/venv/bin/python"  # what jobs run; the package installed there
PATIENCE = 60.0


def _alice_qstat() -> list[str]:
    """'id name' of alice's live jobs of this test session, from qstat over SSH."""
    ssh = ["ssh", "-i", str(KEY_DIR / "alice"), "-o", f"UserKnownHostsFile={KNOWN_HOSTS}"]
    out = subprocess.run(
        [*ssh, "-o", "BatchMode=yes", f"alice@{SGE_LOGIN}", "qstat", "-u", "alice", "-xml"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    jobs = parse_job_list(out.stdout).values()
    return [f"{job.job_id} {job.name}" for job in jobs if job.name.endswith(f"-{JOB_PREFIX}")]


@pytest.fixture(scope="session")
def sge_cluster_up():
    subprocess.run(
        [str(ROOT / "scripts" / "testcluster"), "up", "--only", "sge"], check=True, timeout=900
    )
    yield
    # This session's scripts, logs and host lists go; other sessions' stay.
    subprocess.run(
        ["ssh", "-i", str(KEY_DIR / "alice"), "-o", f"UserKnownHostsFile={KNOWN_HOSTS}",
         f"alice@{SGE_LOGIN}", f"rm -f {SCRIPT_DIR}/*-{JOB_PREFIX}.* {SCRIPT_DIR}/{JOB_PREFIX}-*"],
        timeout=30,
    )  # fmt: skip
    # Every job of these tests ends or is cancelled by them: none may be left.
    left = _alice_qstat()
    if left:
        ids = [entry.split()[0] for entry in left]
        subprocess.run(
            ["ssh", "-i", str(KEY_DIR / "alice"), "-o", f"UserKnownHostsFile={KNOWN_HOSTS}",
             f"alice@{SGE_LOGIN}", "qdel", *ids],
            timeout=30,
        )  # fmt: skip
        pytest.fail("Grid Engine jobs of the tests left in the queue: " + "; ".join(left))


@pytest.fixture
async def sge(sge_cluster_up):
    config = ClusterConfig(
        name=f"it-sge-{uuid.uuid4().hex[:4]}",
        login=LoginSettings(host=SGE_LOGIN, known_hosts=str(KNOWN_HOSTS)),
        scheduler="sge",
        scheduler_options=(("parallel_environment", "mpi"), ("slots_per_node", "0")),
    )
    cluster = Cluster(config)
    cluster.transport_for("alice", UserKeys(key_files=(str(KEY_DIR / "alice"),)))
    yield cluster
    await cluster.close()


def job_name(what: str) -> str:
    return f"hd-{what}-{uuid.uuid4().hex[:4]}-{JOB_PREFIX}"


async def submit(
    cluster: Cluster, what: str, body: str, *, hold: bool = False, **resources
) -> tuple[str, str, JobRequest]:
    """A job of alice's: the adapter's `#$` lines (plus `-h`), then `body`; submitted with
    SchedulerClient.submit. Returns (job id, job name, request)."""
    alice = cluster.transport_for("alice")
    name = job_name(what)
    request = JobRequest(
        job_name=name,
        queue=resources.pop("queue", "all.q"),
        walltime_seconds=resources.pop("walltime_seconds", 300),
        output_path=f"{SCRIPT_DIR}/{name}.log",
        **resources,
    )
    lines = ["#!/bin/bash", *cluster.adapter.directives(request)]
    lines += ["#$ -h"] if hold else []
    script = f"{SCRIPT_DIR}/{name}.sh"
    await alice.run(["mkdir", "-p", SCRIPT_DIR])
    await alice.write_file(script, ("\n".join([*lines, body]) + "\n").encode(), mode=0o700)
    job_id = await cluster.client.submit(alice, script, request)
    return job_id, name, request


async def lookup_until(
    cluster: Cluster, job_id: str, check: Callable[[JobInfo], bool], what: str
) -> JobInfo:
    """The lookup's answer once `check` holds (each lookup with its follow-ups)."""
    alice = cluster.transport_for("alice")
    deadline = asyncio.get_running_loop().time() + PATIENCE
    while True:
        info = (await cluster.client.lookup(alice, [job_id], "alice"))[job_id]
        if check(info):
            return info
        assert asyncio.get_running_loop().time() < deadline, f"never saw {what}; last: {info}"
        await asyncio.sleep(0.5)


async def cancel(cluster: Cluster, *job_ids: str) -> None:
    await cluster.client.cancel(cluster.transport_for("alice"), list(job_ids))


async def test_held_job_waits_with_its_reason_and_is_cancelled(sge):
    job_id, name, _ = await submit(sge, "held", "sleep 60", hold=True)
    try:
        info = await lookup_until(sge, job_id, lambda i: i.state is JobState.PENDING, "pending")
        assert (info.raw_state, info.reason) == ("hqw", "held (qhold or qsub -h)")
        alice = sge.transport_for("alice")
        assert await sge.client.jobs_named(alice, name, "alice") == [job_id]
        status = await sge.client.status(alice, [job_id])
        assert status[job_id].state is JobState.PENDING
    finally:
        await cancel(sge, job_id)
    # Deleted before it ran: no accounting record ever comes; after the bounded wait, GONE.
    info = await lookup_until(sge, job_id, lambda i: i.state.is_finished, "the end")
    assert (info.state, info.exit_code) == (JobState.GONE, None)
    await cancel(sge, job_id)  # again: a job Grid Engine no longer knows counts as cancelled


async def test_waiting_job_shows_the_schedulers_message(sge):
    job_id, _, _ = await submit(sge, "wait", "sleep 60", queue="hold.q")
    try:
        info = await lookup_until(
            sge, job_id, lambda i: "disabled" in i.reason, "the scheduler's reason"
        )
        assert info.state is JobState.PENDING and info.raw_state == "qw"
        assert 'queue instance "hold.q@sge-cn' in info.reason
    finally:
        await cancel(sge, job_id)


async def test_running_job_then_its_exit_status_from_qacct(sge):
    job_id, _, _ = await submit(sge, "exit3", "sleep 4; exit 3")
    info = await lookup_until(sge, job_id, lambda i: i.state is not JobState.PENDING, "start")
    if info.state is JobState.RUNNING:
        assert info.queue == "all.q"
        assert len(info.nodes) == 1 and info.nodes[0].startswith("sge-cn")
    info = await lookup_until(sge, job_id, lambda i: i.state.is_finished, "the end")
    assert (info.state, info.exit_code) == (JobState.DONE, 3)
    alice = sge.transport_for("alice")
    assert await sge.client.exit_code(alice, job_id) == 3


async def test_cancelling_a_running_job(sge):
    job_id, _, _ = await submit(sge, "cancel", "sleep 120")
    try:
        await lookup_until(sge, job_id, lambda i: i.state is JobState.RUNNING, "running")
    finally:
        await cancel(sge, job_id)
    info = await lookup_until(
        sge, job_id, lambda i: i.state not in (JobState.RUNNING, JobState.COMPLETING), "the end"
    )
    assert (info.state, info.exit_code) == (JobState.CANCELLED, 137)
    assert "killed by signal 9" in info.reason


async def test_job_on_two_hosts_reaches_both_with_qrsh_inherit(sge):
    hosts_file = f"/home/alice/{SCRIPT_DIR}/{JOB_PREFIX}-{uuid.uuid4().hex[:8]}.hosts"
    copy = ["/bin/sh", "-c", f"hostname >> {hosts_file}"]
    spread = [PYTHON, "-m", "hubdash.job.pehosts", "spread", "--engines", "2", "--per-node", "1"]
    body = f"{shlex.join([*spread, '--', *copy])}\nsleep 2"
    job_id, _, _ = await submit(sge, "pe", body, nodes=2)
    try:
        info = await lookup_until(sge, job_id, lambda i: i.state is not JobState.PENDING, "start")
        if info.state is JobState.RUNNING:
            assert sorted(info.nodes) == ["sge-cn1", "sge-cn2"]
        info = await lookup_until(sge, job_id, lambda i: i.state.is_finished, "the end")
    finally:
        await cancel(sge, job_id)
    # qacct: the job's record and its qrsh task's (both exit 0 here; which of them qacct has
    # flushed at the moment of asking, and so which host comes first, may vary).
    assert (info.state, info.exit_code) == (JobState.DONE, 0)
    assert info.nodes and set(info.nodes) <= {"sge-cn1", "sge-cn2"}
    alice = sge.transport_for("alice")
    hosts = (await alice.read_file(hosts_file, max_bytes=1000)).decode().split()
    assert sorted(hosts) == ["sge-cn1", "sge-cn2"]


async def test_queue_figures(sge):
    queues = await sge.client.queue_summaries(sge.transport_for("alice"))
    assert {"all.q", "debug.q", "hold.q"} <= set(queues)
    assert (queues["all.q"].state, queues["hold.q"].state) == ("up", "disabled")
    assert queues["all.q"].nodes_total == 2
    assert 0 <= queues["all.q"].nodes_free <= 2
    assert queues["hold.q"].nodes_free == 0
    estimate = await sge.client.estimate_start(
        sge.transport_for("alice"), JobRequest("x", "all.q", 60)
    )
    assert estimate is None  # Grid Engine gives none: the form says so
