"""Waiting on JobMonitor's view of a job, shared by the unit tests (a scheduler on paper) and
the integration tests (the test cluster); they differ only in how long they wait."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hubdash.cluster.monitor import JobMonitor, JobView


async def view_once(
    monitor: JobMonitor,
    job_id: str,
    check: Callable[[JobView], object],
    what: str,
    *,
    patience: float,
    poll: float,
) -> JobView:
    """The view once `check(view)` holds; fails (does not hang) if it does not within
    `patience` seconds. `poll` bounds each wait for a change, so the deadline is seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    view = monitor.get(job_id)
    while view is None or not check(view):
        assert loop.time() < deadline, f"never saw {what}; last view: {view}"
        view = await monitor.wait_for_change(job_id, poll)
    return view
