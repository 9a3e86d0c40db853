"""ConnectThrottle: at most N SSH connection attempts in flight to one login node, started at
a bounded rate, shared by every user's transport to one cluster (the Cluster holds it).
Knows nothing of SSH itself.

Why: sshd drops new connections once too many are unauthenticated at once (`MaxStartups`,
OpenSSH default 10:30:100: beyond 10, refuse 30 % at random, all beyond 100). A burst of
spawns for many users would each open a connection at the same moment; this keeps the
hub's share of those startups small and spread out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator


class ConnectThrottle:
    """`async with throttle.slot():` around one connection attempt (TCP + key exchange + auth).

    At most `max_concurrent` slots are held at once, and slots start at most `per_second`
    times a second. Usable from any event loop (the test suite runs several in turn).
    """

    def __init__(self, max_concurrent: int = 5, per_second: float = 10.0) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be at least 1, not {max_concurrent!r}")
        if per_second <= 0:
            raise ValueError(f"per_second must be above 0, not {per_second!r}")
        self.max_concurrent, self.per_second = max_concurrent, per_second
        self._loop: asyncio.AbstractEventLoop | None = None
        self._semaphore = asyncio.Semaphore(max_concurrent)
        self._next_start = 0.0
        self.in_flight = 0  # attempts under way now
        self.waiting = 0  # attempts waiting for a slot
        self.peak = 0  # the most attempts ever under way at once

    def _for_this_loop(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a semaphore belongs to one loop; a new loop starts afresh
            self._loop, self._semaphore = loop, asyncio.Semaphore(self.max_concurrent)
            self._next_start, self.in_flight, self.waiting = 0.0, 0, 0
        return self._semaphore

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        semaphore = self._for_this_loop()
        self.waiting += 1
        try:
            await semaphore.acquire()
        finally:
            self.waiting -= 1
        try:
            # Reserve the next start time before sleeping: no await in between, so
            # concurrent callers get successive times.
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + 1.0 / self.per_second
            if start > now:
                await asyncio.sleep(start - now)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            try:
                yield
            finally:
                self.in_flight -= 1
        finally:
            semaphore.release()
