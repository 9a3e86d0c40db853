"""Hub restarts lose nothing: a planned restart (SIGTERM, as systemd sends) and a crash
(SIGKILL) keep every running notebook and every queued job in its place; jobs of this hub
that no server claims are swept at start; two hubs side by side never touch each other's."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from ..conftest import JOB_PREFIX
from .conftest import CHROMIUM_ARGS, log_in
from .jupyterlab import run_cell
from .test_lifecycle import HOLD_QUEUE, live_job_ids, pending_job, submit_as, wait_until_gone

DASH = "/services/hubdash/"
# The bound: both notebooks run a cell within 20 s of the hub's start. The proxy and
# the forward keeper outlive the hub, so the kernel's connection never drops: a cell runs
# while the hub is down, too. Measured delays go to artifacts/restart-*-cells.txt.
RESTARTED_CELL_SECONDS = 20


def job_state(job_id: str) -> str:
    out = subprocess.run(
        ["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=30
    )
    return out.stdout.strip()


def set_hold_partition(state: str) -> None:
    subprocess.run(
        ["scontrol", "update", "PartitionName=hold", f"State={state}"], check=True, timeout=30
    )


def no_outage_dialog(page: Page) -> None:
    """JupyterLab shows a dialog when it loses its server ("Server unavailable or
    unreachable", ipyparallel's "IPP Extension Server Error"); with the proxy and the
    forward keeper outliving the hub, it never loses it."""
    dialogs = page.locator(".jp-Dialog")
    titles = [dialogs.nth(i).get_attribute("aria-label") for i in range(dialogs.count())]
    assert not titles, f"JupyterLab lost its server during the restart: {titles}"


def run_again(page: Page, marker: str, deadline: float) -> None:
    """Run the notebook's first cell once more on the open page (no reload) and wait, until
    `deadline`, for its new output: JupyterLab queues the run until its kernel connection
    is back."""
    prompt = page.locator(".jp-InputArea-prompt").first
    before = prompt.inner_text()
    page.locator(".jp-Notebook .jp-Cell .cm-content").first.click()
    page.keyboard.press("Control+Enter")
    while time.monotonic() < deadline:
        now = prompt.inner_text()
        if now != before and "*" not in now:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"the cell did not run again in time (prompt {prompt.inner_text()})")
    expect(page.locator(".jp-OutputArea-output").first).to_contain_text(marker, timeout=1000)


# Three spawns, two JupyterLabs, a restart, the held job released (at most 180 s) and back.
@pytest.mark.timeout(1320)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_hub_restart_keeps_running_notebooks_and_a_queued_jobs_place(
    sig, make_hub, browser, artifacts
):
    hub = make_hub(HOLD_QUEUE)
    running = [("alice", "one"), ("bob", "two")]
    for user, name in running:
        hub.spawn(user, name, queue="debug", walltime="10")
    hub.spawn("alice", "queued", queue="hold", walltime="10")
    job_ids = {server: hub.wait_ready(*server)["state"]["job"]["job_id"] for server in running}
    queued_job = pending_job(hub, "alice", "queued")

    # A browser of this test's own, ended as a whole at the end: closing pages of open
    # JupyterLabs one by one has hung in the full suite.
    own = browser.browser_type.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
    contexts = {
        user: own.new_context(viewport={"width": 1280, "height": 900}) for user in ("alice", "bob")
    }
    try:
        pages = {}
        for user, name in running:
            page = contexts[user].new_page()
            console = artifacts / f"restart-{sig.name}-{user}-console.log"
            page.on("console", lambda msg, path=console: _note(path, msg.text))
            log_in(page, hub, user)
            run_cell(page, f"{hub.url}/user/{user}/{name}/lab", "print('UP', 6 * 7)", "UP 42")
            pages[(user, name)] = page
        # alice watches her queued server on its status page, as the spawn left her there.
        status = contexts["alice"].new_page()
        status.goto(f"{hub.url}{DASH}status/alice/queued")
        expect(status.locator("#status-word")).to_have_text("Queued", timeout=30_000)

        cells = artifacts / f"restart-{sig.name}-cells.txt"
        hub.stop_for_restart(sig)
        down = time.monotonic()
        # The browser's path to a notebook (proxy, forward keeper, SSH) is not the hub's.
        for (user, name), page in pages.items():
            run_again(page, "UP 42", down + RESTARTED_CELL_SECONDS)
            _note(
                cells,
                f"{user}/{name}: a cell ran {time.monotonic() - down:.1f} s after the hub "
                "stopped, while it was down",
            )
        hub.start()
        back = time.monotonic()
        for (user, name), page in pages.items():
            run_again(page, "UP 42", back + RESTARTED_CELL_SECONDS)
            _note(
                cells,
                f"{user}/{name}: a cell ran {time.monotonic() - back:.1f} s after the hub was back",
            )
        for page in pages.values():
            no_outage_dialog(page)
        hub_log = hub.log_path.read_text()
        for user, name in running:
            assert f"The forward keeper kept the tunnel of {user}:{name}" in hub_log
        for server, job_id in job_ids.items():
            assert hub.wait_ready(*server, timeout=30)["state"]["job"]["job_id"] == job_id

        # The queued job was taken up again: same id, still queued, the server starting.
        def adopted():
            """the queued server is starting again with its job"""
            model = hub.server("alice", "queued") or {}
            job = (model.get("state") or {}).get("job") or {}
            return model.get("pending") == "spawn" and job.get("job_id") == queued_job

        hub.wait_for(adopted, timeout=60)
        assert job_state(queued_job) == "PENDING"
        assert f"Adopted job {queued_job} for alice:queued" in hub.log_path.read_text()

        set_hold_partition("UP")
        try:
            status.wait_for_url(re.compile(r".*/user/alice/queued/lab.*"), timeout=180_000)
        finally:
            set_hold_partition("DOWN")
        status.screenshot(path=str(artifacts / f"restart-{sig.name}-queued-opened.png"))
        assert hub.wait_ready("alice", "queued", timeout=30)["state"]["job"]["job_id"] == queued_job
    finally:
        own.close()
    for server in [*running, ("alice", "queued")]:
        hub.stop(*server)
    for job_id in [*job_ids.values(), queued_job]:
        wait_until_gone(job_id, 30)


@pytest.mark.timeout(420)  # a spawn, a crash, a restart and the sweep
def test_a_job_of_this_hub_that_no_server_claims_is_cancelled_at_start(make_hub):
    hub = make_hub(HOLD_QUEUE)
    # alice has had a server on this hub: the sweep asks about her jobs.
    hub.spawn("alice", "swept", queue="debug", walltime="5")
    hub.wait_ready("alice", "swept")
    hub.stop("alice", "swept")
    hub.terminate(signal.SIGKILL)
    # As if the hub had died between sbatch answering and saving the job id.
    orphan = submit_as("alice", f"{JOB_PREFIX}-{hub.hub_id}-alice-lost", "hold")
    # Another hub's job of the same user is not this hub's to sweep.
    other = submit_as("alice", f"{JOB_PREFIX}-hother-alice-lost", "hold")
    try:
        hub.start()
        started = time.monotonic()
        wait_until_gone(orphan, 30)
        assert time.monotonic() - started < 30
        log = hub.log_path.read_text()
        assert re.search(rf"Cancelled orphaned job {orphan} \(\S+-alice-lost\) of alice", log), log[
            -3000:
        ]
        assert other in live_job_ids()
    finally:
        subprocess.run(["scancel", other], check=False, timeout=30)


@pytest.mark.timeout(480)  # two hubs, two spawns, two stops
def test_two_hubs_with_their_own_ids_run_the_same_server_apart(make_hub):
    hubs = [make_hub('c.JobSpawner.hub_id = "alpha"\n'), make_hub('c.JobSpawner.hub_id = "beta"\n')]
    for hub in hubs:
        hub.spawn("alice", queue="debug", walltime="10")
    jobs = [hub.wait_ready("alice")["state"]["job"] for hub in hubs]
    assert jobs[0]["job_id"] != jobs[1]["job_id"]
    assert {jobs[0]["job_id"], jobs[1]["job_id"]} <= live_job_ids()
    assert [job["state_dir"] for job in jobs] == [
        ".hubdash/servers/alpha/default",
        ".hubdash/servers/beta/default",
    ]
    for job in jobs:
        assert (Path("/home/alice") / job["state_dir"] / "connection.json").exists()
    # Neither start cancelled the other's job as a leftover of its own server.
    time.sleep(3)
    assert {jobs[0]["job_id"], jobs[1]["job_id"]} <= live_job_ids()
    for hub, job in zip(hubs, jobs, strict=True):
        hub.stop("alice")
        wait_until_gone(job["job_id"], 30)


def _note(path: Path, text: str) -> None:
    with path.open("a") as file:
        file.write(f"{time.strftime('%H:%M:%S')} {text}\n")
