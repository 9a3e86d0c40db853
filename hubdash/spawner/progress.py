"""The progress of one server's start: events for JupyterHub's progress stream, and its timeline.

Holds events and wakes readers; knows nothing of jobs or clusters. An event's machine-readable
part (under "hubdash") uses the saved state's names (hubdash.serverstate): `node_count` counts
the nodes asked for, `nodes` names the job's nodes, `walltime_seconds` is in seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from hubdash.serverstate import Step

# Percentages by phase: never 100 before the hub has seen the server answer.
PERCENT = {
    "submitted": 10,
    "pending": 20,
    "running": 50,
    "connecting": 70,
    "engines": 80,
    "tunnel": 90,
}


class ProgressLog:
    """Events of the current start, replayable from the first for every new reader."""

    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._changed = asyncio.Condition()
        self.finished = True

    def reset(self) -> None:
        """A new start begins: forget the last one's events."""
        self._events = []
        self.finished = False

    async def emit(self, phase: str, message: str, **details: Any) -> dict[str, Any]:
        """Add an event; `details` form its machine-readable part (under 'hubdash')."""
        event = {
            "progress": PERCENT.get(phase, self.last_percent),
            "message": message,
            "hubdash": {"phase": phase, "time": round(time.time(), 3), **details},
        }
        self._events.append(event)
        async with self._changed:
            self._changed.notify_all()
        return event

    async def finish(self) -> None:
        """The start ended (ready or failed): readers stop after the last event."""
        self.finished = True
        async with self._changed:
            self._changed.notify_all()

    @property
    def last_percent(self) -> int:
        return self._events[-1]["progress"] if self._events else 0

    @property
    def history(self) -> list[Step]:
        """The timeline: one entry per event, oldest first."""
        return [
            Step(e["hubdash"]["phase"], e["hubdash"]["time"], e["message"]) for e in self._events
        ]

    async def replay(self) -> AsyncIterator[dict[str, Any]]:
        """Every event so far, then each new one, until the start ends."""
        events = self._events  # a reset starts a new list; this reader follows its own start
        seen = 0
        while True:
            while seen < len(events):
                yield events[seen]
                seen += 1
            if self.finished or events is not self._events:
                return
            async with self._changed:
                await self._changed.wait_for(
                    lambda count=seen: (
                        count < len(events) or self.finished or events is not self._events
                    )
                )
