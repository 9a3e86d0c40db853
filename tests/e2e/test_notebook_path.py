"""The whole path: browser → hub → SSH → batch job on a compute node → tunnel → JupyterLab."""

from __future__ import annotations

import errno
import socket
import subprocess
import time

import pytest
from playwright.sync_api import Page

from .conftest import log_in
from .jupyterlab import run_cell

SPAWN_TIMEOUT_MS = 180_000


def spawn_from_form(page: Page, hub, queue: str = "debug", walltime: str = "10", nodes: str = "1"):
    page.goto(f"{hub.url}/hub/spawn")
    page.select_option("#queue", queue)
    page.fill("#walltime", walltime)
    page.fill("#nodes", nodes)
    page.click("#spawn_form button[type=submit]")


def queued_job_ids(user: str) -> list[str]:
    out = subprocess.run(
        ["squeue", "-h", "-u", user, "-o", "%i"], capture_output=True, text=True, check=True
    )
    return out.stdout.split()


@pytest.mark.timeout(480)  # a spawn from the form (180 s) and a notebook cell in JupyterLab
def test_alice_runs_a_notebook_on_a_compute_node(page: Page, hub, artifacts):
    log_in(page, hub, "alice")
    spawn_from_form(page, hub)
    page.wait_for_url("**/user/alice/lab**", timeout=SPAWN_TIMEOUT_MS)

    state = hub.api("GET", "/users/alice").json()["servers"][""]["state"]["job"]
    job_id = state["job_id"]
    assert job_id and job_id in queued_job_ids("alice")

    text = run_cell(
        page,
        f"{hub.url}/user/alice/lab",
        "import os, socket; "
        "print('JOB=' + os.environ['SLURM_JOB_ID'], 'NODE=' + socket.gethostname())",
        "JOB=",
    )
    page.screenshot(path=str(artifacts / f"notebook-{hub.scheduler}.png"))
    fields = dict(item.split("=", 1) for item in text.split())
    assert fields["NODE"] in ("cn1", "cn2")
    assert fields["JOB"] == job_id.split(".")[0]

    # Isolation: the hub's namespace has no route to the compute node, only the tunnel does.
    with socket.socket() as sock:
        sock.settimeout(5)
        started = time.monotonic()
        code = sock.connect_ex((state["node"], state["remote_port"]))
    assert code == errno.EHOSTUNREACH, (
        f"expected 'No route to host', got {errno.errorcode.get(code)}"
    )
    assert time.monotonic() - started < 2, (
        "the connection attempt waited: a packet left the machine"
    )

    page.goto(f"{hub.url}/hub/home")
    page.click("#stop")
    deadline = time.monotonic() + 10
    while job_id in queued_job_ids("alice") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert job_id not in queued_job_ids("alice"), "the job stayed in the queue after stop"
