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
import subprocess
import uuid
from collections.abc import Callable

import pytest

from hubdash.cluster.cluster import Cluster
from hubdash.cluster.config import ClusterConfig
from hubdash.schedulers import pbsjson
from hubdash.schedulers.base import JobInfo, JobRequest, JobState
from hubdash.spawner.engineplan import launcher_command, launcher_template, plan_layout
from hubdash.transport.factory import LoginSettings, UserKeys
from tests.conftest import JOB_PREFIX, KEY_DIR, KNOWN_HOSTS, ROOT

pytestmark = pytest.mark.integration

PBS_LOGIN = "10.214.0.2"  # pbs-login, scripts/testbed/pbs.sh
SCRIPT_DIR = ".hubdash-it-pbs"
PYTHON = "/opt/hubdash/venv/bin/python"  # what jobs run; the package installed there
PATIENCE = 60.0
SSH = ["ssh", "-i", str(KEY_DIR / "alice"), "-o", f"UserKnownHostsFile={KNOWN_HOSTS}",
       "-o", "BatchMode=yes", f"alice@{PBS_LOGIN}"]  # fmt: skip


def _alice_jobs() -> list[str]:
    """'id name' of alice's live jobs of this test session, from qstat over SSH."""
    out = subprocess.run(
        [*SSH, "qstat", "-f", "-F", "json"], capture_output=True, text=True, timeout=30, check=True
    )
    return [
        f"{job_id} {attributes.get('Job_Name', '')}"
        for job_id, attributes in pbsjson.records(out.stdout, "Jobs", "qstat")
        if attributes.get("Job_Name", "").endswith(f"-{JOB_PREFIX}")
        and attributes.get("Job_Owner", "").startswith("alice@")
    ]


@pytest.fixture(scope="session")
def pbs_cluster_up():
    subprocess.run(
        [str(ROOT / "scripts" / "testcluster"), "up", "--only", "pbs"], check=True, timeout=900
    )
    yield
    # This session's scripts, logs and host lists go; other sessions' stay.
    subprocess.run(
        [*SSH, f"rm -f {SCRIPT_DIR}/*-{JOB_PREFIX}.* {SCRIPT_DIR}/{JOB_PREFIX}-*"], timeout=30
    )
    # Every job of these tests ends or is cancelled by them: none may be left.
    left = _alice_jobs()
    if left:
        subprocess.run([*SSH, "qdel", *[entry.split()[0] for entry in left]], timeout=30)
        pytest.fail("PBS jobs of the tests left in the queue: " + "; ".join(left))


def make_cluster(**options: str) -> Cluster:
    config = ClusterConfig(
        name=f"it-pbs-{uuid.uuid4().hex[:4]}",
        login=LoginSettings(host=PBS_LOGIN, known_hosts=str(KNOWN_HOSTS)),
        scheduler="pbs",
        scheduler_options=tuple(sorted({"flavor": "openpbs", **options}.items())),
    )
    cluster = Cluster(config)
    cluster.transport_for("alice", UserKeys(key_files=(str(KEY_DIR / "alice"),)))
    return cluster


@pytest.fixture
async def pbs(pbs_cluster_up):
    cluster = make_cluster()
    yield cluster
    await cluster.close()


def job_name(what: str) -> str:
    return f"hd-{what}-{uuid.uuid4().hex[:4]}-{JOB_PREFIX}"


async def submit(
    cluster: Cluster, what: str, body: str, *, hold: bool = False, **resources
) -> tuple[str, str]:
    """A job of alice's: the adapter's `#PBS` lines (plus `-h`), then `body`; submitted with
    SchedulerClient.submit. Returns (job id, job name)."""
    alice = cluster.transport_for("alice")
    name = job_name(what)
    request = JobRequest(
        job_name=name,
        queue=resources.pop("queue", "workq"),
        walltime_seconds=resources.pop("walltime_seconds", 300),
        output_path=f"{SCRIPT_DIR}/{name}.log",
        **resources,
    )
    lines = ["#!/bin/bash", *cluster.adapter.directives(request)]
    lines += ["#PBS -h"] if hold else []
    script = f"{SCRIPT_DIR}/{name}.sh"
    await alice.run(["mkdir", "-p", SCRIPT_DIR])
    await alice.write_file(script, ("\n".join([*lines, body]) + "\n").encode(), mode=0o700)
    return await cluster.client.submit(alice, script, request), name


