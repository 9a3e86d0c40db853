"""IPython-parallel engines: the count the form asked for, ready in the notebook, gone at stop."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page

from .conftest import log_in
from .hubprocess import Hub
from .jupyterlab import run_cell

SPAWN_TIMEOUT_MS = 240_000
# Named servers: their own state folders, so this test's jobs never share files with others.
ENGINES_SERVER = "e2e-engines"
NO_ENGINES_SERVER = "e2e-no-engines"
ENGINE_COMMAND = "/opt/hubdash/venv/bin/python -m ipyparallel.engine "  # not srun's own line

# One line: typed into the editor, a multi-line cell would meet its auto-indent.
ENGINES_CELL = (
    "import ipyparallel as ipp, socket; rc = ipp.Client(); "
    "hosts = sorted(set(rc[:].apply_sync(socket.gethostname))); "
    "squares = rc.load_balanced_view().map_sync(lambda x: x * x, range(100)); "
    "print('ENGINES=%d' % len(rc.ids), 'HOSTS=' + ','.join(hosts), "
    "'MAP=%s' % (squares == [x * x for x in range(100)]))"
)


def job_processes(job_id: str) -> dict[int, str]:
    """Command lines of every process on the cluster's nodes that belongs to this Slurm job.

    The nodes' processes are visible from here; a job's processes, engine steps included,
    carry its SLURM_JOB_ID.
    """
    wanted = f"SLURM_JOB_ID={job_id.split('.')[0]}".encode()
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if wanted not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # ended meanwhile, or not ours to read
        found[int(proc.name)] = cmdline.strip()
    return found


def parallel_processes(job_id: str) -> dict[int, str]:
    return {
        pid: cmd
        for pid, cmd in job_processes(job_id).items()
        if "ipyparallel" in cmd or "hubdash.job.engines" in cmd
    }


def wait_for_no_parallel_processes(job_id: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while parallel_processes(job_id) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = parallel_processes(job_id)
    assert not left, f"processes of job {job_id} left after stop: {left}"


# a two-node spawn with engines (240 s), a notebook cell, the engines gone (60 s)
@pytest.mark.timeout(660)
def test_notebook_client_sees_the_requested_engines_on_both_nodes(page: Page, hub: Hub, artifacts):
    assert os.geteuid() == 0, "reading the job's processes needs root"
    log_in(page, hub, "alice")
    page.goto(f"{hub.url}/hub/spawn/alice/{ENGINES_SERVER}")
    page.select_option("#queue", "debug")
    page.fill("#walltime", "15")
    page.fill("#nodes", "2")
    page.fill("#engines", "4")
    page.click("#spawn_form button[type=submit]")
    page.wait_for_url(f"**/user/alice/{ENGINES_SERVER}/lab**", timeout=SPAWN_TIMEOUT_MS)

    state = hub.server("alice", ENGINES_SERVER)["state"]
    job = state["job"]
    job_id = job["job_id"]
    assert (job["engines"], job["engines_up"], job["engines_state"]) == (4, 4, "running")
    steps = [step["message"] for step in state["history"] if step["phase"] == "engines"]
    assert steps and steps[-1] == "All 4 parallel engines are up", state["history"]

    running = parallel_processes(job_id)
    assert any("ipyparallel.controller" in cmd for cmd in running.values()), running
    engines = [cmd for cmd in running.values() if cmd.startswith(ENGINE_COMMAND)]
    assert len(engines) == 4, running

    text = run_cell(page, f"{hub.url}/user/alice/{ENGINES_SERVER}/lab", ENGINES_CELL, "ENGINES=")
    page.screenshot(path=str(artifacts / f"engines-{hub.scheduler}.png"))
    fields = dict(item.split("=", 1) for item in text.split())
    assert fields["ENGINES"] == "4"
    assert fields["HOSTS"] == "cn1,cn2"
    assert fields["MAP"] == "True"

    assert hub.stop("alice", ENGINES_SERVER).status_code in (202, 204)
    hub.wait_for(lambda: hub.server("alice", ENGINES_SERVER) is None, timeout=60)
    wait_for_no_parallel_processes(job_id)


def test_server_without_engines_starts_nothing_of_ipyparallel(hub: Hub):
    answer = hub.spawn("alice", NO_ENGINES_SERVER, queue="debug", walltime="10", nodes=1, engines=0)
    assert answer.status_code in (201, 202), answer.text
    server = hub.wait_ready("alice", NO_ENGINES_SERVER, timeout=180)
    job_id = server["state"]["job"]["job_id"]
    try:
        processes = job_processes(job_id)
        assert any("jupyterhub-singleuser" in cmd for cmd in processes.values()), processes
        assert not parallel_processes(job_id), processes
        assert server["state"]["job"]["engines_up"] == 0
    finally:
        hub.stop("alice", NO_ENGINES_SERVER)
        hub.wait_for(lambda: hub.server("alice", NO_ENGINES_SERVER) is None, timeout=60)
