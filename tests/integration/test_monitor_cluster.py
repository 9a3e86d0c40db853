"""JobMonitor on the test cluster: real jobs of alice, submitted over SSH, followed through
Slurm natively and through Slurm's Torque wrappers (qsub/qstat/qdel)."""

from __future__ import annotations

import asyncio
import uuid
from functools import partial
from pathlib import Path

import pytest

from hubdash.cluster.cluster import Cluster
from hubdash.cluster.config import ClusterConfig
from hubdash.cluster.monitor import MonitorSettings
from hubdash.metrics import commands_run
from hubdash.schedulers.base import JobState
from hubdash.transport.factory import LoginSettings, UserKeys
from tests.conftest import JOB_PREFIX
from tests.monitor_views import view_once

pytestmark = pytest.mark.integration

LOGIN_HOST = "10.213.0.2"
KEYS = Path("/etc/hubdash-testcluster/keys")
KNOWN_HOSTS = "/etc/hubdash-testcluster/known_hosts"
# Quick rounds so a test sees each state; the waits below are upper bounds, not timings.
QUICK = MonitorSettings(interval=0.5, starting_interval=0.3, detail_interval=1.0, jitter=0.1)
PATIENCE = 60.0
SCRIPT_DIR = ".hubdash-it-monitor"


@pytest.fixture(params=["slurm", "pbs"])
async def cluster(request, test_cluster):
    options = {"flavor": "slurm-torque"} if request.param == "pbs" else {}

    config = ClusterConfig(
        name=f"it-{request.param}-{uuid.uuid4().hex[:4]}",  # its own metrics labels
        login=LoginSettings(host=LOGIN_HOST, known_hosts=KNOWN_HOSTS),
        scheduler=request.param,
        scheduler_options=tuple(options.items()),
        monitor=QUICK,
    )
    cluster = Cluster(config)
    cluster.transport_for("alice", UserKeys(key_files=(str(KEYS / "alice"),)))
    yield cluster
    await cluster.close()


async def submit_held(cluster: Cluster, seconds: int) -> str:
    """A held `sleep` job of alice's, named for this test session, submitted over SSH."""
    alice = cluster.transport_for("alice")
    name = f"{JOB_PREFIX}-mon-{uuid.uuid4().hex[:6]}"
    script = f"{SCRIPT_DIR}/{name}.sh"
    await alice.write_file(script, f"#!/bin/bash\nsleep {seconds}\n".encode(), mode=0o700)
    if cluster.adapter.name == "slurm":
        argv = ["sbatch", "--parsable", "--hold", "-J", name, "-t", "2", "-o", "/dev/null"]
    else:
        argv = ["qsub", "-h", "-N", name, "-l", "walltime=0:02:00", "-j", "oe", "-o", "/dev/null"]
    result = await alice.run([*argv, script])
    assert result.exit_status == 0, result.stderr
    return cluster.adapter.parse_submit(result.stdout)


async def release(cluster: Cluster, job_id: str) -> None:
    argv = ["scontrol", "release", job_id] if cluster.adapter.name == "slurm" else ["qrls", job_id]
    result = await cluster.transport_for("alice").run(argv)
    assert result.exit_status == 0, result.stderr


# The view of a job once a check holds (see tests/monitor_views.py).
until = partial(view_once, patience=PATIENCE, poll=1.0)


async def test_monitor_follows_a_real_job_from_pending_to_done(cluster):
    job_id = await submit_held(cluster, seconds=2)
    monitor = cluster.monitor
    try:
        monitor.track(job_id, "alice")
        view = await until(monitor, job_id, lambda v: v.state is JobState.PENDING, "PENDING")
        assert view.info.queue == "debug"
        await release(cluster, job_id)
        view = await until(monitor, job_id, lambda v: v.state is not JobState.PENDING, "start")
        assert view.state in (JobState.RUNNING, JobState.COMPLETING, JobState.DONE)
        view = await until(monitor, job_id, lambda v: v.finished, "the end")
        assert view.state is JobState.DONE
        assert view.failures == 0 and not view.unknown
    finally:
        await cluster.client.cancel(cluster.transport_for("alice"), [job_id])
    asked = commands_run(cluster.name)
    assert set(asked) - {"sbatch", "qsub", "scancel", "qdel"} <= {"scontrol", "squeue", "qstat"}


async def test_cancelled_job_ends_in_the_monitor_and_is_not_asked_about_again(cluster):
    job_id = await submit_held(cluster, seconds=60)
    monitor = cluster.monitor
    monitor.track(job_id, "alice")
    try:
        await until(monitor, job_id, lambda v: v.state is JobState.PENDING, "PENDING")
    finally:
        await cluster.client.cancel(cluster.transport_for("alice"), [job_id])
    view = await until(monitor, job_id, lambda v: v.finished, "the end")
    assert view.state in (JobState.CANCELLED, JobState.DONE, JobState.GONE)
    checks = view.checks
    await asyncio.sleep(3 * QUICK.interval)
    assert monitor.get(job_id).checks == checks


async def test_queue_position_of_a_pending_job(cluster):
    job_id = await submit_held(cluster, seconds=2)
    monitor = cluster.monitor
    monitor.track(job_id, "alice")
    try:
        if cluster.adapter.position_command("debug") is not None:
            view = await until(
                monitor, job_id, lambda v: v.info is not None and v.info.position, "a position"
            )
            assert view.info.position >= 1
        else:
            # Slurm's Torque wrappers tell no place in the queue: the monitor shows none
            # and makes none up, round after round (detail_interval is 1 s here).
            await until(monitor, job_id, lambda v: v.state is JobState.PENDING, "PENDING")
            await asyncio.sleep(3 * QUICK.detail_interval)
            view = monitor.get(job_id)
            assert view.state is JobState.PENDING and view.info.position is None, view
    finally:
        await cluster.client.cancel(cluster.transport_for("alice"), [job_id])


@pytest.mark.timeout(780)  # six jobs, each waited for pending and then ended (60 s each)
async def test_many_jobs_of_one_user_are_followed_with_one_query_a_round(cluster):
    job_ids = [await submit_held(cluster, seconds=60) for _ in range(6)]
    monitor = cluster.monitor
    try:
        for job_id in job_ids:
            monitor.track(job_id, "alice")
        for job_id in job_ids:
            await until(monitor, job_id, lambda v: v.state is JobState.PENDING, "PENDING")
        asked = commands_run(cluster.name)
        assert "scontrol" not in asked  # squeue -u (Slurm) or one qstat -f (PBS) for all
    finally:
        await cluster.client.cancel(cluster.transport_for("alice"), job_ids)
    for job_id in job_ids:
        await until(monitor, job_id, lambda v: v.finished, "the end")
