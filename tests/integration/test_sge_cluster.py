"""The Grid Engine adapter against the test bed's real Son of Grid Engine 8.1.9: alice's jobs,
submitted over SSH through hubdash's SchedulerClient, followed with its lookup (and its
follow-ups: scheduling messages, qacct), cancelled, and a job on two hosts whose copies reach
the other host with `qrsh -inherit` (hubdash.job.pehosts).

The cluster comes up with `scripts/testcluster up --only sge` (a no-op when it is up).
"""

from __future__ import annotations

import shlex
import uuid

import pytest

from hubdash.schedulers.base import JobRequest, JobState
from hubdash.schedulers.sgexml import parse_job_list
from tests.conftest import JOB_PREFIX
from tests.integration.batchjobs import PYTHON, BatchBed, cancel, lookup_until

pytestmark = pytest.mark.integration


def alice_jobs(qstat_xml: str) -> list[tuple[str, str]]:
    """(id, name) of the jobs in `qstat -u alice -xml`."""
    return [(job.job_id, job.name) for job in parse_job_list(qstat_xml).values()]


SGE = BatchBed(
    scheduler="sge",
    label="Grid Engine",
    login="10.215.0.2",
    queue="all.q",
    hold="#$ -h",
    options=(("parallel_environment", "mpi"), ("slots_per_node", "0")),
    qstat=("qstat", "-u", "alice", "-xml"),
    parse=alice_jobs,
)
SCRIPT_DIR = SGE.script_dir


@pytest.fixture(scope="session")
def sge_cluster_up():
    yield from SGE.session()


@pytest.fixture
async def sge(sge_cluster_up):
    cluster = SGE.cluster()
    yield cluster
    await cluster.close()


async def test_held_job_waits_with_its_reason_and_is_cancelled(sge):
    job_id, name = await SGE.submit(sge, "held", "sleep 60", hold=True)
    try:
        info = await lookup_until(sge, job_id, lambda i: i.state is JobState.PENDING, "pending")
        assert (info.raw_state, info.reason) == ("hqw", "held (qhold or qsub -h)")
        alice = sge.transport_for("alice")
        assert await sge.client.jobs_named(alice, name, "alice") == [job_id]
        # The same name asked for bob (alice's login may see every user's jobs): not his.
        assert await sge.client.jobs_named(alice, name, "bob") == []
        status = await sge.client.status(alice, [job_id])
        assert status[job_id].state is JobState.PENDING
    finally:
        await cancel(sge, job_id)
    # Deleted before it ran: no accounting record ever comes; after the bounded wait, GONE.
    info = await lookup_until(sge, job_id, lambda i: i.state.is_finished, "the end")
    assert (info.state, info.exit_code) == (JobState.GONE, None)
    await cancel(sge, job_id)  # again: a job Grid Engine no longer knows counts as cancelled


async def test_waiting_job_shows_the_schedulers_message(sge):
    job_id, _ = await SGE.submit(sge, "wait", "sleep 60", queue="hold.q")
    try:
        info = await lookup_until(
            sge, job_id, lambda i: "disabled" in i.reason, "the scheduler's reason"
        )
        assert info.state is JobState.PENDING and info.raw_state == "qw"
        assert 'queue instance "hold.q@sge-cn' in info.reason
    finally:
        await cancel(sge, job_id)


async def test_running_job_then_its_exit_status_from_qacct(sge):
    job_id, _ = await SGE.submit(sge, "exit3", "sleep 4; exit 3")
    info = await lookup_until(sge, job_id, lambda i: i.state is not JobState.PENDING, "start")
    if info.state is JobState.RUNNING:
        assert info.queue == "all.q"
        assert len(info.nodes) == 1 and info.nodes[0].startswith("sge-cn")
    info = await lookup_until(sge, job_id, lambda i: i.state.is_finished, "the end")
    assert (info.state, info.exit_code) == (JobState.DONE, 3)
    alice = sge.transport_for("alice")
    assert await sge.client.exit_code(alice, job_id) == 3


async def test_cancelling_a_running_job(sge):
    job_id, _ = await SGE.submit(sge, "cancel", "sleep 120")
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
    job_id, _ = await SGE.submit(sge, "pe", body, nodes=2)
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
    assert estimate.start is None  # Grid Engine gives none: the form says so
