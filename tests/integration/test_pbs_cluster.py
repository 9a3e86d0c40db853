"""The PBS adapter ('pbspro') against the test bed's real OpenPBS 23.06: alice's jobs, submitted
over SSH through hubdash's SchedulerClient, followed with its lookup (`qstat -E -x -f -F json`,
all due ids in one request), placed in the queue with the scheduler's estimated start,
cancelled, ended with their exit status from the job history; jobs on two hosts whose copies
reach the other host with `pbs_tmrsh` (hubdash.job.pbshosts), in both resource spellings; and
four real IPython-parallel engines of a two-node job, two on each host.

The cluster comes up with `scripts/testcluster up --only pbs` (a no-op when it is up).
"""

from __future__ import annotations

import asyncio
import shlex
import uuid
from datetime import datetime

import pytest

from hubdash.schedulers import pbsjson
from hubdash.schedulers.base import JobInfo, JobRequest, JobState
from hubdash.spawner.engineplan import launcher_command, launcher_template, plan_layout
from tests.conftest import JOB_PREFIX
from tests.integration.batchjobs import PATIENCE, PYTHON, BatchBed, cancel, lookup_until

pytestmark = pytest.mark.integration


def alice_jobs(qstat_json: str) -> list[tuple[str, str]]:
    """(id, name) of alice's live jobs in `qstat -f -F json`."""
    return [
        (job_id, attributes.get("Job_Name", ""))
        for job_id, attributes in pbsjson.records(qstat_json, "Jobs", "qstat")
        if attributes.get("Job_Owner", "").startswith("alice@")
    ]


PBS = BatchBed(
    scheduler="pbs",
    label="PBS",
    login="10.214.0.2",  # pbs-login, scripts/testbed/pbs.sh
    queue="workq",
    hold="#PBS -h",
    options=(("flavor", "openpbs"),),
    qstat=("qstat", "-f", "-F", "json"),
    parse=alice_jobs,
)
SCRIPT_DIR = PBS.script_dir


@pytest.fixture(scope="session")
def pbs_cluster_up():
    yield from PBS.session()


@pytest.fixture
async def pbs(pbs_cluster_up):
    cluster = PBS.cluster()
    yield cluster
    await cluster.close()


def ended(info: JobInfo) -> bool:
    """Over, and out of E (exiting: COMPLETING also counts as finished)."""
    return info.state.is_finished and info.state is not JobState.COMPLETING


async def test_held_job_waits_is_found_by_name_and_cancelled(pbs):
    job_id, name = await PBS.submit(pbs, "held", "sleep 60", hold=True)
    try:
        info = await lookup_until(pbs, job_id, lambda i: i.state is JobState.PENDING, "pending")
        assert (info.raw_state, info.queue, info.estimated_start) == ("H", "workq", None)
        alice = pbs.transport_for("alice")
        assert await pbs.client.jobs_named(alice, name, "alice") == [job_id]
        assert (await pbs.client.status(alice, [job_id]))[job_id].state is JobState.PENDING
    finally:
        await cancel(pbs, job_id)
    # Deleted before it ran: the history says so (substate 91), with no exit status.
    info = await lookup_until(pbs, job_id, ended, "the end")
    assert (info.state, info.raw_state, info.exit_code) == (JobState.CANCELLED, "F", None)
    await cancel(pbs, job_id)  # again: qdel fails ("Job has finished"), which counts as done


async def test_job_in_a_stopped_queue_says_why(pbs):
    job_id, _ = await PBS.submit(pbs, "stopq", "sleep 60", queue="hold")
    try:
        info = await lookup_until(pbs, job_id, lambda i: bool(i.reason), "the scheduler's reason")
        assert (info.state, info.queue) == (JobState.PENDING, "hold")
        assert info.reason == "Not Running: Queue not started."
    finally:
        await cancel(pbs, job_id)


