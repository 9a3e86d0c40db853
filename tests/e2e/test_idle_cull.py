"""Idle reclaim: with jupyterhub-idle-culler at 60 s, a server nobody uses is stopped within
2 minutes of being ready, its job leaves the queue, and the user's card and the admin
overview say why and how many node-hours went back to the cluster."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Browser, Page, expect

from .conftest import log_in, page_of
from .test_lifecycle import live_job_ids, wait_until_gone

DASH = "/services/hubdash/"
ADMIN = 'c.Authenticator.admin_users = {"erin"}\n'


# A spawn (120 s), the cull (120 s), the job gone and two pages
@pytest.mark.timeout(420)
def test_an_idle_server_is_stopped_and_the_dashboard_says_why(
    make_hub, page: Page, browser: Browser, artifacts
):
    hub = make_hub(ADMIN, env={"HUBDASH_IDLE_TIMEOUT": "60", "HUBDASH_IDLE_EVERY": "10"})
    hub.spawn("bob", "idle", queue="debug", walltime="30", nodes="2")
    job = hub.wait_ready("bob", "idle")["state"]["job"]
    ready = time.monotonic()
    # Nobody opens it: the culler sees no activity for 60 s and stops it.

    def stopped():
        """the culler stopped bob's idle server"""
        model = hub.server("bob", "idle")
        return model is None or not (model.get("ready") or model.get("pending"))

    hub.wait_for(stopped, timeout=120)
    stopped_after = time.monotonic() - ready
    wait_until_gone(job["job_id"], 30)
    assert job["job_id"] not in live_job_ids()
    assert "idle-culler" in hub.log_path.read_text()  # the managed service ran

    log_in(page, hub, "bob")
    page.goto(f"{hub.url}{DASH}")
    card = page.locator('article[data-server="idle"]')
    expect(card).to_have_attribute("data-status", "stopped")
    outcome = card.locator(".hd-outcome")
    expect(outcome).to_contain_text(re.compile(r"was stopped after [12] minutes? idle"))
    # Two nodes, 30 min asked, stopped after about 1.5 min: about 0.95 node-hours back.
    text = outcome.inner_text()
    returned = float(re.search(r"idle; ([0-9.]+) node-hours", text).group(1))
    assert 0.85 <= returned <= 1.0, text
    page.screenshot(path=str(artifacts / "idle-cull-card.png"))

    with page_of(browser, hub, "erin") as overview:
        overview.goto(f"{hub.url}{DASH}admin")
        totals = overview.locator("#idle-totals")
        expect(totals).to_contain_text("1 server stopped after idling")
        expect(totals).to_contain_text(f"{returned:g} node-hours")
        overview.screenshot(path=str(artifacts / "idle-cull-admin.png"))
    (artifacts / "idle-cull.txt").write_text(
        f"stopped {stopped_after:.0f} s after ready (culler at 60 s, every 10 s); "
        f"{returned:g} node-hours given back\n"
    )
