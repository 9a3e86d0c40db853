"""The dashboard service in a real browser, on a real hub and the test cluster: a queued job
shown live until it runs and opens JupyterLab, isolation between users, stop, failure."""

from __future__ import annotations

import re
import subprocess
import time
from datetime import datetime

import pytest
from playwright.sync_api import Page, expect

from ..conftest import JOB_PREFIX, cluster_jobs
from .conftest import log_in
from .hubprocess import Hub

SPAWN_TIMEOUT_MS = 240_000
LIVE_STATUS_BOUND = 20  # seconds from the job's start to the status page saying so
DASH = "/services/hubdash/"

# The dashboard reads the hub's REST API only: which scheduler runs below does not matter.
slurm_only = pytest.mark.parametrize("hub", ["slurm"], indirect=True)


def spawn_named_from_form(page: Page, hub: Hub, name: str, nodes: str = "1") -> None:
    page.goto(f"{hub.url}/hub/spawn/alice/{name}")
    page.select_option("#queue", "debug")
    page.fill("#walltime", "10")
    page.fill("#nodes", nodes)
    page.click("#spawn_form button[type=submit]")


def submit_blocker() -> str:
    """A job of bob's holding both compute nodes whole, so that the next job must queue."""
    out = subprocess.run(
        [
            "runuser", "-u", "bob", "--",
            "sbatch", "--parsable", "-N2", "--exclusive", "-p", "debug", "-t", "15",
            "-J", f"{JOB_PREFIX}-blocker", "-o", "/dev/null", "--wrap", "sleep 900",
        ],
        capture_output=True, text=True, timeout=30, cwd="/tmp", check=True,
    )  # fmt: skip
    return out.stdout.strip().split(";")[0]


def job_start_time(job_id: str) -> float | None:
    """The job's StartTime as slurmctld recorded it (whole seconds), as epoch seconds."""
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=30
    ).stdout
    match = re.search(r"StartTime=(\S+)", out)
    if not match or match.group(1) in ("Unknown", "None"):
        return None
    return datetime.fromisoformat(match.group(1)).timestamp()


def job_ids() -> set[str]:
    return {line.split()[0] for line in cluster_jobs(JOB_PREFIX)}


# a queued job followed until it runs and JupyterLab opens (240 s each), then stopped
@pytest.mark.timeout(900)
@slurm_only
def test_queued_job_is_shown_live_until_it_runs_and_opens_jupyterlab(
    page: Page, hub: Hub, artifacts
):
    seen: list[tuple[float, str]] = []  # (time, status) as the page logged it
    page.on(
        "console",
        lambda message: (
            seen.append((time.time(), message.text.split(": ", 1)[1]))
            if message.text.startswith("hubdash status: ")
            else None
        ),
    )
    blocker = submit_blocker()
    try:
        log_in(page, hub, "alice")
        spawn_named_from_form(page, hub, "dash-queue")
        # The hub's "starting" page hands over to the dashboard's live status page.
        page.wait_for_url(f"**{DASH}status/alice/dash-queue", timeout=60_000)
        status = page.locator("#status-word")
        expect(status).to_have_attribute("data-status", "queued", timeout=60_000)
        reason = page.locator('[data-detail="reason"]')
        expect(reason).not_to_have_text("—", timeout=30_000)
        expect(page.locator('[data-detail="position"]')).to_have_text(
            re.compile(r"^\d+$"), timeout=90_000
        )
        expect(page.locator('[data-detail="job_id"]')).to_have_text(re.compile(r"^\d+"))
        expect(page).to_have_title(re.compile(r"^Queued"))
        page.screenshot(path=str(artifacts / "dashboard-queued.png"))
        job_id = page.locator('[data-detail="job_id"]').inner_text()
        navigations: list[str] = []
        page.on(
            "framenavigated",
            lambda frame: navigations.append(frame.url) if frame is page.main_frame else None,
        )

        subprocess.run(["scancel", blocker], check=True, timeout=30)
        # The nodes are free now: Slurm starts the job within seconds.
        expect(status).to_have_attribute("data-status", "running", timeout=60_000)
        page.screenshot(path=str(artifacts / "dashboard-running-moment.png"))
        # Then the page itself goes on into JupyterLab: the test reloads nothing.
        page.wait_for_url("**/user/alice/dash-queue/lab**", timeout=SPAWN_TIMEOUT_MS)
        # Straight from the status page to the server: no reload on the way.
        assert "/user/alice/dash-queue/" in navigations[0], navigations
    finally:
        subprocess.run(["scancel", blocker], timeout=30)

    statuses = [status for _, status in seen]
    assert statuses.index("queued") < statuses.index("running") < statuses.index("ready")
    started = job_start_time(job_id)
    shown = next(when for when, status in seen if status == "running")
    # The figure goes to artifacts (timings belong in bench/); the bound is a correctness
    # check, far above the monitor's pace while a job starts and the page's state interval:
    # a page that lags more has missed the change and caught up by chance.
    assert started, f"job {job_id}: no StartTime from scontrol"
    (artifacts / "dashboard-running-delay.txt").write_text(
        f"job {job_id} started {started}; page showed 'running' at {shown:.3f}; "
        f"delay {shown - started:.2f} s (slurm StartTime has whole seconds)\n"
    )
    assert shown - started < LIVE_STATUS_BOUND, (
        f"the page showed 'running' {shown - started:.1f} s late"
    )

    # The running server's own status page: tunnel up, walltime counting.
    page.goto(f"{hub.url}{DASH}status/alice/dash-queue")
    expect(page.locator("#status-word")).to_have_attribute("data-status", "ready")
    expect(page.locator("#tunnel-state")).to_have_text("up", timeout=30_000)
    expect(page.locator('[data-detail="left"]')).to_have_text(re.compile(r"min"))
    page.screenshot(path=str(artifacts / "dashboard-running.png"))

    # Stop from My servers: the job leaves the queue.
    page.goto(f"{hub.url}{DASH}")
    card = page.locator('article[data-server="dash-queue"]')
    expect(card).to_have_attribute("data-status", "running")
    page.screenshot(path=str(artifacts / "dashboard-my-servers.png"))
    card.get_by_role("button", name="Stop").click()
    page.wait_for_url(f"**{DASH}?stopped=*")
    deadline = time.monotonic() + 60
    while job_id in job_ids() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert job_id not in job_ids(), "the job stayed in the queue after Stop"


