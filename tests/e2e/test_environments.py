"""Software environments on the test cluster's Lmod: the one chosen in the form is the one the
notebook runs in; a broken one fails the spawn at once, naming what is missing."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from ..conftest import JOB_PREFIX, cluster_jobs
from .conftest import log_in, spawn_failure
from .formcheck import open_form
from .jupyterlab import run_cell

# scripts/testbed/modules.sh: two module trees, each with one Python environment; only
# 'science' holds tabulate.
ENVIRONMENTS = """
c.JobSpawner.environments = {
    "base": {"description": "Python 3.11 (core tree)", "modules": ["pyenv/base"],
             "default": True},
    "science": {"description": "Python 3.11 with tabulate (science tree)",
                "modules": ["pyenv/science"]},
    "broken": {"description": "names a module no tree has", "modules": ["pyenv/missing"]},
}
c.JobSpawner.queues = {
    "debug": {"max_walltime": "1:00:00", "max_nodes": 2, "max_engines": 4},
    "batch": {"max_walltime": "4:00:00", "max_nodes": 2, "environments": ["base"]},
}
"""
SCIENCE = "/opt/hubdash-testcluster/envs/science"


def alice_jobs() -> list[str]:
    return [line.split()[0] for line in cluster_jobs(JOB_PREFIX, users=("alice",))]


@pytest.mark.timeout(480)  # a hub start, a spawn from the form (180 s), a cell in JupyterLab
def test_the_chosen_environment_is_the_notebooks_and_a_broken_one_fails_at_once(
    page: Page, make_hub, artifacts
):
    hub = make_hub(ENVIRONMENTS)
    log_in(page, hub, "alice")
    open_form(page, hub)
    environment = page.locator("#environment")
    expect(environment).to_have_value("base")
    # A queue that offers only 'base' shows only it; back on debug, all three.
    page.select_option("#queue", "batch")
    expect(page.locator("#environment option")).to_have_text(["base (default)"])
    page.select_option("#queue", "debug")
    expect(page.locator("#environment option")).to_have_count(3)
    page.select_option("#environment", "science")
    expect(page.locator("#environment-help")).to_contain_text("with tabulate")
    page.fill("#walltime", "10")
    page.click("#spawn_form button[type=submit]")
    try:
        page.wait_for_url("**/user/alice/lab**", timeout=180_000)
        server = hub.server("alice")
        assert server["user_options"]["environment"] == "science"
        text = run_cell(
            page,
            f"{hub.url}/user/alice/lab",
            "import sys, tabulate; print('PREFIX=' + sys.prefix, 'TABULATE=' + tabulate.__file__)",
            "PREFIX=",
        )
        page.screenshot(path=str(artifacts / "environment-science.png"))
        fields = dict(item.split("=", 1) for item in text.split() if "=" in item)
        assert set(fields) == {"PREFIX", "TABULATE"}, text
        assert fields["PREFIX"] == SCIENCE
        assert fields["TABULATE"].startswith(SCIENCE + "/")
        log = (hub.folder("alice") / "job.log").read_text()
        assert "hubdash: entering environment science" in log

        # The dashboard's card names the environment.
        page.goto(f"{hub.url}/services/hubdash/")
        expect(page.locator(".hd-card .hd-environment")).to_have_text("science")
    finally:
        hub.stop("alice")
    hub.wait_for(lambda: not alice_jobs(), timeout=30)

    # The broken environment: the job ends at its module line, and the spawn says so.
    message, elapsed = spawn_failure(
        hub, "alice", queue="debug", walltime="5", environment="broken"
    )
    assert "hubdash: environment broken: module pyenv/missing could not be loaded" in message
    print(f"the broken environment failed the spawn in {elapsed:.1f} s")
    assert elapsed < 10, f"the broken environment took {elapsed:.1f} s to fail the spawn"
    assert not alice_jobs()
