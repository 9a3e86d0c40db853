"""Starting again with earlier choices, in a real browser on the test cluster: Start again on a
stopped server's card submits a job of the same size (as the scheduler sees it), a launch
link and a preset fill the form, and choices today's rules refuse are named on the form."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from ..conftest import JOB_PREFIX, cluster_jobs
from .conftest import log_in
from .hubprocess import Hub

DASH = "/services/hubdash/"
SPAWN_SECONDS = 240  # a job on two nodes, its server and two engines answering
ACCOUNTS = """
c.JobSpawner.form_extras = ["account"]
c.JobSpawner.accounts = {"alice": ["proj1", "proj2"]}
"""
QUEUES = """
c.JobSpawner.queues = {
    "debug": {"max_walltime": "1:00:00", "max_nodes": 2, "max_engines": 16},
    "batch": {"max_walltime": "4:00:00", "max_nodes": 2, "max_engines": 16},
}
"""
# The same hub after its admin removed queue batch and lowered debug's walltime limit.
NARROWER = """
c.JobSpawner.queues = {"debug": {"max_walltime": "0:20:00", "max_nodes": 2, "max_engines": 16}}
"""


def alice_jobs() -> list[str]:
    return [line.split()[0] for line in cluster_jobs(JOB_PREFIX, users=("alice",))]


def job_as_slurm_sees_it(job_id: str) -> dict[str, str]:
    """The job's partition, time limit, node count (the least asked for) and account, from
    scontrol."""
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id.split(".")[0]],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    fields = dict(re.findall(r"(\w+)=(\S*)", out))
    # A pending job's node count is the range asked for ("2-2"), a running one's the count.
    fields["NumNodes"] = fields["NumNodes"].split("-")[0]
    return {key: fields[key] for key in ("Partition", "TimeLimit", "NumNodes", "Account")}


def card(page: Page, name: str):
    return page.locator(f'article[data-server="{name}"]')


@pytest.mark.timeout(900)  # two starts of a two-node job with engines, a stop between them
def test_start_again_on_a_stopped_servers_card_submits_the_same_job(page: Page, make_hub):
    hub = make_hub(ACCOUNTS + QUEUES)
    log_in(page, hub, "alice")
    page.goto(f"{hub.url}/hub/spawn/alice/again")
    page.select_option("#queue", "batch")
    page.fill("#walltime", "1:10:00")
    page.fill("#nodes", "2")
    page.fill("#engines", "2")
    page.select_option("#account-select", "proj2")
    page.select_option("#environment", "science")  # the test bed's second module tree
    page.click("#spawn_form button[type=submit]")
    try:
        first = hub.wait_ready("alice", "again", timeout=SPAWN_SECONDS)
        # The spawn page goes on to JupyterLab by itself: leave it only once it has, or the
        # next navigation races with that one.
        page.wait_for_url("**/user/alice/again/**", timeout=60_000)
        assert first["user_options"]["environment"] == "science"
        first_job = first["state"]["job"]["job_id"]
        asked = {"Partition": "batch", "TimeLimit": "01:10:00", "NumNodes": "2", "Account": "proj2"}
        assert job_as_slurm_sees_it(first_job) == asked

        page.goto(f"{hub.url}{DASH}")
        card(page, "again").get_by_role("button", name="Stop").click()
        expect(card(page, "again")).to_have_attribute("data-status", "stopped", timeout=60_000)
        hub.wait_for(lambda: first_job not in alice_jobs(), timeout=30)

        card(page, "again").get_by_role("link", name="Start again").click()
        second = hub.wait_for(
            lambda: (
                (s := hub.server("alice", "again"))
                and s["state"].get("job", {}).get("job_id", first_job) != first_job
                and s
            ),
            timeout=60,
        )
        second_job = second["state"]["job"]["job_id"]
        # Straight into a job: no form on the way, and the scheduler has the same request.
        assert job_as_slurm_sees_it(second_job) == asked
        assert second["state"]["job"]["engines"] == 2
        assert second["user_options"] == first["user_options"]
        ready = hub.wait_ready("alice", "again", timeout=SPAWN_SECONDS)
        assert ready["state"]["job"]["engines"] == 2
    finally:
        hub.stop("alice", "again")
    hub.wait_for(lambda: not alice_jobs(), timeout=30)


def start_and_stop(hub: Hub, name: str, **options) -> None:
    """A start with these options whose job is cancelled as soon as it is submitted."""
    answer = hub.spawn("alice", name, **options)
    assert answer.status_code in (201, 202), answer.text
    hub.wait_for(lambda: (hub.server("alice", name) or {}).get("state", {}).get("job"), timeout=60)
    hub.stop("alice", name)
    hub.wait_for(lambda: not (hub.server("alice", name) or {}).get("pending"), timeout=60)
    hub.wait_for(lambda: not alice_jobs(), timeout=30)


def field_error(page: Page, name: str):
    return page.locator(f"#{name}-feedback")


@pytest.mark.timeout(600)  # two submissions, a hub restart with narrower rules
def test_launch_links_and_presets_fill_the_form_and_name_what_no_longer_fits(
    page: Page, browser, make_hub, tmp_path: Path, artifacts
):
    hub = make_hub(ACCOUNTS + QUEUES, data_dir=tmp_path)
    start_and_stop(hub, "short", queue="debug", walltime="0:45:00", nodes=1, account="proj1")
    start_and_stop(hub, "wide", queue="batch", walltime="2:00:00", nodes=2, engines=4)

    # A launch link opens the form filled in, and starts nothing.
    log_in(page, hub, "alice")
    page.goto(f"{hub.url}{DASH}")
    context = page.context
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    card(page, "short").get_by_role("button", name="Copy launch link").click()
    expect(card(page, "short").get_by_role("button", name="Link copied")).to_be_visible()
    link = page.evaluate("navigator.clipboard.readText()")
    # The server's last user_options, as the REST API start gave them.
    assert link == f"{hub.url}/hub/spawn/alice/short#" + (
        "opt-queue=debug&opt-walltime=0%3A45%3A00&opt-nodes=1&opt-account=proj1"
    )
    page.goto(link)
    expect(page.locator("#walltime")).to_have_value("0:45:00")
    expect(page.locator("#queue")).to_have_value("debug")
    expect(page.locator("#nodes")).to_have_value("1")
    expect(page.locator("#account-select")).to_have_value("proj1")
    assert not (hub.server("alice", "short") or {}).get("pending")
    assert alice_jobs() == []

    # A preset fills the form in one click: the newest first.
    presets = page.locator(".hubdash-preset")
    expect(presets).to_have_text(
        [
            "batch · 2:00:00 · 2 node(s) · 4 engines · environment base",
            "debug · 0:45:00 · 1 node(s) · account proj1 · environment base",
        ]
    )
    presets.first.click()
    expect(page.locator("#queue")).to_have_value("batch")
    expect(page.locator("#walltime")).to_have_value("2:00:00")
    expect(page.locator("#nodes")).to_have_value("2")
    expect(page.locator("#engines")).to_have_value("4")
    expect(page.locator("#hubdash-named")).to_be_hidden()

    # The admin removes batch and lowers debug's limit; the hub restarts on its database.
    hub.terminate()
    hub = make_hub(ACCOUNTS + NARROWER, data_dir=tmp_path)
    page.goto(f"{hub.url}/hub/spawn/alice/next")
    if "/hub/login" in page.url:  # the login cookie of the same hub, kept unless it expired
        log_in(page, hub, "alice")
        page.goto(f"{hub.url}/hub/spawn/alice/next")
    presets = page.locator(".hubdash-preset")
    expect(presets).to_have_count(2)
    presets.nth(0).click()  # batch, gone: the queue is left unchosen and named
    gone = "there is no queue 'batch'; choose one of: debug"
    expect(field_error(page, "queue")).to_have_text(gone)
    expect(page.locator("#queue")).to_have_value("")
    presets.nth(1).click()  # debug, 45 minutes: over the new limit, kept as chosen and named
    expect(page.locator("#walltime")).to_have_value("0:45:00")
    expect(field_error(page, "walltime")).to_have_text(
        "queue 'debug' allows at most 0:20:00 of walltime; you asked for 0:45:00"
    )
    # Start does not send a choice the hub refused, until the user changes it.
    page.click("#spawn_form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/hub/spawn/alice/next$"))
    assert alice_jobs() == []
    page.screenshot(path=str(artifacts / "relaunch-preset-named.png"), full_page=True)

    # Start again with a queue that is gone: the form comes back with the queue named.
    page.goto(f"{hub.url}{DASH}")
    card(page, "wide").get_by_role("link", name="Start again").click()
    expect(field_error(page, "queue")).to_contain_text("there is no queue 'batch'")
    expect(page.locator("#walltime")).to_have_value("2:00:00")
    assert alice_jobs() == []
    # Opened with no choices at all, the form names what of the server's last start it
    # could not keep.
    page.goto(f"{hub.url}/hub/spawn/alice/short")
    expect(page.locator("#hubdash-dropped")).to_contain_text(
        "queue 'debug' allows at most 0:20:00 of walltime; you asked for 0:45:00"
    )
