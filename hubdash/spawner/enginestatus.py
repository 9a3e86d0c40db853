"""The hub's view of a job's IPython-parallel engines: reading the status file the job writes.

Reads `engines.json` (hubdash.job.contract: ENGINES_FILE, EngineReport) over the user's
transport; starts and stops nothing (hubdash.job.engines does).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from hubdash.job.contract import ENGINES_FILE, ENGINES_FILE_LIMIT, EngineReport
from hubdash.transport.base import FileTooLarge, Transport, TransportError

# Whether the job id a job wrote names ours: the cluster's SchedulerAdapter.same_job.
SameJob = Callable[[str, str], bool]


class EngineStatus(EngineReport):
    """Engines up / requested in one job, as its watcher last wrote them, as the hub shows
    them. `EngineStatus.decode(data)` reads the file's content (ValueError if it is none)."""

    @property
    def settled(self) -> bool:
        """Nothing more to wait for: all up, failed, or stopped."""
        return self.up >= self.requested or self.state in ("failed", "stopped")

    def details(self) -> dict[str, Any]:
        """The fields a progress event and the spawner's state carry."""
        return {
            "engines_up": self.up,
            "engines_requested": self.requested,
            "engines_state": self.state,
        }

    def text(self) -> str:
        """One line for the progress page."""
        if self.state == "running" or self.up >= self.requested:
            return f"All {self.requested} parallel engines are up"
        if self.state == "failed":
            return f"Parallel engines: {self.up} of {self.requested} up; {self.message}"
        return f"Parallel engines starting: {self.up} of {self.requested} up"


async def read_engine_status(
    transport: Transport, state_dir: str, job_id: str, requested: int = 0, *, same_job: SameJob
) -> EngineStatus | None:
    """This job's engine status, or None while there is none (not yet written, another job's,
    half-read, or the cluster did not answer). A file over ENGINES_FILE_LIMIT is not read: a
    failed status (of `requested` engines) that says so."""
    try:
        data = await transport.read_file(
            f"{state_dir}/{ENGINES_FILE}",
            max_bytes=ENGINES_FILE_LIMIT,
            what="an engine status file",
        )
        status = EngineStatus.decode(data)
    except FileTooLarge as exc:
        return EngineStatus(requested, 0, "failed", message=str(exc), job_id=job_id)
    except (OSError, TransportError, ValueError):
        return None
    return status if same_job(status.job_id, job_id) else None


async def watch_engines(
    transport: Transport,
    state_dir: str,
    job_id: str,
    timeout: float,
    interval: float = 1.0,
    requested: int = 0,
    *,
    same_job: SameJob,
) -> AsyncIterator[EngineStatus]:
    """Each new engine status of this job until it settles or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    last: tuple[int, int, str] | None = None
    while True:
        status = await read_engine_status(
            transport, state_dir, job_id, requested, same_job=same_job
        )
        if status is not None:
            key = (status.up, status.requested, status.state)
            if key != last:
                last = key
                yield status
            if status.settled:
                return
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(interval)
