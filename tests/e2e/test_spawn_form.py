"""The spawn form in Chromium: limits, refusals that keep entries, live queue figures, spawns."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import Page, expect

from ..conftest import JOB_PREFIX, cluster_jobs
from .conftest import log_in
from .formcheck import (
    open_form,
    queue_row,
    rpc_counts,
    rpc_delta,
    scheduler_commands,
    wait_for_queue_information,
)
from .hubprocess import Hub


def submit_unchecked(page: Page) -> None:
    """Send the form as a crafted request would: without the browser's own checks."""
    page.evaluate("document.getElementById('spawn_form').noValidate = true")
    page.click("#spawn_form button[type=submit]")
    page.wait_for_load_state()


def alice_jobs() -> list[str]:
    return [line.split()[0] for line in cluster_jobs(JOB_PREFIX, users=("alice",))]


@contextmanager
def alice_server_started_from_the_form(page: Page, hub: Hub) -> Iterator[dict]:
    """Press Start on the filled-in form and give alice's server model once it is ready.

    Afterwards the server is stopped even if the test failed; when it passed, its job must
    also have left the queue, so the next test starts from an empty queue."""
    page.click("#spawn_form button[type=submit]")
    try:
        yield hub.wait_ready("alice", timeout=180)
    finally:
        hub.stop("alice")
    hub.wait_for(lambda: not alice_jobs(), timeout=30)


def test_walltime_over_the_limit_is_flagged_next_to_the_field_and_the_entries_stay(
    page: Page, hub: Hub, artifacts
):
    log_in(page, hub, "alice")
    open_form(page, hub)
    page.select_option("#queue", "debug")
    page.fill("#nodes", "2")
    page.fill("#engines", "3")
    page.fill("#walltime", "2:00:00")
    # In the browser: a hint next to the field at once, and Start does not send the form.
    feedback = page.locator("#walltime-feedback")
    expect(feedback).to_be_visible()
    expect(feedback).to_contain_text("at most 1:00:00")
    page.click("#spawn_form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/hub/spawn$"))

    # On the hub, the same rule: the refused form comes back with its entries and the error.
    submit_unchecked(page)
    expect(feedback).to_have_text(
        "queue 'debug' allows at most 1:00:00 of walltime; you asked for 2:00:00"
    )
    expect(page.locator("#walltime")).to_have_value("2:00:00")
    expect(page.locator("#nodes")).to_have_value("2")
    expect(page.locator("#engines")).to_have_value("3")
    expect(page.locator("#queue")).to_have_value("debug")
    expect(page.locator(".spawn-error-msg")).to_contain_text("Please correct the form")
    page.screenshot(path=str(artifacts / f"form-refused-{hub.scheduler}.png"), full_page=True)
    assert not (hub.server("alice") or {}).get("pending")
    assert alice_jobs() == []


def test_a_queue_reserved_for_bob_is_refused_to_alice_however_she_asks(page: Page, hub: Hub):
    log_in(page, hub, "alice")
    open_form(page, hub)
    offered = page.locator("#queue option").evaluate_all("options => options.map(o => o.value)")
    assert "batch" not in offered and "debug" in offered

    # A crafted POST: the option added by hand, the browser's checks off.
    page.evaluate("document.getElementById('queue').add(new Option('batch', 'batch', true, true))")
    page.fill("#walltime", "45")
    submit_unchecked(page)
    expect(page.locator("#queue-feedback")).to_contain_text("you may not submit to queue 'batch'")
    expect(page.locator("#walltime")).to_have_value("45")

    # An opt- URL: the same rule, the form shown with the URL's entries.
    page.goto(f"{hub.url}/hub/spawn?opt-queue=batch&opt-walltime=30&opt-nodes=2")
    expect(page.locator("#queue-feedback")).to_contain_text("you may not submit to queue 'batch'")
    expect(page.locator("#walltime")).to_have_value("30")
    expect(page.locator("#nodes")).to_have_value("2")
    assert not (hub.server("alice") or {}).get("pending")
    assert alice_jobs() == []


