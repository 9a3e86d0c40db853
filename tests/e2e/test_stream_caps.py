"""A page refused its live event stream (the dashboard's per-user cap, HTTP 429) says so
quietly and polls the dashboard's JSON instead, in a real browser."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from .conftest import log_in

DASH = "/services/hubdash/"
POLL_WAIT_MS = 30_000  # the pages poll every 20 s


@pytest.fixture
def capped_hub(make_hub, monkeypatch):
    """A hub whose dashboard allows one live page per user; carol may log in."""
    monkeypatch.setenv("HUBDASH_TEST_DASH_ARGS", "--max-streams-per-user=1")
    return make_hub('c.Authenticator.allowed_users = {"alice", "bob", "carol"}\n')


def test_a_page_past_the_cap_polls_instead_and_says_so(page: Page, capped_hub):
    hub = capped_hub
    log_in(page, hub, "carol")
    page.goto(f"{hub.url}{DASH}")  # holds carol's one stream
    expect(page.locator("#cards")).to_be_visible()
    page.wait_for_timeout(1000)
    expect(page.locator("#live-note")).to_be_hidden()

    servers = page.context.new_page()
    with servers.expect_request(lambda r: "/api/users/carol/cards?" in r.url, timeout=POLL_WAIT_MS):
        servers.goto(f"{hub.url}{DASH}")
        note = servers.locator("#live-note")
        expect(note).to_contain_text("most live pages open")
        expect(note).to_contain_text("refreshes every 20 s")
        expect(servers.locator("#problem")).to_be_hidden()
    expect(servers.locator("#cards")).to_contain_text("default server")

    status = page.context.new_page()
    with status.expect_response(
        lambda r: "/api/users/carol/server?" in r.url and r.status == 200, timeout=POLL_WAIT_MS
    ):
        status.goto(f"{hub.url}{DASH}status/carol")
        expect(status.locator("#live-note")).to_contain_text("refreshes every 20 s")
    expect(status.locator("#status-word")).to_have_attribute("data-status", "stopped")
    expect(status.locator("#problem")).to_be_hidden()

    # Closing the live page gives its place back: a new page gets its stream again.
    page.close()
    fresh = servers.context.new_page()
    fresh.goto(f"{hub.url}{DASH}")
    fresh.wait_for_timeout(2000)
    expect(fresh.locator("#live-note")).to_be_hidden()
