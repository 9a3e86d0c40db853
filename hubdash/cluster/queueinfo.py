"""The spawn form's live queue figures, start estimates and users' accounts (from the
scheduler's accounting), cached per cluster for a short time.

Asks only through the fetch functions it is given, and only when its answer is older than
`ttl`; never raises: a failed fetch is an answer that says the information is unavailable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from hubdash.cluster.startguess import StartGuess
from hubdash.metrics import QUEUE_INFO_ANSWERS
from hubdash.schedulers.base import QueueSummary, SchedulerError, UserAccounting
from hubdash.transport.base import TransportError

T = TypeVar("T")

# Where the hub serves this information to the page (under its /hub prefix): queueapi.py.
API_PREFIX = "/api/hubdash"

# More estimates than this are trimmed to the live ones: one per user and choice.
_MAX_ESTIMATES = 512


@dataclass(frozen=True)
class QueueFigures:
    """Every queue's nodes and pending jobs as the scheduler last told them."""

    available: bool
    queues: dict[str, QueueSummary] = field(default_factory=dict)
    message: str = ""  # why the figures are unavailable
    fetched_at: float = 0.0  # time.time() of the scheduler's answer


@dataclass(frozen=True)
class StartEstimate:
    """When a job of one size would start if submitted now.

    `start` None with `available` True: the scheduler has no estimate to give (Grid
    Engine), or refused the job (`refused` holds its reason). `basis` says what a guessed
    time rests on (cluster/startguess.py); empty for the scheduler's own answer.
    """

    available: bool
    start: datetime | None = None
    basis: str = ""
    refused: str = ""
    message: str = ""
    fetched_at: float = 0.0


@dataclass(frozen=True)
class AccountingAnswer:
    """What one user may charge, from the scheduler's accounting (None: it keeps none)."""

    available: bool
    accounting: UserAccounting | None = None
    message: str = ""  # why it is unavailable
    fetched_at: float = 0.0


@dataclass
class _Entry(Generic[T]):
    value: T
    expires: float


class QueueInformation:
    """The cache of one cluster: its queue figures, and start estimates per key."""

    def __init__(
        self,
        cluster_name: str,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        log: logging.Logger | None = None,
    ):
        self.cluster_name = cluster_name
        self.ttl = ttl
        self._clock = clock
        self._log = log or logging.getLogger("hubdash.queueinfo")
        self._entries: dict[Hashable, _Entry[Any]] = {}
        self._fetching: dict[Hashable, asyncio.Future[Any]] = {}

    async def figures(
        self, fetch: Callable[[], Awaitable[dict[str, QueueSummary]]]
    ) -> QueueFigures:
        """The queue figures, fetched with `fetch()` unless a fresh answer is cached."""

        async def ask() -> QueueFigures:
            try:
                queues = await fetch()
            except Exception as exc:  # any failure means "unavailable"
                return QueueFigures(False, message=self._why(exc), fetched_at=time.time())
            return QueueFigures(True, queues, fetched_at=time.time())

        return await self._cached("figures", ("figures",), ask)

    async def estimate(
        self, key: Hashable, fetch: Callable[[], Awaitable[StartGuess]]
    ) -> StartEstimate:
        """The start estimate for one user's choice (`key`), fetched unless cached."""

        async def ask() -> StartEstimate:
            try:
                guess = await fetch()
            except SchedulerError as exc:
                # The scheduler answered: a job like this cannot run (bad account, too big).
                return StartEstimate(True, refused=str(exc), fetched_at=time.time())
            except Exception as exc:  # any other failure means "unavailable"
                return StartEstimate(False, message=self._why(exc), fetched_at=time.time())
            return StartEstimate(True, start=guess.start, basis=guess.basis, fetched_at=time.time())

        return await self._cached("estimate", ("estimate", key), ask)

    async def accounting(
        self, user: str, fetch: Callable[[], Awaitable[UserAccounting | None]]
    ) -> AccountingAnswer:
        """A user's accounts, QOS and use this month, fetched unless a fresh answer is cached."""

        async def ask() -> AccountingAnswer:
            try:
                accounting = await fetch()
            except Exception as exc:  # slurmdbd down, sacctmgr refused: "unavailable"
                return AccountingAnswer(False, message=self._why(exc), fetched_at=time.time())
            return AccountingAnswer(True, accounting, fetched_at=time.time())

        return await self._cached("accounting", ("accounting", user), ask)

    def cached_accounting(self, user: str) -> AccountingAnswer | None:
        """The user's accounting answer while it is fresh; None when there is none (no I/O)."""
        entry = self._entries.get(("accounting", user))
        if entry is None or entry.expires <= self._clock():
            return None
        return entry.value

    async def _cached(self, kind: str, key: Hashable, ask: Callable[[], Awaitable[T]]) -> T:
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and entry.expires > now:
            QUEUE_INFO_ANSWERS.labels(self.cluster_name, kind, "cache").inc()
            return entry.value
        future = self._fetching.get(key)
        if future is None:
            # One fetch per key at a time: every page that asks meanwhile shares its answer.
            future = self._fetching[key] = asyncio.ensure_future(self._fetch(kind, key, ask))
        else:
            QUEUE_INFO_ANSWERS.labels(self.cluster_name, kind, "cache").inc()
        # Shielded: a browser that goes away must not cancel the others' answer.
        return await asyncio.shield(future)

    async def _fetch(self, kind: str, key: Hashable, ask: Callable[[], Awaitable[T]]) -> T:
        try:
            value = await ask()
            source = "scheduler" if getattr(value, "available", True) else "unavailable"
            QUEUE_INFO_ANSWERS.labels(self.cluster_name, kind, source).inc()
            # Failures are kept as long as answers: a broken cluster is not asked on every load.
            self._entries[key] = _Entry(value, self._clock() + self.ttl)
            self._trim()
            return value
        finally:
            self._fetching.pop(key, None)

    def _trim(self) -> None:
        if len(self._entries) <= _MAX_ESTIMATES:
            return
        now = self._clock()
        for key in [k for k, e in self._entries.items() if e.expires <= now]:
            del self._entries[key]
        while len(self._entries) > _MAX_ESTIMATES:
            del self._entries[next(iter(self._entries))]  # the oldest

    def _why(self, exc: Exception) -> str:
        if isinstance(exc, SchedulerError | TransportError | OSError | TimeoutError):
            self._log.warning("Queue information from %s unavailable: %s", self.cluster_name, exc)
            return str(exc) or type(exc).__name__
        self._log.exception("Queue information from %s failed", self.cluster_name)
        return "the hub could not ask the scheduler (see the hub's log)"