@pytest.mark.timeout(360)  # two jobs waited for an estimate and two for their end (60 s each)
async def test_queued_jobs_get_estimates_and_places_behind_a_job_that_fills_the_cluster(pbs):
    alice = pbs.transport_for("alice")
    whole = {"nodes": 2, "tasks_per_node": 8, "walltime_seconds": 120}
    blocker, _ = await PBS.submit(pbs, "fill", "sleep 120", **whole)
    first, _ = await PBS.submit(pbs, "wait1", "sleep 60", **whole)
    second, _ = await PBS.submit(pbs, "wait2", "sleep 60", **whole)
    try:
        infos = {}
        for job_id in (first, second):
            infos[job_id] = await lookup_until(
                pbs, job_id, lambda i: i.estimated_start is not None, "an estimated start"
            )
            assert infos[job_id].state is JobState.PENDING
            assert infos[job_id].reason.startswith("Not Running:")
        assert infos[first].estimated_start < infos[second].estimated_start
        positions = await pbs.client.positions(alice, "workq")
        assert positions[first] < positions[second]
        # Several ids in one lookup (one server request), an unknown one among them.
        answers = await pbs.client.lookup(alice, [blocker, first, second, "999999"], "alice")
        assert answers[blocker].state in (JobState.RUNNING, JobState.PENDING)
        assert answers[second].estimated_start == infos[second].estimated_start
        assert answers["999999"].state is JobState.GONE
        # The form's estimate for a new job: behind the two waiting, as PBS estimates them.
        guess = await pbs.client.estimate_start(alice, JobRequest("x", "workq", 60))
        assert guess.start is not None and "2 jobs waiting" in guess.basis
        assert guess.start >= min(infos[second].estimated_start, datetime.now())
    finally:
        await cancel(pbs, blocker, first, second)
    for job_id in (first, second):
        info = await lookup_until(pbs, job_id, ended, "the end")
        assert info.state is JobState.CANCELLED


async def test_running_job_then_its_exit_status_from_the_history(pbs):
    job_id, _ = await PBS.submit(pbs, "exit3", "sleep 3; exit 3")
    info = await lookup_until(pbs, job_id, lambda i: i.state is not JobState.PENDING, "start")
    if info.state is JobState.RUNNING:
        assert len(info.nodes) == 1 and info.nodes[0].startswith("pbs-cn")
    info = await lookup_until(pbs, job_id, ended, "the end")
    assert (info.state, info.exit_code) == (JobState.DONE, 3)
    assert info.reason.endswith("and failed")


async def test_cancelling_a_running_job(pbs):
    alice = pbs.transport_for("alice")
    started = f"{SCRIPT_DIR}/{JOB_PREFIX}-{uuid.uuid4().hex[:8]}.started"
    job_id, _ = await PBS.submit(pbs, "cancel", f"touch {started}; sleep 120")
    try:
        await lookup_until(pbs, job_id, lambda i: i.state is JobState.RUNNING, "running")
        # The server says R as it sends the job to the MOM; a qdel that comes before the
        # MOM has started the script ends it by SIGKILL after kill_delay, which the history
        # then calls failed (265). Cancel a job that runs for real.
        for _ in range(int(PATIENCE * 2)):
            if (await alice.run(["test", "-e", started])).exit_status == 0:
                break
            await asyncio.sleep(0.5)
    finally:
        await cancel(pbs, job_id)
    info = await lookup_until(pbs, job_id, ended, "the end")
    assert (info.state, info.exit_code) == (JobState.CANCELLED, 271), info
    assert "terminated by alice" in info.reason


@pytest.mark.parametrize("spelling", ["select", "nodes"])
async def test_job_on_two_hosts_reaches_both_with_pbs_tmrsh(pbs_cluster_up, spelling):
    cluster = PBS.cluster(resource_spelling=spelling)
    alice = cluster.transport_for("alice")
    stem = f"/home/alice/{SCRIPT_DIR}/{JOB_PREFIX}-{uuid.uuid4().hex[:8]}"
    copy = ["/bin/sh", "-c", f"hostname >> {stem}.hosts"]
    spread = [PYTHON, "-m", "hubdash.job.pbshosts", "spread", "--engines", "4", "--per-node", "2"]
    body = f'echo "$PBS_JOBID" > {stem}.id\n{shlex.join([*spread, "--", *copy])}\nsleep 2'
    try:
        job_id, _ = await PBS.submit(cluster, "two", body, nodes=2, tasks_per_node=2)
        try:
            info = await lookup_until(
                cluster, job_id, lambda i: i.state is not JobState.PENDING, "start"
            )
            if info.state is JobState.RUNNING:
                assert info.nodes == ["pbs-cn1", "pbs-cn2"]
            info = await lookup_until(cluster, job_id, ended, "the end")
        finally:
            await cancel(cluster, job_id)
        assert (info.state, info.exit_code, info.nodes) == (
            JobState.DONE,
            0,
            ["pbs-cn1", "pbs-cn2"],
        )
        hosts = (await alice.read_file(f"{stem}.hosts", max_bytes=1000)).decode().split()
        assert sorted(hosts) == ["pbs-cn1", "pbs-cn1", "pbs-cn2", "pbs-cn2"]
        written = (await alice.read_file(f"{stem}.id", max_bytes=200)).decode().strip()
        assert cluster.adapter.same_job(written, job_id)
    finally:
        await cluster.close()


