"""e2e fixtures: one real hub per scheduler, Debian's Chromium driven by Playwright."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from .hubprocess import Hub

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
# Several sessions may share the test cluster: HUBDASH_TEST_PORT_BASE moves this one's hubs.
PORT_BASE = int(os.environ.get("HUBDASH_TEST_PORT_BASE", "8100"))
PORTS = {"slurm": PORT_BASE, "slurm-torque": PORT_BASE + 200}


@pytest.fixture(scope="session", params=["slurm", "slurm-torque"])
def hub(request, test_cluster, tmp_path_factory, artifacts):
    """A JupyterHub on the test cluster, once per scheduler backend."""
    scheduler = request.param
    hub = Hub(
        scheduler=scheduler,
        port=PORTS[scheduler],
        data_dir=tmp_path_factory.mktemp(f"hub-{scheduler}"),
        log_path=artifacts / f"hub-{scheduler}.log",
    ).start()
    yield hub
    hub.stop_all_servers()
    hub.terminate()


@pytest.fixture
def make_hub(test_cluster, tmp_path_factory, artifacts, request):
    """Start extra hubs with settings of their own; all are stopped after the test."""
    hubs: list[Hub] = []

    def start(extra_config: str, scheduler: str = "slurm", data_dir=None, env=None) -> Hub:
        index = len(hubs)
        name = "".join(ch if ch.isalnum() else "-" for ch in request.node.name)
        hub = Hub(
            scheduler=scheduler,
            port=PORT_BASE + 500 + 100 * index,
            data_dir=data_dir or tmp_path_factory.mktemp(f"hub-{name}-{index}"),
            log_path=artifacts / f"hub-{name}-{index}.log",
            extra_config=extra_config,
            env=env or {},
        ).start()
        hubs.append(hub)
        return hub

    yield start
    # Servers first, every hub's: hubs that share a data folder (a restart by hand) share
    # its proxy and forward keeper, which terminate() stops. Every hub is stopped even when
    # a stop fails: a proxy left behind would hold its ports against the next tests.
    try:
        for hub in hubs:
            if hub.process and hub.process.poll() is None:
                hub.stop_all_servers()
    finally:
        for hub in hubs:
            hub.terminate()


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.call_failed = report.failed
    return report


@pytest.fixture
def page(browser, request, artifacts) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    if getattr(request.node, "call_failed", False):
        # What the browser showed when the test failed, for whoever reads the CI log.
        name = "".join(ch if ch.isalnum() else "-" for ch in request.node.name)
        page.screenshot(path=str(artifacts / f"failed-{name}.png"))
    context.close()


@contextlib.contextmanager
def page_of(browser: Browser, hub: Hub, user: str) -> Iterator[Page]:
    """A page of another user's own browser context (an admin's, say), logged in."""
    context = browser.new_context()
    try:
        page = context.new_page()
        log_in(page, hub, user)
        yield page
    finally:
        context.close()


def log_in(page: Page, hub: Hub, user: str) -> None:
    """Log in through the hub's own login form (PAM against the test cluster's users)."""
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", user)
    page.click("#login_submit")
    page.wait_for_url(lambda url: "/hub/login" not in url, timeout=30_000)


def spawn_failure(hub: Hub, user: str, **options: str) -> tuple[str, float]:
    """Ask for a server that must fail to start: the failure's message, and how long the
    spawn took to fail."""
    started = time.monotonic()
    answer = hub.spawn(user, **options)
    if answer.status_code == 500:
        # Failed before the hub's slow_spawn_timeout: the API call itself carries the error.
        message = answer.json()["message"]
    else:
        assert answer.status_code in (201, 202), answer.text
        events = hub.progress_events(user, timeout=60)
        assert events[-1].get("failed"), events[-1]
        message = events[-1]["message"]
    return message, time.monotonic() - started
