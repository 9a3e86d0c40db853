"""The whole path on the real schedulers beyond Slurm: OpenPBS and Son of Grid Engine, each on
its own test cluster (scripts/testcluster up --only pbs|sge). Slurm and its Torque wrappers
run the rest of the e2e suite."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from dataclasses import dataclass

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from ..conftest import KEY_DIR, KNOWN_HOSTS, ROOT
from .conftest import PORT_BASE, log_in, page_of
from .formcheck import open_form, queue_row, wait_for_queue_information
from .hubprocess import Hub
from .jupyterlab import run_cell
from .kernel import run_code
from .test_engines import ENGINES_CELL
from .test_lifecycle import EXITS_AT_ONCE, spawn_that_fails_at_once
from .test_notebook_path import SPAWN_TIMEOUT_MS, spawn_from_form

DASH = "/services/hubdash/"


@dataclass(frozen=True)
class ClusterUnderTest:
    name: str
    login: str
    queue: str
    job_variable: str  # what the scheduler tells its jobs their id is
    nodes: tuple[str, ...]
    live_command: tuple[str, ...]  # exits 0 while the job is queued or running
    port: int


CLUSTERS = {
    "pbs": ClusterUnderTest(
        "pbs", "10.214.0.2", "debug", "PBS_JOBID", ("pbs-cn1", "pbs-cn2"), ("qstat",), 300
    ),
    "sge": ClusterUnderTest(
        "sge", "10.215.0.2", "debug.q", "JOB_ID", ("sge-cn1", "sge-cn2"), ("qstat", "-j"), 400
    ),
}


def on_login(cluster: ClusterUnderTest, *argv: str) -> subprocess.CompletedProcess:
    """A command as alice on the cluster's login node (its own scheduler commands)."""
    return subprocess.run(
        [
            "ssh",
            "-i",
            str(KEY_DIR / "alice"),
            "-o",
            f"UserKnownHostsFile={KNOWN_HOSTS}",
            "-o",
            "BatchMode=yes",
            f"alice@{cluster.login}",
            *argv,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def job_is_live(cluster: ClusterUnderTest, job_id: str) -> bool:
    return on_login(cluster, *cluster.live_command, job_id).returncode == 0


def seconds_until_gone(cluster: ClusterUnderTest, job_id: str, patience: float) -> float:
    started = time.monotonic()
    while job_is_live(cluster, job_id):
        assert time.monotonic() - started < patience, f"job {job_id} still in the queue"
        time.sleep(0.3)
    return time.monotonic() - started


@pytest.fixture(scope="module", params=sorted(CLUSTERS))
def cluster_hub(request, tmp_path_factory, artifacts):
    """The cluster, up, and a hub of the demo's configuration for it."""
    cluster = CLUSTERS[request.param]
    subprocess.run(
        [str(ROOT / "scripts" / "testcluster"), "up", "--only", cluster.name],
        check=True,
        timeout=900,
    )
    hub = Hub(
        scheduler=cluster.name,
        port=PORT_BASE + cluster.port,
        data_dir=tmp_path_factory.mktemp(f"hub-{cluster.name}"),
        log_path=artifacts / f"hub-{cluster.name}.log",
    ).start()
    hub.job_ids = []  # every job the tests saw, checked gone at the end
    yield cluster, hub
    hub.stop_all_servers()
    hub.terminate()
    # Stopped jobs take a few seconds to leave (PBS's kill_delay): wait, bounded.
    deadline = time.monotonic() + 30
    left = [job for job in hub.job_ids if job_is_live(cluster, job)]
    while left and time.monotonic() < deadline:
        time.sleep(1)
        left = [job for job in left if job_is_live(cluster, job)]
    if left:
        on_login(cluster, "qdel", *left)
        pytest.fail(f"jobs of the tests left in the {cluster.name} queue: {left}")


def job_of(hub: Hub, user: str, name: str = "") -> str:
    job_id = hub.server(user, name)["state"]["job"]["job_id"]
    hub.job_ids.append(job_id)
    return job_id


@pytest.mark.timeout(600)  # a spawn from the form (180 s) and a notebook cell in JupyterLab
def test_a_notebook_runs_on_a_compute_node_and_stop_removes_its_job(
    cluster_hub, page: Page, artifacts
):
    cluster, hub = cluster_hub
    log_in(page, hub, "alice")
    spawn_from_form(page, hub, queue=cluster.queue, walltime="10", nodes="1")
    page.wait_for_url("**/user/alice/lab**", timeout=SPAWN_TIMEOUT_MS)
    job_id = job_of(hub, "alice")
    text = run_cell(
        page,
        f"{hub.url}/user/alice/lab",
        f"import os, socket; print('JOB=' + os.environ['{cluster.job_variable}'], "
        "'NODE=' + socket.gethostname())",
        "JOB=",
    )
    page.screenshot(path=str(artifacts / f"notebook-{cluster.name}.png"))
    fields = dict(item.split("=", 1) for item in text.split())
    assert fields["NODE"] in cluster.nodes
    assert fields["JOB"].split(".")[0] == job_id.split(".")[0]
    assert job_is_live(cluster, job_id)

    assert hub.stop("alice").status_code in (202, 204)
    hub.wait_for(lambda: not (hub.server("alice") or {}).get("ready"), timeout=60)
    assert seconds_until_gone(cluster, job_id, patience=10) < 10


@pytest.mark.timeout(540)  # a two-node spawn with engines (240 s), a cell over all of them (120 s)
def test_four_engines_on_two_hosts(cluster_hub):
    cluster, hub = cluster_hub
    answer = hub.spawn("alice", "engines", queue=cluster.queue, walltime="15", nodes=2, engines=4)
    assert answer.status_code in (201, 202), answer.text
    server = hub.wait_ready("alice", "engines", timeout=240)
    job_id = job_of(hub, "alice", "engines")
    job = server["state"]["job"]
    assert (job["engines"], job["engines_up"]) == (4, 4), server["state"]["history"]
    out = run_code(f"{hub.url}{server['url']}", hub.token, ENGINES_CELL, timeout=120)
    fields = dict(item.split("=", 1) for item in out.split())
    assert fields["ENGINES"] == "4"
    assert fields["HOSTS"] == ",".join(cluster.nodes)
    assert fields["MAP"] == "True"
    assert hub.stop("alice", "engines").status_code in (202, 204)
    hub.wait_for(lambda: hub.server("alice", "engines") is None, timeout=60)
    seconds_until_gone(cluster, job_id, patience=30)


def test_a_job_that_exits_at_once_fails_the_spawn_with_its_last_output(cluster_hub, make_hub):
    cluster, _ = cluster_hub
    hub = make_hub(EXITS_AT_ONCE, scheduler=cluster.name)
    _, elapsed = spawn_that_fails_at_once(hub, cluster.queue)
    assert elapsed < 10, f"the spawn took {elapsed:.1f} s to fail"


def hold_queue_of(cluster: ClusterUnderTest) -> str:
    """The test bed's queue that never starts a job (PBS: not started; SGE: disabled)."""
    return "hold" if cluster.name == "pbs" else "hold.q"


def hold_queue_config(cluster: ClusterUnderTest) -> str:
    """The demo's queues plus the test bed's queue that never starts a job."""
    hold = hold_queue_of(cluster)
    # A subconfig sees the demo's queues as a lazy value: it adds to them with update().
    return (
        f'c.JobSpawner.queues.update({{"{hold}": '
        '{"description": "never starts", "max_walltime": "1:00:00"}})\n'
    )


# a spawn (180 s), a queued job (60 s), a hub killed and restarted, the server found (90 s)
@pytest.mark.timeout(600)
def test_hub_killed_and_restarted_keeps_the_running_server_and_accounts_for_the_queued(
    cluster_hub, make_hub, tmp_path_factory
):
    cluster, _ = cluster_hub
    hold = hold_queue_of(cluster)
    data_dir = tmp_path_factory.mktemp(f"restarted-{cluster.name}")
    hub = make_hub(hold_queue_config(cluster), scheduler=cluster.name, data_dir=data_dir)
    hub.spawn("alice", "running", queue=cluster.queue, walltime="10")
    hub.spawn("alice", "queued", queue=hold, walltime="10")
    before = hub.wait_ready("alice", "running", timeout=180)
    running_job = before["state"]["job"]["job_id"]

    def queued():
        """the queued server's job waits in the hold queue"""
        job = ((hub.server("alice", "queued") or {}).get("state") or {}).get("job") or {}
        return job.get("job_id") if job.get("state") == "pending" else None

    queued_job = hub.wait_for(queued, timeout=60)
    cluster_hub[1].job_ids.extend([running_job, queued_job])  # checked gone at the end

    hub.terminate(signal.SIGKILL)
    again = make_hub(hold_queue_config(cluster), scheduler=cluster.name, data_dir=data_dir)
    again.token = hub.token
    after = again.wait_ready("alice", "running", timeout=90)
    assert after["state"]["job"]["job_id"] == running_job
    answer = requests.get(
        f"{again.url}{after['url']}api/status",
        headers={"Authorization": f"token {again.token}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.status_code

    # The queued job is re-adopted or cancelled, never forgotten: the queue and the hub agree.
    def agreed():
        """the hub's jobs are exactly the live ones of this test"""
        servers = again.api("GET", "/users/alice").json()["servers"].values()
        in_hub = {s["state"]["job"]["job_id"] for s in servers if (s.get("state") or {}).get("job")}
        live = {job for job in (running_job, queued_job) if job_is_live(cluster, job)}
        return in_hub == live and running_job in live

    again.wait_for(agreed, timeout=60)


# live queue figures, then a queued job's status page (three 60 s waits), the admin view
@pytest.mark.timeout(480)
def test_the_form_and_the_dashboard_follow_a_queued_server_until_it_is_cancelled(
    cluster_hub, make_hub, page: Page, browser: Browser, artifacts
):
    cluster, _ = cluster_hub
    hold = hold_queue_of(cluster)
    admin = 'c.Authenticator.admin_users = {"erin"}\n'
    hub = make_hub(hold_queue_config(cluster) + admin, scheduler=cluster.name)
    log_in(page, hub, "alice")

    # The form: this cluster's queues with live figures, and its own kind of estimate.
    open_form(page, hub)
    wait_for_queue_information(page)
    expect(page.locator("#hubdash-queue-status")).to_have_attribute("data-state", "loaded")
    nodes, _ = queue_row(page, cluster.queue)
    assert re.fullmatch(r"\d+ / 2", nodes), nodes
    estimate = page.locator("#hubdash-estimate")
    if cluster.name == "pbs":
        # No what-if query: a time (or none) from the queue, saying what it rests on.
        expect(estimate).to_have_attribute("data-state", re.compile(r"^(loaded|none)$"))
        expect(estimate).to_contain_text(re.compile(r"in this queue|walltime|busy"))
    else:
        expect(estimate).to_have_attribute("data-state", "none")
        expect(estimate).to_contain_text("gives no estimate")
    page.screenshot(path=str(artifacts / f"form-{cluster.name}.png"), full_page=True)

    # A server in the queue that never starts: its status page says queued, and why.
    page.goto(f"{hub.url}/hub/spawn/alice/held")
    page.select_option("#queue", hold)
    page.fill("#walltime", "10")
    page.fill("#nodes", "1")
    page.click("#spawn_form button[type=submit]")
    page.wait_for_url(f"**{DASH}status/alice/held", timeout=60_000)
    expect(page.locator("#status-word")).to_have_attribute("data-status", "queued", timeout=60_000)
    expect(page.locator('[data-detail="reason"]')).not_to_have_text("—", timeout=60_000)
    expect(page.locator('[data-detail="job_id"]')).to_have_text(re.compile(r"^\d+"))
    job_id = page.locator('[data-detail="job_id"]').inner_text()
    cluster_hub[1].job_ids.append(job_id)  # checked gone at the end
    assert job_is_live(cluster, job_id)
    page.screenshot(path=str(artifacts / f"dashboard-queued-{cluster.name}.png"))

    # The admin overview lists it with its queue and job.
    with page_of(browser, hub, "erin") as overview:
        overview.goto(f"{hub.url}{DASH}admin")
        row = overview.locator('tr[data-user="alice"][data-server="held"]')
        expect(row).to_contain_text(hold)
        expect(row).to_contain_text(job_id)
        overview.screenshot(path=str(artifacts / f"dashboard-admin-{cluster.name}.png"))

    # Cancel from My servers: the job leaves the queue.
    page.goto(f"{hub.url}{DASH}")
    card = page.locator('article[data-server="held"]')
    expect(card).to_have_attribute("data-status", "queued")
    card.get_by_role("button", name="Cancel job").click()
    page.wait_for_url(f"**{DASH}?stopped=*")
    seconds_until_gone(cluster, job_id, patience=30)
