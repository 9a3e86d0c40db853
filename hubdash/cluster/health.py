"""Whether a cluster's login node answers: a TCP connection and the SSH server's greeting.

No login, no key: the check costs the login node one accepted connection, and tells "the
cluster is down for everyone" apart from one user's trouble. A cluster whose login node
does not answer is shown as unavailable (form, admin overview) and spawns on it fail at
once saying so; the next check that gets a greeting brings it back, with no hub restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from hubdash.metrics import CLUSTER_AVAILABLE

GREETING_LIMIT = 255  # RFC 4253: the identification line is at most 255 bytes


async def ssh_greeting(host: str, port: int, timeout: float) -> str:
    """The SSH server's identification line; OSError or TimeoutError if it gives none."""

    async def read() -> str:
        reader, writer = await asyncio.open_connection(host, port, limit=GREETING_LIMIT + 2)
        try:
            line = await reader.readuntil(b"\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise OSError("the connection gave no SSH greeting") from exc
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        text = line.decode("ascii", "replace").strip()
        if not text.startswith("SSH-"):
            raise OSError(f"not an SSH server (it said {text[:40]!r})")
        return text

    return await asyncio.wait_for(read(), timeout)


class LoginHealth:
    """The last word on one login node, refreshed every `interval` seconds from the first
    question on (the hub asks while it runs: forms, spawns, the admin overview) until close()."""

    def __init__(
        self,
        host: str,
        port: int,
        interval: float = 30.0,
        timeout: float = 5.0,
        probe: Callable[[str, int, float], Awaitable[str]] = ssh_greeting,
        cluster: str = "",
    ) -> None:
        self.host, self.port, self.cluster = host, port, cluster or host
        self.interval, self.timeout = interval, timeout
        self._probe = probe
        self.available = True  # until a check says otherwise
        self.checked_at: float | None = None
        self.last_reachable: float | None = None
        self.message = ""
        self._checking: asyncio.Future[bool] | None = None
        self._loop_task: asyncio.Task[None] | None = None

    async def check(self, max_age: float | None = None) -> bool:
        """Whether the login node answered within `max_age` seconds (default: the interval);
        checks again when the last word is older. One check at a time: callers share it."""
        self._keep_checking()
        age = self.interval if max_age is None else max_age
        if self.checked_at is not None and time.time() - self.checked_at < age:
            return self.available
        return await self._shared_check()

    def describe(self) -> dict[str, object]:
        """For the form, the admin overview and the API (times are epoch seconds)."""
        return {
            "available": self.available,
            "checked_at": self.checked_at,
            "last_reachable": self.last_reachable,
            "message": self.message,
        }

    async def close(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None

    async def _check_now(self) -> bool:
        try:
            await self._probe(self.host, self.port, self.timeout)
        except (TimeoutError, OSError) as exc:
            if isinstance(exc, TimeoutError):
                why = f"no SSH answer within {self.timeout:g} s"
            elif isinstance(exc, ConnectionRefusedError):
                why = "connection refused"
            else:
                why = str(exc) or type(exc).__name__
            self.available = False
            self.message = f"its login node {self.host} port {self.port} does not answer ({why})"
        else:
            self.available, self.message = True, ""
            self.last_reachable = time.time()
        finally:
            self.checked_at = time.time()
            self._checking = None
            CLUSTER_AVAILABLE.labels(self.cluster).set(1 if self.available else 0)
        return self.available

    def _keep_checking(self) -> None:
        # Started by the first question, in the hub's loop: a cluster comes back by itself.
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.ensure_future(self._loop())

    async def _shared_check(self) -> bool:
        """The check under way, or a new one: every caller meanwhile shares its answer."""
        if self._checking is None:
            self._checking = asyncio.ensure_future(self._check_now())
        return await asyncio.shield(self._checking)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self._shared_check()