@pytest.mark.timeout(420)  # a spawn (180 s), its job gone (30 s), two more form loads
def test_a_valid_form_spawns_and_the_next_form_starts_from_those_choices(page: Page, hub: Hub):
    log_in(page, hub, "alice")
    open_form(page, hub)
    page.select_option("#queue", "debug")
    page.fill("#walltime", "10")
    page.fill("#nodes", "1")
    page.fill("#engines", "0")
    with alice_server_started_from_the_form(page, hub) as server:
        job_id = server["state"]["job"]["job_id"]
        assert job_id in alice_jobs()
        assert server["user_options"] == {
            "queue": "debug",
            "walltime": "0:10:00",
            "nodes": 1,
            "engines": 0,
            "environment": "base",  # the demo config's default (examples/demo_config.py)
        }
        limit = subprocess.run(
            ["squeue", "-h", "-j", job_id.split(".")[0], "-o", "%l"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert limit == "10:00"
    hub.wait_for(lambda: not (hub.server("alice") or {}).get("pending"), timeout=30)

    # After the stop, the form starts from the last choices (walltime normalised) ...
    open_form(page, hub)
    expect(page.locator("#walltime")).to_have_value("0:10:00")
    # ... and so does a new named server, from the user's latest choices elsewhere.
    open_form(page, hub, "/hub/spawn/alice/fresh")
    expect(page.locator("#walltime")).to_have_value("0:10:00")


def test_the_form_shows_live_queue_figures_and_a_start_estimate(page: Page, hub: Hub, artifacts):
    log_in(page, hub, "alice")
    open_form(page, hub)
    page.screenshot(path=str(artifacts / f"form-live-{hub.scheduler}.png"), full_page=True)
    expect(page.locator("#hubdash-queue-status")).to_have_attribute("data-state", "loaded")
    nodes, waiting = queue_row(page, "debug")
    assert re.fullmatch(r"\d+ / [1-9]\d*", nodes), nodes
    estimate = page.locator("#hubdash-estimate")
    if hub.scheduler == "slurm":
        assert re.fullmatch(r"\d+", waiting), waiting
        expect(estimate).to_have_attribute("data-state", "loaded")
        expect(estimate).to_contain_text("Estimated start:")
    else:
        # Slurm's qstat -Q -f wrapper prints no job counts; no PBS flavor gives estimates.
        assert re.fullmatch(r"\d+|n/a", waiting), waiting
        expect(estimate).to_have_attribute("data-state", "none")
    # A choice the queue cannot take gets a hint, not a scheduler query.
    page.fill("#nodes", "5")
    expect(estimate).to_have_attribute("data-state", "invalid")


def test_a_second_load_within_the_cache_time_costs_no_scheduler_query(
    page: Page, make_hub, hub: Hub
):
    # A hub of its own, so that its cache starts empty and outlives the test.
    own = make_hub("c.JobSpawner.queue_info_ttl = 600", scheduler=hub.scheduler)
    commands, rpcs = scheduler_commands(own), rpc_counts()
    log_in(page, own, "alice")
    open_form(page, own)
    first = rpc_delta(rpcs, rpc_counts())
    assert scheduler_commands(own) - commands >= 2  # queues (+ detail) [+ estimate]
    assert first["REQUEST_NODE_INFO"] >= 1, first  # sinfo / pbsnodes reached slurmctld
    if hub.scheduler == "slurm":
        assert first["REQUEST_JOB_WILL_RUN"] >= 1, first  # sbatch --test-only

    # Later loads within the cache time: the hub runs nothing (its own count is exact) ...
    commands = scheduler_commands(own)
    quiet = []
    for _attempt in range(5):
        before = rpc_counts()
        open_form(page, own)
        quiet.append(rpc_delta(before, rpc_counts()))
        assert scheduler_commands(own) == commands
        expect(page.locator("#hubdash-queue-status")).to_have_attribute("data-state", "loaded")
        # ... and slurmctld saw no such RPC at all during a load (other sessions share the
        # cluster: a load that coincided with theirs is tried again).
        if not quiet[-1]["REQUEST_NODE_INFO"] and not quiet[-1]["REQUEST_JOB_WILL_RUN"]:
            print(f"RPCs of the first load: {first}; of the later ones: {quiet}")
            break
        time.sleep(1)
    else:
        raise AssertionError(f"slurmctld got RPCs of these kinds during every load: {quiet}")


def test_the_form_works_and_says_so_when_the_scheduler_cannot_be_reached(
    page: Page, make_hub, artifacts
):
    # Nothing listens on this port of the login node: every SSH connection is refused.
    down = make_hub("c.JobSpawner.login_port = 2222")
    log_in(page, down, "alice")
    page.goto(f"{down.url}/hub/spawn")
    wait_for_queue_information(page)
    status = page.locator("#hubdash-queue-status")
    expect(status).to_have_attribute("data-state", "unavailable")
    expect(status).to_contain_text("unavailable")
    expect(status).to_contain_text("You can still start a server")
    expect(page.locator("#hubdash-estimate")).to_have_attribute("data-state", "unavailable")
    assert queue_row(page, "debug") == ("—", "—")
    page.screenshot(path=str(artifacts / "form-scheduler-unreachable.png"), full_page=True)
    # The form itself is whole: fields, limits and the Start button.
    page.fill("#walltime", "20")
    expect(page.locator("#walltime-feedback")).to_be_hidden()
    expect(page.locator("#queue-limits")).to_contain_text("walltime up to 1:00:00")
    expect(page.locator("#spawn_form button[type=submit]")).to_be_enabled()


EXTRAS = """
c.JobSpawner.form_extras = ["account", "memory", "gpus"]
c.JobSpawner.accounts = {"alice": ["proj1", "proj2"]}
c.JobSpawner.queues = {
    "debug": {"max_walltime": "1:00:00", "max_nodes": 2, "max_memory": "16G"},
    "batch": {"max_walltime": "24:00:00", "max_nodes": 2, "max_gpus": 1},
}
"""


@pytest.mark.timeout(420)  # a hub start, the scheduler's estimate (60 s), a spawn (180 s)
def test_extra_fields_show_their_limits_and_reach_the_job(page: Page, make_hub):
    extras = make_hub(EXTRAS)
    log_in(page, extras, "alice")
    open_form(page, extras)
    options = page.locator("#account-select option")
    expect(options).to_have_text(["Your default account", "proj1", "proj2"])
    expect(page.locator("#gpus-group")).to_be_hidden()
    page.select_option("#queue", "batch")
    expect(page.locator("#gpus-group")).to_be_visible()
    page.select_option("#queue", "debug")

    page.fill("#memory", "32G")
    expect(page.locator("#memory-feedback")).to_contain_text("at most 16G")
    # Within our limit but more than a node of the test cluster has (4000M): the
    # scheduler's own answer shows as the estimate.
    page.fill("#memory", "8G")
    estimate = page.locator("#hubdash-estimate")
    expect(estimate).to_have_attribute("data-state", "refused", timeout=60_000)
    expect(estimate).to_contain_text("Requested node configuration is not available")

    page.fill("#memory", "512M")
    page.select_option("#account-select", "proj2")
    page.fill("#walltime", "10")
    with alice_server_started_from_the_form(page, extras) as server:
        job_id = server["state"]["job"]["job_id"]
        detail = subprocess.run(
            ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, check=True
        ).stdout
        assert "Account=proj2" in detail
        assert "MinMemoryNode=512M" in detail
