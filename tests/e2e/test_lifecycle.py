"""A job's life through dropped SSH, long queues and failures; no orphaned job."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from ..conftest import JOB_PREFIX, ROOT, cluster_jobs
from .conftest import spawn_failure
from .hubprocess import Hub

# The test cluster's 'hold' partition takes jobs and never starts them.
HOLD_QUEUE = """
c.JobSpawner.queues = {
    "debug": {"max_walltime": "1:00:00", "max_nodes": 2},
    "batch": {"max_walltime": "4:00:00", "max_nodes": 2},
    "hold": {"description": "never starts", "max_walltime": "1:00:00"},
}
"""


def live_job_ids() -> set[str]:
    return {line.split()[0] for line in cluster_jobs(JOB_PREFIX)}


def wait_until_gone(job_id: str, seconds: float) -> float:
    """Seconds until the job left the queue; fails after `seconds`."""
    started = time.monotonic()
    while job_id in live_job_ids():
        assert time.monotonic() - started < seconds, f"job {job_id} still queued"
        time.sleep(0.3)
    return time.monotonic() - started


def pending_job(hub: Hub, user: str, name: str = "") -> str:
    def queued():
        """the server's job is queued"""
        server = hub.server(user, name)
        job = ((server or {}).get("state") or {}).get("job") or {}
        return job.get("job_id") if job.get("state") == "pending" else None

    return hub.wait_for(queued, timeout=60)


EXITS_AT_ONCE = (
    'c.JobSpawner.cmd = ["sh", "-c", "echo hubdash-test: this server gives up at once >&2; exit 3"]'
)


def spawn_that_fails_at_once(hub: Hub, queue: str) -> tuple[str, float]:
    """Spawn alice's server on a hub of EXITS_AT_ONCE: the failure's message, and how long
    the spawn took to fail. The server must not be left ready."""
    message, elapsed = spawn_failure(hub, "alice", queue=queue, walltime="5")
    assert "hubdash-test: this server gives up at once" in message, message
    assert not (hub.server("alice") or {}).get("ready")
    return message, elapsed


def test_job_that_exits_at_once_fails_the_spawn_with_its_last_output(make_hub):
    message, elapsed = spawn_that_fails_at_once(make_hub(EXITS_AT_ONCE), "debug")
    assert "exit code 3" in message, message
    assert elapsed < 10, f"the spawn took {elapsed:.1f} s to fail"


def test_cancelling_a_queued_spawn_removes_its_job(make_hub):
    hub = make_hub(HOLD_QUEUE)
    hub.spawn("alice", queue="hold", walltime="10")
    job_id = pending_job(hub, "alice")
    hub.stop("alice")
    assert wait_until_gone(job_id, 10) < 10
    hub.wait_for(lambda: hub.server("alice") is None, timeout=30)


def test_queue_limit_ends_the_spawn_and_removes_its_job(make_hub):
    hub = make_hub(HOLD_QUEUE + "c.JobSpawner.queue_timeout = 15\n")
    hub.spawn("alice", queue="hold", walltime="10")
    job_id = pending_job(hub, "alice")
    events = hub.progress_events("alice", timeout=60)
    assert events[-1].get("failed")
    assert "waited in the queue longer than the limit" in events[-1]["message"]
    wait_until_gone(job_id, 10)


@pytest.mark.timeout(420)  # two spawns (120 s each) and the job checks
def test_named_servers_run_separate_jobs_on_separate_queues(hub):
    hub.spawn("bob", "first", queue="debug", walltime="10")
    hub.spawn("bob", "second", queue="batch", walltime="10")
    first, second = hub.wait_ready("bob", "first"), hub.wait_ready("bob", "second")
    assert first["state"]["job"]["job_id"] != second["state"]["job"]["job_id"]
    assert {first["state"]["job"]["queue"], second["state"]["job"]["queue"]} == {"debug", "batch"}
    assert first["state"]["job"]["local_port"] != second["state"]["job"]["local_port"]
    for name, server in (("first", first), ("second", second)):
        answer = requests.get(
            f"{hub.url}{server['url']}api/status",
            headers={"Authorization": f"token {hub.token}"},
            timeout=30,
        )
        assert answer.status_code == 200, (name, answer.status_code)
    hub.stop("bob", "first")
    hub.stop("bob", "second")
    wait_until_gone(first["state"]["job"]["job_id"], 15)
    wait_until_gone(second["state"]["job"]["job_id"], 15)


