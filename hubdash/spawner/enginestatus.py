"""The hub's view of a job's IPython-parallel engines: reading the status file the job writes.

Reads `engines.json` over the user's transport; starts and stops nothing (hubdash.job.engines does).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from hubdash.job.engines import ENGINES_FILE, STATES
from hubdash.transport.base import FileTooLarge, Transport, TransportError

# The status file is a few counts; the job (the user) writes it, so it may be anything.
STATUS_FILE_LIMIT = 16 * 1024


@dataclass(frozen=True)
class EngineStatus:
    """Engines up / requested in one job, as its watcher last wrote them."""

    requested: int
    up: int
    state: str  # one of hubdash.job.engines.STATES
    message: str = ""
    job_id: str = ""
    controller: str = ""
    updated: float = 0.0

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


def parse_engine_status(data: bytes | str) -> EngineStatus:
    """The status file's content; ValueError if it is not one.

    >>> parse_engine_status('{"job_id": "7", "requested": 4, "up": 2, "state": "starting"}')
    EngineStatus(requested=4, up=2, state='starting', message='', job_id='7', ...)
    >>> parse_engine_status('{"requested": 4, "up": 2, "state": "dancing"}')
    Traceback (most recent call last):
    ...
    ValueError: engine status has state 'dancing', not one of ('starting', 'running', ...)
    """
    raw = json.loads(data)
    if not isinstance(raw, dict):
        raise ValueError("engine status is not a JSON object")
    counts = {}
    for key in ("requested", "up"):
        value = raw.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"engine status has {key}={value!r}, not a count")
        counts[key] = value
    state = raw.get("state")
    if state not in STATES:
        raise ValueError(f"engine status has state {state!r}, not one of {STATES}")
    updated = raw.get("updated", 0.0)
    return EngineStatus(
        requested=counts["requested"],
        up=counts["up"],
        state=state,
        message=str(raw.get("message", "")),
        job_id=str(raw.get("job_id", "")),
        controller=str(raw.get("controller", "")),
        updated=float(updated) if isinstance(updated, int | float) else 0.0,
    )


def same_job(written: str, ours: str) -> bool:
    """Whether the id a job wrote (its scheduler's variable) names our job; PBS ids may carry
    the server's name ('123.server') where the job sees only '123'.

    >>> same_job("123", "123.pbs.example.org"), same_job("12", "123"), same_job("", "123")
    (True, False, False)
    """
    if not written or not ours:
        return False
    return written == ours or ours.split(".", 1)[0] == written


async def read_engine_status(
    transport: Transport, state_dir: str, job_id: str, requested: int = 0
) -> EngineStatus | None:
    """This job's engine status, or None while there is none (not yet written, another job's,
    half-read, or the cluster did not answer). A file over STATUS_FILE_LIMIT is not read: a
    failed status (of `requested` engines) that says so."""
    try:
        data = await transport.read_file(
            f"{state_dir}/{ENGINES_FILE}",
            max_bytes=STATUS_FILE_LIMIT,
            what="an engine status file",
        )
        status = parse_engine_status(data)
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
) -> AsyncIterator[EngineStatus]:
    """Each new engine status of this job until it settles or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    last: tuple[int, int, str] | None = None
    while True:
        status = await read_engine_status(transport, state_dir, job_id, requested)
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
