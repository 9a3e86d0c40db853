"""Several clusters from one hub: the demo's hub with the test bed's Slurm, OpenPBS and Grid
Engine clusters (HUBDASH_SCHEDULER=all), each a real login node and scheduler."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
from playwright.sync_api import Page, expect

from ..conftest import ROOT
from .conftest import log_in
from .formcheck import wait_for_queue_information
from .jupyterlab import run_cell
from .kernel import run_code
from .test_notebook_path import SPAWN_TIMEOUT_MS
from .test_schedulers import CLUSTERS as OTHER_CLUSTERS
from .test_schedulers import job_is_live

DASH = "/services/hubdash/"
TESTCLUSTER = str(ROOT / "scripts" / "testcluster")
# cluster -> (queue, job id variable, its compute nodes)
ON = {
    "slurm": ("debug", "SLURM_JOB_ID", ("cn1", "cn2")),
    "pbs": ("debug", "PBS_JOBID", ("pbs-cn1", "pbs-cn2")),
    "sge": ("debug.q", "JOB_ID", ("sge-cn1", "sge-cn2")),
}
TITLES = {
    "slurm": "Slurm test cluster",
    "pbs": "OpenPBS test cluster",
    "sge": "Grid Engine test cluster",
}
# Quick checks of the login nodes and queue figures: what "within one refresh" waits for.
QUICK = "c.JobSpawner.queue_info_ttl = 5\nc.JobSpawner.cluster_check_interval = 5\n"


@pytest.fixture(scope="module")
def all_clusters():
    subprocess.run([TESTCLUSTER, "up"], check=True, timeout=1200)


def slurm_job_is_live(job_id: str) -> bool:
    out = subprocess.run(
        ["squeue", "-h", "-j", job_id, "-o", "%i"], capture_output=True, text=True, timeout=30
    )
    return job_id in out.stdout.split()


def live(cluster: str, job_id: str) -> bool:
    if cluster == "slurm":
        return slurm_job_is_live(job_id)
    return job_is_live(OTHER_CLUSTERS[cluster], job_id)


def wait_gone(jobs: dict[str, str], patience: float = 60) -> None:
    """Every (cluster -> job id) has left its queue."""
    deadline = time.monotonic() + patience
    left = dict(jobs)
    while left and time.monotonic() < deadline:
        left = {c: j for c, j in left.items() if live(c, j)}
        time.sleep(1)
    assert not left, f"jobs still in their queues: {left}"


def job_and_cluster(hub, user: str, name: str) -> tuple[str, str]:
    state = hub.server(user, name)["state"]
    return state["job"]["job_id"], state["cluster"]["name"]


# a server from the form on each of three clusters (180 s each), a notebook cell on each
@pytest.mark.timeout(1620)
def test_one_server_on_each_cluster_from_the_form(all_clusters, make_hub, page: Page, artifacts):
    hub = make_hub("", scheduler="all")
    log_in(page, hub, "alice")
    jobs: dict[str, str] = {}
    try:
        for cluster, (queue, variable, nodes) in ON.items():
            name = f"on-{cluster}"
            page.goto(f"{hub.url}/hub/spawn/alice/{name}")
            page.select_option("#cluster", cluster)
            # The chosen cluster's own queues, without a reload.
            expect(page.locator(f"#queue option[value='{queue}']")).to_have_count(1)
            wait_for_queue_information(page)
            page.select_option("#queue", queue)
            page.fill("#walltime", "10")
            page.fill("#nodes", "1")
            page.screenshot(path=str(artifacts / f"clusters-form-{cluster}.png"), full_page=True)
            page.click("#spawn_form button[type=submit]")
            page.wait_for_url(f"**/user/alice/{name}/lab**", timeout=SPAWN_TIMEOUT_MS)
            job_id, saved = job_and_cluster(hub, "alice", name)
            assert saved == cluster
            jobs[cluster] = job_id
            text = run_cell(
                page,
                f"{hub.url}/user/alice/{name}/lab",
                f"import os, socket; print('JOB=' + os.environ['{variable}'], "
                "'NODE=' + socket.gethostname())",
                "JOB=",
            )
            fields = dict(item.split("=", 1) for item in text.split())
            assert fields["NODE"] in nodes, (cluster, fields)
            assert fields["JOB"].split(".")[0] == job_id.split(".")[0]

        # My servers: all three, each with its cluster.
        page.goto(f"{hub.url}{DASH}")
        for cluster in ON:
            card = page.locator(f'article[data-server="on-{cluster}"]')
            expect(card).to_have_attribute("data-cluster", cluster)
            expect(card).to_contain_text(TITLES[cluster])
        page.screenshot(path=str(artifacts / "clusters-dashboard.png"), full_page=True)
    finally:
        hub.stop_all_servers()
    wait_gone(jobs)


# three servers (240 s each), a hub killed and restarted, each found (120 s) and run again
@pytest.mark.timeout(1560)
def test_a_hub_killed_with_servers_on_every_cluster_gets_them_all_back(
    all_clusters, make_hub, tmp_path_factory
):
    data_dir = tmp_path_factory.mktemp("clusters-restart")
    hub = make_hub("", scheduler="all", data_dir=data_dir)
    jobs: dict[str, str] = {}
    try:
        for cluster, (queue, _, _) in ON.items():
            answer = hub.spawn("alice", f"k-{cluster}", cluster=cluster, queue=queue, walltime="10")
            assert answer.status_code in (201, 202), answer.text
        for cluster in ON:
            hub.wait_ready("alice", f"k-{cluster}", timeout=240)
            jobs[cluster] = job_and_cluster(hub, "alice", f"k-{cluster}")[0]

        hub.terminate(signal.SIGKILL)
        again = make_hub("", scheduler="all", data_dir=data_dir)
        again.token = hub.token
        for cluster, (_, variable, nodes) in ON.items():
            server = again.wait_ready("alice", f"k-{cluster}", timeout=120)
            assert job_and_cluster(again, "alice", f"k-{cluster}") == (jobs[cluster], cluster)
            code = f"import os, socket; print(os.environ['{variable}'], socket.gethostname())"
            out = run_code(f"{again.url}{server['url']}", again.token, code, timeout=60).split()
            assert out[0].split(".")[0] == jobs[cluster].split(".")[0] and out[1] in nodes
    finally:
        for hub_ in (locals().get("again"), hub):
            if hub_ is not None and hub_.process and hub_.process.poll() is None:
                hub_.stop_all_servers()
    wait_gone(jobs)


@pytest.mark.timeout(1020)  # sshd stopped and started again around two spawns of up to 240 s each
def test_a_cluster_whose_login_node_does_not_answer_is_unavailable_and_comes_back(
    all_clusters, make_hub, page: Page, artifacts
):
    hub = make_hub(QUICK, scheduler="all")
    log_in(page, hub, "alice")
    page.goto(f"{hub.url}/hub/spawn/alice/health")
    pbs = page.locator("#cluster option[value='pbs']")
    expect(pbs).not_to_contain_text("unavailable")
    jobs: dict[str, str] = {}
    subprocess.run([TESTCLUSTER, "stop-sshd", "--only", "pbs"], check=True, timeout=60)
    try:
        # Within one refresh of the form (5 s here), with no reload.
        expect(pbs).to_contain_text("unavailable", timeout=20_000)
        page.screenshot(path=str(artifacts / "clusters-unavailable.png"), full_page=True)

        started = time.monotonic()
        answer = hub.spawn("alice", "on-pbs", cluster="pbs", queue="debug", walltime="10")
        if answer.status_code in (201, 202):  # the failure may come after the answer
            hub.wait_for(
                lambda: not (hub.server("alice", "on-pbs") or {}).get("pending"), timeout=30
            )
        elapsed = time.monotonic() - started
        assert elapsed < 10, f"the spawn took {elapsed:.1f} s to fail"
        assert not (hub.server("alice", "on-pbs") or {}).get("ready")
        events = hub.progress_events("alice", "on-pbs", timeout=10) if answer.ok else []
        said = answer.text + " ".join(str(e.get("message", "")) for e in events)
        assert TITLES["pbs"] in said and "unavailable" in said, said

        # The other clusters are untouched.
        answer = hub.spawn("alice", "on-slurm", cluster="slurm", queue="debug", walltime="10")
        assert answer.status_code in (201, 202), answer.text
        hub.wait_ready("alice", "on-slurm", timeout=240)
        jobs["slurm"] = job_and_cluster(hub, "alice", "on-slurm")[0]
    finally:
        subprocess.run([TESTCLUSTER, "start-sshd", "--only", "pbs"], check=True, timeout=120)
    try:
        # Back by itself, no hub restart.
        expect(pbs).not_to_contain_text("unavailable", timeout=20_000)
        answer = hub.spawn("alice", "on-pbs", cluster="pbs", queue="debug", walltime="10")
        assert answer.status_code in (201, 202), answer.text
        hub.wait_ready("alice", "on-pbs", timeout=240)
        jobs["pbs"] = job_and_cluster(hub, "alice", "on-pbs")[0]
    finally:
        hub.stop_all_servers()
    wait_gone(jobs)


GROUPS = """
c.JupyterHub.load_groups = {"sge-users": {"users": ["bob"]}}
c.JobSpawner.clusters.update({"sge": {
    "title": "Grid Engine test cluster",
    "scheduler": "sge",
    "login_host": "10.215.0.2",
    "sge_parallel_environment": "mpi",
    "queues": {"debug.q": {"max_walltime": "1:00:00", "max_nodes": 2}},
    "groups": ["sge-users"],
}})
"""


def test_a_cluster_of_a_group_is_neither_shown_nor_open_to_others(
    all_clusters, make_hub, page: Page
):
    hub = make_hub(GROUPS, scheduler="all")
    log_in(page, hub, "alice")
    page.goto(f"{hub.url}/hub/spawn/alice/grouped")
    offered = page.locator("#cluster option").evaluate_all("os => os.map(o => o.value)")
    assert offered == ["slurm", "pbs"], offered

    answer = hub.spawn("alice", "grouped", cluster="sge", queue="debug.q", walltime="10")
    assert answer.status_code == 403, (answer.status_code, answer.text)
    assert "sge" in answer.json().get("message", ""), answer.text
    assert not hub.server("alice", "grouped")

    # bob is in the group: the cluster is his to choose.
    page.context.clear_cookies()
    log_in(page, hub, "bob")
    page.goto(f"{hub.url}/hub/spawn/bob/grouped")
    offered = page.locator("#cluster option").evaluate_all("os => os.map(o => o.value)")
    assert offered == ["slurm", "pbs", "sge"], offered
    expect(page.locator("#cluster")).to_be_visible()
    assert "Grid Engine" in page.locator("#cluster").inner_text()


WITHOUT_SGE = """
c.JobSpawner.clusters = {
    "slurm": {
        "title": "Slurm test cluster",
        "scheduler": "slurm",
        "login_host": "10.213.0.2",
        "queues": {"debug": {"max_walltime": "1:00:00", "max_nodes": 2}},
    },
}
"""


# a spawn (240 s), a hub killed and restarted, the job's cancel awaited (60 s)
@pytest.mark.timeout(600)
def test_a_server_of_a_cluster_removed_from_the_config_stays_visible_and_stops(
    all_clusters, make_hub, page: Page, tmp_path_factory
):
    data_dir = tmp_path_factory.mktemp("clusters-removed")
    hub = make_hub("", scheduler="all", data_dir=data_dir)
    answer = hub.spawn("alice", "gone", cluster="sge", queue="debug.q", walltime="10")
    assert answer.status_code in (201, 202), answer.text
    hub.wait_ready("alice", "gone", timeout=240)
    job_id = job_and_cluster(hub, "alice", "gone")[0]
    try:
        hub.terminate(signal.SIGKILL)  # a SIGTERM would stop the server (issue 19)
        # The same hub without its Grid Engine cluster.
        again = make_hub(WITHOUT_SGE, scheduler="all", data_dir=data_dir)
        again.token = hub.token
        assert job_and_cluster(again, "alice", "gone") == (job_id, "sge")
        assert live("sge", job_id)  # the restart left the job alone
        log_in(page, again, "alice")
        page.goto(f"{again.url}{DASH}")
        card = page.locator('article[data-server="gone"]')
        expect(card).to_contain_text("cluster no longer configured")
        # Stop still reaches the login node as saved, and cancels the job.
        assert again.stop("alice", "gone").status_code in (202, 204)
        wait_gone({"sge": job_id}, patience=60)
    finally:
        for hub_ in (locals().get("again"), hub):
            if hub_ is not None and hub_.process and hub_.process.poll() is None:
                hub_.stop_all_servers()
