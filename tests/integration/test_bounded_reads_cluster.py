"""On the test cluster, as a hostile user would: 20 GB files where the hub reads a job's
files, a job that prints 2 GB, a command that never stops printing, and connection files
that point the tunnel elsewhere than the job's node. The hub stays fast and small."""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace

import pytest
from traitlets.config import Config

from hubdash.job.contract import CONNECTION_FILE
from hubdash.schedulers.base import JobInfo, JobState
from hubdash.serverstate import JobRecord
from hubdash.spawner.enginestatus import read_engine_status
from hubdash.spawner.hubstate import hub_state
from hubdash.spawner.jobspawner import JobSpawner
from hubdash.spawner.spawnerror import SpawnError
from hubdash.transport.base import TransportError
from hubdash.transport.ssh import SSHTransport

from ..conftest import JOB_PREFIX, KEY_DIR, KNOWN_HOSTS, LOGIN_HOST

pytestmark = pytest.mark.integration

RSS_GROWTH_LIMIT = 50 * 1024 * 1024
QUICK = 10.0  # seconds any one bounded read may take, at most


def rss() -> int:
    """This process's resident memory, in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.fixture
async def hub(test_cluster, monkeypatch):
    """A spawner of alice's, configured as the test hub's, with its cluster and transport."""
    monkeypatch.setattr(JobSpawner, "_save_state", lambda self: None)  # no hub database here

    def make(server: str, scheduler: str = "slurm") -> SimpleNamespace:
        config = Config()
        config.JobSpawner.scheduler = scheduler
        config.JobSpawner.pbs_flavor = "slurm-torque"  # Slurm's qsub/qstat wrappers
        config.JobSpawner.login_host = LOGIN_HOST
        config.JobSpawner.known_hosts = str(KNOWN_HOSTS)
        config.JobSpawner.ssh_key_path = str(KEY_DIR / "{username}")
        config.JobSpawner.command_timeout = 20
        user = SimpleNamespace(name="alice", groups=[], url="/user/alice/", escaped_name="alice")
        row = SimpleNamespace(name=server, display_name=server, server=None, state=None)
        spawner = JobSpawner(config=config, user=user, orm_spawner=row)
        cluster = spawner.cluster
        transport = spawner.user_transport()
        return SimpleNamespace(spawner=spawner, cluster=cluster, transport=transport)

    yield make
    await hub_state(None).clusters.close()


async def wait_until_ended(transport: SSHTransport, job_id: str, patience: float = 45) -> None:
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        result = await transport.run(["squeue", "-h", "-j", job_id, "-t", "PD,R,CG", "-o", "%T"])
        if not result.stdout.strip():
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"job {job_id} still runs after {patience} s")


async def test_20_gb_files_in_a_server_folder_fail_fast_or_give_their_tail(hub):
    h = hub("bnd-big")
    folder = h.spawner.state_dir
    h.spawner.job = JobRecord(job_id="1", engines=2)
    try:
        await h.transport.run(["mkdir", "-p", folder])
        for name in (CONNECTION_FILE, "job.log", "engines.json"):
            result = await h.transport.run(["truncate", "-s", "20G", f"{folder}/{name}"])
            assert result.exit_status == 0, result.stderr
        await h.transport.read_tail(f"{folder}/job.log", max_bytes=10)  # connected, warmed up
        before = rss()

        started = time.monotonic()
        with pytest.raises(SpawnError) as caught:
            await h.spawner._read_connection_file(
                h.cluster, h.transport, f"{folder}/{CONNECTION_FILE}"
            )
        assert time.monotonic() - started < QUICK
        # The job's last lines follow (here: the sparse job.log's tail, cut short).
        assert caught.value.jupyterhub_message.startswith(
            "The connection file of job 1 is too large to read: "
            f"{folder}/{CONNECTION_FILE} on {LOGIN_HOST} is 21474836480 bytes, over the "
            "16384-byte limit for a connection file. Last lines of its output:"
        )

        started = time.monotonic()
        tail = await h.spawner._log_tail(h.transport)
        assert time.monotonic() - started < QUICK
        assert tail.endswith("more characters cut]") and len(tail) < 1100  # 64 KiB of zeros

        started = time.monotonic()
        status = await read_engine_status(
            h.transport, folder, "1", requested=2, same_job=h.cluster.adapter.same_job
        )
        assert time.monotonic() - started < QUICK
        assert status is not None and status.state == "failed"
        assert "is 21474836480 bytes, over the 16384-byte limit" in status.message

        assert rss() - before < RSS_GROWTH_LIMIT
    finally:
        await h.transport.run(["rm", "-rf", folder])


async def test_a_command_that_never_stops_printing_is_stopped_at_the_bound(hub):
    h = hub("bnd-yes")
    await h.transport.run(["true"])
    before = rss()
    started = time.monotonic()
    with pytest.raises(TransportError, match="printed more than 1048576 bytes on stdout"):
        await h.transport.run(["yes", "bnd-yes"], timeout=30)
    assert time.monotonic() - started < QUICK
    assert rss() - before < RSS_GROWTH_LIMIT
    # sshd ended it (the KILL signal, then the closed channel): nothing of it is left.
    for _ in range(20):
        left = await h.transport.run(["pgrep", "-u", "alice", "-f", "yes bnd-yes"])
        if left.exit_status == 1:
            break
        await asyncio.sleep(0.25)
    assert left.exit_status == 1, left.stdout


async def test_a_job_that_prints_2_gb_and_fails_shows_its_last_lines_quickly(hub):
    h = hub("bnd-flood")
    folder = h.spawner.state_dir
    try:
        await h.transport.run(["mkdir", "-p", folder])
        result = await h.transport.run(
            [
                "sbatch",
                "--parsable",
                "-J",
                f"{JOB_PREFIX}-bnd-flood",
                "-t",
                "5",
                "-o",
                f"{folder}/job.log",
                "--wrap",
                "yes 'a line of output' | head -c 2G; echo; echo 'error: the last words'; exit 3",
            ]
        )
        assert result.exit_status == 0, result.stderr
        job_id = result.stdout.strip()
        await wait_until_ended(h.transport, job_id)
        size = await h.transport.run(["stat", "-c", "%s", f"{folder}/job.log"])
        assert int(size.stdout) > 2 * 1024**3

        h.spawner.job = JobRecord(job_id=job_id)
        before = rss()
        started = time.monotonic()
        error = await h.spawner._job_ended_error(
            h.transport, JobInfo(job_id, JobState.FAILED, raw_state="FAILED", exit_code=3)
        )
        assert time.monotonic() - started < QUICK
        assert rss() - before < RSS_GROWTH_LIMIT
        message, _, tail = error.jupyterhub_message.partition(" Last lines of its output:\n")
        assert message == f"Job {job_id} ended before its server started (FAILED, exit code 3)."
        lines = tail.splitlines()
        assert len(lines) == 20
        assert lines[-1] == "error: the last words"
        assert set(lines[:-2]) == {"a line of output"}
    finally:
        await h.transport.run(["rm", "-rf", folder])


@pytest.fixture(params=["slurm", "pbs"])
async def running_job(hub, request):
    """A job of alice's running on cn1, and its server's spawner, watching it through the
    scheduler's own commands or through its PBS ones (the nodes from qstat's exec_host)."""
    h = hub("bnd-route", request.param)
    await h.transport.run(["mkdir", "-p", h.spawner.state_dir])
    result = await h.transport.run(
        [
            "sbatch",
            "--parsable",
            "-J",
            f"{JOB_PREFIX}-bnd-route",
            "-t",
            "2",
            "-w",
            "cn1",
            "-o",
            "/dev/null",
            "--wrap",
            "sleep 120",
        ]
    )
    assert result.exit_status == 0, result.stderr
    job_id = result.stdout.strip()
    h.spawner.job = JobRecord(job_id=job_id)
    h.cluster.monitor.track(job_id, "alice", starting=True)
    try:
        deadline = time.monotonic() + 30
        while (view := await h.cluster.monitor.refresh(job_id, timeout=10)).state is not (
            JobState.RUNNING
        ):
            assert time.monotonic() < deadline, f"job {job_id} does not run: {view}"
            await asyncio.sleep(0.5)
        yield h
    finally:
        await h.transport.run(["scancel", job_id])
        await h.transport.run(["rm", "-rf", h.spawner.state_dir])
        await wait_until_ended(h.transport, job_id)


async def write_connection(h: SimpleNamespace, host: str, port: int) -> None:
    data = {"job_id": h.spawner.job_id, "host": host, "port": port}
    await h.transport.write_file(
        f"{h.spawner.state_dir}/{CONNECTION_FILE}", json.dumps(data).encode()
    )


@pytest.mark.parametrize("host", ["login", LOGIN_HOST, "cn2", "cn2.cluster.example.org"])
async def test_a_connection_file_naming_another_host_than_the_jobs_node_fails_the_start(
    running_job, host
):
    h = running_job
    await write_connection(h, host, 8081)
    with pytest.raises(SpawnError) as caught:
        await asyncio.wait_for(h.spawner._wait_for_server_address(h.cluster, h.transport), 60)
    assert caught.value.jupyterhub_message == (
        f"Job {h.spawner.job_id} says its server listens on {host}:8081, which is not one of "
        "the job's nodes (cn1); refusing to tunnel there."
    )


async def test_a_connection_file_naming_the_jobs_node_is_its_route(running_job):
    h = running_job
    await write_connection(h, "cn1.cluster.example.org", 8081)
    address = await asyncio.wait_for(h.spawner._wait_for_server_address(h.cluster, h.transport), 60)
    assert address == ("cn1", 8081)  # the scheduler's name for the node
    await write_connection(h, "cn1", 22)
    with pytest.raises(SpawnError, match=r"cn1:22, but 22 is not an unprivileged port"):
        await h.spawner._read_connection_file(
            h.cluster, h.transport, f"{h.spawner.state_dir}/{CONNECTION_FILE}"
        )