async def lookup_until(
    cluster: Cluster, job_id: str, check: Callable[[JobInfo], bool], what: str
) -> JobInfo:
    """The lookup's answer (`qstat -E -x -f -F json ID`) once `check` holds."""
    alice = cluster.transport_for("alice")
    deadline = asyncio.get_running_loop().time() + PATIENCE
    while True:
        info = (await cluster.client.lookup(alice, [job_id], "alice"))[job_id]
        if check(info):
            return info
        assert asyncio.get_running_loop().time() < deadline, f"never saw {what}; last: {info}"
        await asyncio.sleep(0.5)


def ended(info: JobInfo) -> bool:
    """Over, and out of E (exiting: COMPLETING also counts as finished)."""
    return info.state.is_finished and info.state is not JobState.COMPLETING


async def cancel(cluster: Cluster, *job_ids: str) -> None:
    await cluster.client.cancel(cluster.transport_for("alice"), list(job_ids))


async def test_held_job_waits_is_found_by_name_and_cancelled(pbs):
    job_id, name = await submit(pbs, "held", "sleep 60", hold=True)
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
    job_id, _ = await submit(pbs, "stopq", "sleep 60", queue="hold")
    try:
        info = await lookup_until(pbs, job_id, lambda i: bool(i.reason), "the scheduler's reason")
        assert (info.state, info.queue) == (JobState.PENDING, "hold")
        assert info.reason == "Not Running: Queue not started."
    finally:
        await cancel(pbs, job_id)


async def test_queued_jobs_get_estimates_and_places_behind_a_job_that_fills_the_cluster(pbs):
    alice = pbs.transport_for("alice")
    whole = {"nodes": 2, "tasks_per_node": 8, "walltime_seconds": 120}
    blocker, _ = await submit(pbs, "fill", "sleep 120", **whole)
    first, _ = await submit(pbs, "wait1", "sleep 60", **whole)
    second, _ = await submit(pbs, "wait2", "sleep 60", **whole)
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
    finally:
        await cancel(pbs, blocker, first, second)
    for job_id in (first, second):
        info = await lookup_until(pbs, job_id, ended, "the end")
        assert info.state is JobState.CANCELLED


async def test_running_job_then_its_exit_status_from_the_history(pbs):
    job_id, _ = await submit(pbs, "exit3", "sleep 3; exit 3")
    info = await lookup_until(pbs, job_id, lambda i: i.state is not JobState.PENDING, "start")
    if info.state is JobState.RUNNING:
        assert len(info.nodes) == 1 and info.nodes[0].startswith("pbs-cn")
    info = await lookup_until(pbs, job_id, ended, "the end")
    assert (info.state, info.exit_code) == (JobState.DONE, 3)
    assert info.reason.endswith("and failed")


async def test_cancelling_a_running_job(pbs):
    alice = pbs.transport_for("alice")
    started = f"{SCRIPT_DIR}/{JOB_PREFIX}-{uuid.uuid4().hex[:8]}.started"
    job_id, _ = await submit(pbs, "cancel", f"touch {started}; sleep 120")
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
    cluster = make_cluster(resource_spelling=spelling)
    alice = cluster.transport_for("alice")
    stem = f"/home/alice/{SCRIPT_DIR}/{JOB_PREFIX}-{uuid.uuid4().hex[:8]}"
    copy = ["/bin/sh", "-c", f"hostname >> {stem}.hosts"]
    spread = [PYTHON, "-m", "hubdash.job.pbshosts", "spread", "--engines", "4", "--per-node", "2"]
    body = f'echo "$PBS_JOBID" > {stem}.id\n{shlex.join([*spread, "--", *copy])}\nsleep 2'
    try:
        job_id, _ = await submit(cluster, "two", body, nodes=2, tasks_per_node=2)
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
    job_id, _ = await submit(pbs, "engines", body, nodes=2, tasks_per_node=layout.per_node)
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
    assert queues["workq"].jobs_pending is not None
    # PBS has no what-if query: the form says it has no estimate before submitting.
    assert await pbs.client.estimate_start(alice, JobRequest("x", "workq", 60)) is None