# The job side as a server's job runs it (hubdash.job.engines: the controller here, the
# engines through the default launcher on PBS Pro), then a client counts them by host.
ENGINES_BODY = """\
state={state}
mkdir -p "$state"
PY={python}
export IPYTHONDIR=$($PY -c "from pathlib import Path; from hubdash.job import engines as e; \\
print(e.prepare(Path('$state'), '$PBS_JOBID', 4, {{}})['IPYTHONDIR'])")
address=$($PY -c "from hubdash.job import engines as e; print(e.controller_address({{}}))")
$PY -m hubdash.job.engines run --state-dir "$state" --job-id "$PBS_JOBID" --engines 4 \\
    --address "$address" --launcher {launcher} --server-pid $$ &
for i in $(seq 120); do grep -q '"running"' "$state/engines.json" && break; sleep 0.5; done
$PY -c "import ipyparallel as ipp, socket; rc = ipp.Client(); \\
print(' '.join(sorted(rc[:].apply_sync(socket.gethostname)))); rc.close()" > "$state/hosts"
"""


async def test_four_engines_on_two_nodes_run_two_on_each_host(pbs):
    state = f"/home/alice/{SCRIPT_DIR}/{JOB_PREFIX}-{uuid.uuid4().hex[:8]}"
    layout = plan_layout(4, 2, 8)
    launcher = launcher_command(launcher_template("pbs_tmrsh"), layout, PYTHON)
    body = ENGINES_BODY.format(
        state=state, python=PYTHON, launcher=shlex.quote(shlex.join(launcher))
    )
    job_id, _ = await PBS.submit(pbs, "engines", body, nodes=2, tasks_per_node=layout.per_node)
    try:
        info = await lookup_until(pbs, job_id, ended, "the end")
    finally:
        await cancel(pbs, job_id)
    assert (info.state, info.exit_code) == (JobState.DONE, 0), info
    alice = pbs.transport_for("alice")
    hosts = (await alice.read_file(f"{state}/hosts", max_bytes=1000)).decode().split()
    assert hosts == ["pbs-cn1", "pbs-cn1", "pbs-cn2", "pbs-cn2"]
    await alice.run(["rm", "-rf", state])


async def test_queue_figures(pbs):
    alice = pbs.transport_for("alice")
    queues = await pbs.client.queue_summaries(alice)
    assert {"workq", "debug", "hold"} <= set(queues)
    assert (queues["workq"].state, queues["hold"].state) == ("up", "stopped")
    assert (queues["workq"].max_walltime, queues["debug"].max_walltime) == ("24:00:00", "1:00:00")
    assert queues["workq"].nodes_total == 2
    assert 0 <= queues["workq"].nodes_free <= 2
    assert all(type(q.jobs_pending) is int and q.jobs_pending >= 0 for q in queues.values())
    # A job in the stopped queue waits there for good: the queue's count holds it.
    job_id, _ = await PBS.submit(pbs, "count", "sleep 60", queue="hold")
    try:
        await lookup_until(pbs, job_id, lambda i: i.state is JobState.PENDING, "pending")
        held = (await pbs.client.queue_summaries(alice))["hold"]
        assert held.jobs_pending >= 1, held
    finally:
        await cancel(pbs, job_id)

    # No what-if query: the estimate comes from the queue (cluster/startguess.py). The debug
    # queue holds no job of anyone's: free nodes mean now, busy ones their walltime end.
    async def nodes_free():
        return queues["debug"].nodes_free

    guess = await pbs.client.estimate_start(alice, JobRequest("x", "debug", 60), nodes_free)
    assert guess.basis in (
        "nodes are free and no job waits in this queue",
        "the nodes are busy and the scheduler has no estimate",
    ), guess
