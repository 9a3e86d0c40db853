"""Slurm's accounting (slurmdbd + MariaDB, scripts/testbed/accounting.sh) behind the form: the
accounts and QOS a user may charge, their use this month, Slurm's refusal before anything is
queued, and how a job that failed while the hub was down ended."""

from __future__ import annotations

import subprocess
import time
from datetime import datetime

import pytest
from playwright.sync_api import Page, expect

from ..conftest import JOB_PREFIX, cluster_jobs
from .conftest import log_in
from .formcheck import open_form
from .hubprocess import Hub

ACCOUNTING = """
c.JobSpawner.form_extras = ["account", "qos"]
c.JobSpawner.accounts_from_scheduler = True
c.JobSpawner.queues = {"debug": {"max_walltime": "1:00:00", "max_nodes": 2}}
"""
SSH = [
    "ssh", "-i", "/etc/hubdash-testcluster/keys/alice",
    "-o", "UserKnownHostsFile=/etc/hubdash-testcluster/known_hosts", "-o", "BatchMode=yes",
    "alice@10.213.0.2",
]  # fmt: skip


def as_alice(command: str) -> str:
    return subprocess.run(
        [*SSH, command], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


def alice_jobs() -> list[str]:
    return [line.split()[0] for line in cluster_jobs(JOB_PREFIX, users=("alice",))]


def node_hours_this_month(account: str) -> float:
    """alice's node-hours on `account` since the 1st, as sacct itself adds them up."""
    since = datetime.now().replace(day=1, hour=0, minute=0, second=0).strftime("%Y-%m-%dT%H:%M:%S")
    out = as_alice(f"sacct -n -P -X -T -u alice -S {since} -E now -o Account,NNodes,ElapsedRaw")
    total = 0.0
    for line in out.splitlines():
        name, nodes, elapsed = line.split("|")
        if name == account:
            total += int(nodes) * int(elapsed) / 3600
    return total


def shown_hours(text: str, account: str) -> float:
    """The node-hours the form shows for `account` ('proj2 0.01 node-hours')."""
    words = text.replace(",", " ").split()
    return float(words[words.index(account) + 1])


@pytest.mark.timeout(420)  # a hub start, a job that runs 3 s, a spawn from the form (180 s)
def test_the_form_offers_alices_accounts_and_qos_and_refuses_what_slurm_would(
    page: Page, make_hub, artifacts
):
    # A job of alice's that ran, charged to proj2: the form's use this month must count it.
    job = as_alice("sbatch --parsable -A proj2 -t 5 -o /dev/null --wrap 'sleep 3'")
    deadline = time.monotonic() + 60
    while as_alice(f"squeue -h -j {job} -o %T 2>/dev/null || true"):
        assert time.monotonic() < deadline, f"job {job} did not end"
        time.sleep(1)
    hub: Hub = make_hub(ACCOUNTING)
    log_in(page, hub, "alice")
    open_form(page, hub)
    page.screenshot(path=str(artifacts / "accounting-form.png"))

    # Exactly alice's two associations, her default named; the QOS her account allows.
    accounts = page.locator("#account-select option")
    expect(accounts).to_have_text(["Your default account (proj1)", "proj1", "proj2"])
    qos = page.locator("#qos option")
    expect(qos).to_have_text(
        ["The account's default QOS (normal)", "normal", "short (walltime up to 0:30:00)"]
    )
    usage = page.locator("#account-usage").inner_text()
    expected = node_hours_this_month("proj2")
    assert expected > 0
    assert abs(shown_hours(usage, "proj2") - expected) <= 0.005 + expected * 0.01, (usage, expected)

    # Above the QOS's cap: Slurm's own reason, in the form, and nothing is queued.
    page.select_option("#account-select", "proj2")
    page.select_option("#qos", "short")
    page.fill("#walltime", "45")
    estimate = page.locator("#hubdash-estimate")
    expect(estimate).to_have_attribute("data-state", "refused", timeout=60_000)
    expect(estimate).to_contain_text("QOSMaxWallDurationPerJobLimit")
    page.click("#spawn_form button[type=submit]")
    feedback = page.locator("#walltime-feedback")
    expect(feedback).to_contain_text("the scheduler would not run this job", timeout=30_000)
    expect(feedback).to_contain_text("QOSMaxWallDurationPerJobLimit")
    expect(page.locator("#walltime")).to_have_value("45")  # the entries stay
    expect(page.locator("#qos")).to_have_value("short")
    page.screenshot(path=str(artifacts / "accounting-refused.png"))
    assert not alice_jobs(), "a refused choice was queued"

    # Within the cap: the job runs charged to proj2 under QOS short.
    page.fill("#walltime", "20")
    page.click("#spawn_form button[type=submit]")
    try:
        server = hub.wait_ready("alice", timeout=180)
        job_id = server["state"]["job"]["job_id"]
        detail = subprocess.run(
            ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, check=True
        ).stdout
        assert "Account=proj2" in detail and "QOS=short" in detail, detail
    finally:
        hub.stop("alice")
    hub.wait_for(lambda: not alice_jobs(), timeout=30)


# The server's job ends with exit code 7 once this file appears in alice's home.
FAILS_ON_CUE = """
c.JobSpawner.cmd = ["sh", "-c",
    '/opt/hubdash/venv/bin/jupyterhub-singleuser "$@" & server=$!; '
    'while [ ! -e "$HOME/hubdash-test-fail-now" ]; do sleep 1; done; '
    'kill $server; echo "hubdash-test: failing on cue" >&2; exit 7', "sh"]
"""
CUE = "/home/alice/hubdash-test-fail-now"


@pytest.mark.timeout(480)  # a spawn, then slurmctld's MinJobAge (30 s) and its purge
def test_a_job_that_failed_while_the_hub_was_down_shows_sacct_s_exit_code(make_hub):
    subprocess.run(["rm", "-f", CUE], check=True)
    hub: Hub = make_hub(FAILS_ON_CUE)
    answer = hub.spawn("alice", queue="debug", walltime="10")
    assert answer.status_code in (201, 202), answer.text
    job_id = hub.wait_ready("alice", timeout=180)["state"]["job"]["job_id"]
    try:
        hub.stop_for_restart()
        subprocess.run(["runuser", "-u", "alice", "--", "touch", CUE], check=True)
        # Until slurmctld has forgotten the job: only Slurm's accounting knows it then.
        deadline = time.monotonic() + 240
        while (
            subprocess.run(
                ["scontrol", "show", "job", job_id], capture_output=True, text=True
            ).returncode
            == 0
        ):
            assert time.monotonic() < deadline, f"slurmctld still holds job {job_id}"
            time.sleep(3)
        hub.start()

        def ended() -> dict | None:
            user = hub.api("GET", "/users/alice?include_stopped_servers").json()
            server = user["servers"].get("", {})
            outcome = (server.get("state") or {}).get("last_outcome") or {}
            return outcome if outcome.get("job_id") == job_id else None

        outcome = hub.wait_for(ended, timeout=90)
        assert outcome["exit_code"] == 7, outcome
        assert "FAILED" in outcome["message"] and "exit code 7" in outcome["message"], outcome
    finally:
        subprocess.run(["rm", "-f", CUE], check=True)
        hub.stop("alice")