@pytest.fixture
def fault_dir():
    """A folder the cluster users can read (pytest's own tmp folders are root's only)."""
    path = Path(tempfile.mkdtemp(prefix="hubdash-fault-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.timeout(360)  # hub 60 + spawn 120 + a 60 s watch + 15
def test_failing_status_command_does_not_stop_a_running_server(fault_dir, make_hub):
    # fault_dir first: set up before the hub, so it is removed only after the hub stopped.
    fault = fault_dir
    flag = fault / "fail"
    # Status commands that fail while the flag exists, and otherwise are the real ones.
    for command in ("squeue", "scontrol", "qstat", "sbatch", "scancel", "qsub", "qdel"):
        wrapper = fault / command
        wrapper.write_text(
            "#!/bin/sh\n"
            f'if [ -e {flag} ]; then echo "{command}: injected failure" >&2; exit 1; fi\n'
            f'exec /usr/bin/{command} "$@"\n'
        )
        wrapper.chmod(0o755)
    hub = make_hub(f'c.JobSpawner.scheduler_bin_dir = "{fault}"\nc.Spawner.poll_interval = 5\n')
    hub.spawn("alice", queue="debug", walltime="10")
    server = hub.wait_ready("alice")
    job_id = server["state"]["job"]["job_id"]
    flag.touch()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert (hub.server("alice") or {}).get("ready"), "the server was stopped"
            time.sleep(2)
        assert job_id in live_job_ids()
    finally:
        flag.unlink()
    hub.stop("alice")
    wait_until_gone(job_id, 15)


@pytest.mark.timeout(480)  # spawn, JupyterLab, the sshd restart, the cell again
def test_notebook_recovers_after_the_login_sshd_restarts(hub, page, artifacts):
    from .conftest import log_in
    from .jupyterlab import run_cell

    hub.spawn("alice", "sshd", queue="debug", walltime="10")
    server = hub.wait_ready("alice", "sshd")
    log_in(page, hub, "alice")
    # Each run prints a new time: only this run's output after the restart counts.
    code = "import os, time; print('JOB=' + os.environ['SLURM_JOB_ID'], 'AT', time.time_ns())"
    before = run_cell(page, f"{hub.url}/user/alice/sshd/lab", code, "JOB=")

    subprocess.run([str(ROOT / "scripts" / "testcluster"), "restart-sshd"], check=True, timeout=120)
    started = time.monotonic()
    output = page.locator(".jp-OutputArea-output").first
    page.locator(".jp-Notebook .jp-Cell .cm-content").first.click()
    page.keyboard.press("Control+Enter")
    # Same page, no reload: the cell answers again once the tunnel is back. A run sent into
    # the connection sshd dropped is lost (JupyterLab does not send it again): a user who
    # sees no answer after some seconds presses Run once more, and so does this test.
    pressed_again = False
    while (text := output.inner_text()) == before or "JOB=" not in text:
        elapsed = time.monotonic() - started
        assert elapsed < 15, f"no new output within 15 s of the sshd restart: {text!r}"
        if elapsed > 7 and not pressed_again:
            pressed_again = True
            page.keyboard.press("Control+Enter")
        time.sleep(0.2)
    page.screenshot(path=str(artifacts / "notebook-after-sshd-restart.png"))
    hub.stop("alice", "sshd")
    wait_until_gone(server["state"]["job"]["job_id"], 15)


@pytest.mark.timeout(360)  # hub + a job by hand 60 + spawn 120 + gone waits
def test_start_cancels_a_job_of_the_same_server_that_no_hub_recorded(make_hub):
    # As if a hub had died between sbatch answering and saving the job id.
    hub = make_hub(HOLD_QUEUE)
    orphan = submit_as("alice", f"{JOB_PREFIX}-{hub.hub_id}-alice-orphaned", "hold")
    assert orphan in live_job_ids()
    hub.spawn("alice", "orphaned", queue="debug", walltime="5")
    server = hub.wait_ready("alice", "orphaned")
    wait_until_gone(orphan, 10)
    assert server["state"]["job"]["job_id"] != orphan
    hub.stop("alice", "orphaned")
    wait_until_gone(server["state"]["job"]["job_id"], 15)


def submit_as(user: str, name: str, partition: str) -> str:
    """A job of `user` submitted by hand (not by any hub), 5 minutes of sleep; its id."""
    argv = ["sbatch", "--parsable", "-p", partition, "-t", "5", "-J", name, "-o", "/dev/null"]
    return subprocess.run(
        ["runuser", "-u", user, "--", *argv, "--wrap", "sleep 60"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/tmp",
        timeout=60,
    ).stdout.strip()
