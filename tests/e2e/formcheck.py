"""Helpers of the spawn-form tests: the form's live parts, and what the scheduler was asked."""

from __future__ import annotations

import re
import subprocess

import requests
from playwright.sync_api import Page, expect

from .hubprocess import Hub

# The RPCs the form's queries cause: sinfo/pbsnodes (NODE_INFO, PARTITION_INFO), squeue
# (JOB_INFO) and sbatch --test-only (JOB_WILL_RUN). NODE_INFO and JOB_WILL_RUN are rare on
# this shared cluster otherwise, so their counts are the ones that can show a quiet window.
FORM_RPCS = ("REQUEST_NODE_INFO", "REQUEST_JOB_WILL_RUN", "REQUEST_PARTITION_INFO")
_RPC_LINE = re.compile(r"^\s*(REQUEST_\w+)\s+\(\s*\d+\)\s+count:(\d+)")


def open_form(page: Page, hub: Hub, path: str = "/hub/spawn") -> None:
    """Show the spawn form and wait until its queue figures and estimate have loaded."""
    page.goto(f"{hub.url}{path}")
    wait_for_queue_information(page)


def wait_for_queue_information(page: Page) -> None:
    for element in ("#hubdash-queue-status", "#hubdash-estimate"):
        expect(page.locator(element)).not_to_have_attribute("data-state", "loading", timeout=60_000)


def rpc_counts() -> dict[str, int]:
    """slurmctld's RPC counts by message type, as `sdiag` prints them (never reset here)."""
    out = subprocess.run(["sdiag"], capture_output=True, text=True, timeout=30, check=True).stdout
    section = out.split("by message type", 1)[1].split("by user", 1)[0]
    counts = {}
    for line in section.splitlines():
        match = _RPC_LINE.match(line)
        if match:
            counts[match.group(1)] = int(match.group(2))
    return counts


def rpc_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after.get(name, 0) - before.get(name, 0) for name in FORM_RPCS}


def scheduler_commands(hub: Hub) -> float:
    """The hub's own count of the scheduler commands it ran (exact, unlike sdiag's)."""
    text = requests.get(
        f"{hub.url}/hub/metrics", headers={"Authorization": f"token {hub.token}"}, timeout=30
    ).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("hubdash_scheduler_commands_total{")
    )


def queue_row(page: Page, queue: str) -> tuple[str, str]:
    """The (free/total nodes, jobs waiting) cells the form shows for one queue."""
    row = page.locator(f"#hubdash-queue-table tr[data-queue='{queue}']")
    return row.locator(".hubdash-nodes").inner_text(), row.locator(".hubdash-pending").inner_text()
