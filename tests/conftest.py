"""Session-wide fixtures: the local test cluster, real JupyterHub processes, the queue check."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
TEST_USERS = ("alice", "bob", "carol", "dave", "erin")
LOGIN_HOST = "10.213.0.2"
KEY_DIR = Path("/etc/hubdash-testcluster/keys")
KNOWN_HOSTS = Path("/etc/hubdash-testcluster/known_hosts")
# Names this test session's jobs: the queue check after the session looks for these only.
JOB_PREFIX = f"hdtest{os.getpid()}"


def cluster_jobs(
    name_prefix: str = "", users=TEST_USERS, states: str = "PENDING,RUNNING,SUSPENDED"
) -> list[str]:
    """Lines of `squeue` ("id user name state") for the test users' live jobs whose
    name starts with `name_prefix`."""
    out = subprocess.run(
        ["squeue", "-h", "-u", ",".join(users), "-t", states, "-o", "%i %u %j %T"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    lines = [line.split() for line in out.stdout.splitlines() if line.strip()]
    return [" ".join(f) for f in lines if len(f) == 4 and f[2].startswith(name_prefix)]


@pytest.fixture(scope="session")
def test_cluster():
    """The local Slurm test cluster, brought up once per session (a no-op when it is up)."""
    subprocess.run(
        [str(ROOT / "scripts" / "testcluster"), "up", "--only", "slurm"], check=True, timeout=900
    )
    yield {
        "login_host": LOGIN_HOST,
        "known_hosts": str(KNOWN_HOSTS),
        "key_for": lambda user: str(KEY_DIR / user),
    }
    # Every test that submits must leave the queue as it found it. Tests that submit
    # name their jobs with JOB_PREFIX (the hubs' job_name_prefix, or directly).
    left = cluster_jobs(JOB_PREFIX)
    if left:
        subprocess.run(["scancel", *[line.split()[0] for line in left]], timeout=30)
        pytest.fail("jobs of the tests left in the queue: " + "; ".join(left))


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# Seconds a test of the tiers on the test cluster may run, its fixtures not counted (they
# bring clusters and hubs up under bounds of their own: `testcluster up` up to 900 s, a
# hub 60 s; a timer firing there would kill the bring-up half-way). A test whose own waits
# add up to more says so with @pytest.mark.timeout(N) and why. Unit tests: pyproject's
# `timeout`, fixtures included.
TIER_TIMEOUT = 300
TIERS = ("integration", "e2e")


def pytest_collection_modifyitems(config, items):
    # `--timeout N` on the command line replaces the tiers' default (0: none); explicit
    # marks stay. `-p no:timeout` switches pytest-timeout off altogether.
    timeouts = config.pluginmanager.hasplugin("timeout")
    tier_timeout = config.getoption("timeout", None)
    if tier_timeout is None:
        tier_timeout = TIER_TIMEOUT
    for item in items:
        path = str(item.fspath)
        for tier in TIERS:
            # Integration and e2e tests live in their folders; mark them so `-m` selects them.
            if f"{os.sep}{tier}{os.sep}" in path:
                item.add_marker(getattr(pytest.mark, tier))
                if not timeouts:
                    continue
                own = item.get_closest_marker("timeout")
                seconds = tier_timeout
                if own is not None:
                    seconds = own.args[0] if own.args else own.kwargs["timeout"]
                item.add_marker(pytest.mark.timeout(seconds, func_only=True), append=False)


def pytest_terminal_summary(terminalreporter):
    # The security tests' count of what they threw at the product (tests/hostile.py).
    from tests.hostile import TALLY

    if TALLY.tried:
        terminalreporter.write_sep("-", "hostile input")
        terminalreporter.write_line(TALLY.summary())
        for value in TALLY.let_through[:20]:
            terminalreporter.write_line(f"  NOT stopped: {value}")


@pytest.fixture(autouse=True)
def fresh_hub_state():
    """Each test's spawners share a HubState of their own (no live cluster of another test)."""
    from hubdash.spawner.hubstate import HubState

    HubState.standalone = None
    yield
    HubState.standalone = None