@slurm_only
def test_cancel_from_my_servers_removes_a_queued_job(page: Page, hub: Hub):
    blocker = submit_blocker()
    try:
        log_in(page, hub, "alice")
        spawn_named_from_form(page, hub, "dash-cancel")
        page.wait_for_url(f"**{DASH}status/alice/dash-cancel", timeout=60_000)
        expect(page.locator("#status-word")).to_have_attribute(
            "data-status", "queued", timeout=60_000
        )
        job_id = page.locator('[data-detail="job_id"]').inner_text()
        assert job_id in job_ids()

        page.goto(f"{hub.url}{DASH}")
        card = page.locator('article[data-server="dash-cancel"]')
        expect(card).to_have_attribute("data-status", "queued")
        card.get_by_role("button", name="Cancel job").click()
        page.wait_for_url(f"**{DASH}?stopped=*")
        deadline = time.monotonic() + 60
        while job_id in job_ids() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert job_id not in job_ids(), "the job stayed in the queue after Cancel"
    finally:
        subprocess.run(["scancel", blocker], timeout=30)


@slurm_only
def test_bob_gets_403_for_alices_status_page_and_api(page: Page, hub: Hub):
    log_in(page, hub, "bob")
    for path in ("status/alice", "status/alice/dash-queue", "api/users/alice/server"):
        response = page.goto(f"{hub.url}{DASH}{path}")
        assert response.status == 403, path
    events = page.request.get(f"{hub.url}{DASH}api/users/alice/servers/x/events")
    assert events.status == 403
    # Bob's own page works: the 403s above are about whose servers, not about bob.
    assert page.goto(f"{hub.url}{DASH}status/bob").status == 200
    stop = page.request.post(f"{hub.url}{DASH}api/users/alice/server/stop")
    assert stop.status == 403


@slurm_only
def test_stop_post_without_xsrf_is_refused(page: Page, hub: Hub):
    log_in(page, hub, "alice")
    assert page.goto(f"{hub.url}{DASH}").status == 200  # logged in to the dashboard too
    response = page.request.post(f"{hub.url}{DASH}api/users/alice/servers/dash-xsrf/stop")
    assert response.status == 403
    assert "_xsrf" in response.text()


@pytest.mark.timeout(480)  # a start that fails after 15 s, followed on two pages (120 s each)
def test_failed_start_shows_the_reason_and_the_jobs_last_output(page: Page, make_hub, artifacts):
    # Fails after the hub's slow_spawn_timeout (10 s), so the hub shows its "starting" page.
    hub = make_hub(
        "c.JobSpawner.job_prologue = "
        '["sleep 15", "echo hubdash-test: this server gives up >&2", "exit 3"]'
    )
    log_in(page, hub, "alice")
    page.goto(f"{hub.url}{DASH}status/alice")  # opened before the start: it follows it
    expect(page.locator("#status-word")).to_have_attribute("data-status", "stopped")
    spawn = page.context.new_page()
    spawn.goto(f"{hub.url}/hub/spawn")
    spawn.select_option("#queue", "debug")
    spawn.fill("#walltime", "5")
    spawn.click("#spawn_form button[type=submit]")
    spawn.wait_for_url(f"**{DASH}status/alice", timeout=60_000)
    for shown in (spawn, page):
        expect(shown.locator("#status-word")).to_have_attribute(
            "data-status", "failed", timeout=120_000
        )
        expect(shown.locator("#failure-reason")).to_contain_text("exit code 3")
        expect(shown.locator("#failure-output")).to_contain_text(
            "hubdash-test: this server gives up"
        )
    spawn.screenshot(path=str(artifacts / "dashboard-failed.png"))
    # A reload after the failure still tells why.
    spawn.reload()
    expect(spawn.locator("#failure")).to_be_visible(timeout=30_000)
    expect(spawn.locator("#failure-output")).to_contain_text("this server gives up")
