"""JobMonitor: the hub's one view of every job it tracks on a cluster, kept fresh by the fewest
and cheapest scheduler queries. Spawners read it; they never ask the scheduler themselves.

What a query costs slurmctld (sdiag total_time per call, Slurm 22.05, test cluster with
1,050 jobs queued, bench/query_shapes.py and a run by hand; bench/README.md has more):

    scontrol --local -o show job ID  0.07-0.14 ms  REQUEST_JOB_INFO_SINGLE only
    squeue -j ID                     0.33-0.53 ms  + REQUEST_FED_INFO + REQUEST_PARTITION_INFO
    squeue -u USER                   0.5-1.0 ms    REQUEST_JOB_USER_INFO: walks every job
    squeue -j A,B,... (2 or more)    2.0-9.0 ms    REQUEST_JOB_INFO: packs every job that
                                                   slurmctld holds, grows with them
    squeue -t PD -p Q (positions)    2.0-8.9 ms    the same full REQUEST_JOB_INFO
    qstat -f ID... (Slurm's wrapper) 2.4-9.7 ms    the same, for one id or many

The choice, per cluster user: `scontrol --local show job ID` for each job of a user with
few jobs (the usual hub: one server per user), one `squeue --local -u USER` for a user
with `lookup_batch_min` (6) jobs or more; never a list of ids. Ten jobs of ten users cost
ten lookups, ≈1.4 ms, where one batched squeue costs 2-9 ms here and tens of ms at a site
with 20,000 queued jobs. A lookup answers everything at once (state, reason, nodes, estimated
start, exit code) and lets each job have its own cadence. PBS adapters ask one `qstat -f`
for the due jobs of a user (`lookup_command`, `lookup_batch_min` of the adapter).

The cadence: a job that runs while its server starts, or has no answer yet, is looked up
every `starting_interval`; a queued job, or one whose server is up, every `interval`;
each with jitter. All lookups share a budget of `max_lookups_per_minute` (a token bucket),
so with many jobs each is asked less often and slurmctld's load stays flat. Queue
positions need a full scan: asked per queue with pending jobs every `detail_interval`.
The start of a job is not learned here: the spawner watches for the job's connection file
over the user's open connection, which costs slurmctld nothing.

Measured with bench/scheduler_load.py (1,000 other jobs held, default settings), slurmctld
time per minute for 1 / 20 / 50 pending servers: 13.9 / 5.7 / 18.8 ms with one server per
user, 7.1 / 9.5 / 8.5 ms with all of one user; a poller per server (`squeue -j ID` every
0.5 s, as batchspawner) costs 51-135 ms per server and minute: ≈2.5-5 s at 50.

The rules: a job that has ended (a finished state, or GONE when the scheduler definitively
does not know it) is remembered and never queried again. A failed or timed-out query is no
verdict: the job keeps its last state; after `unknown_grace` seconds of failures its view
says `unknown`. Only a definitive answer ends a job.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hubdash.cluster.client import SchedulerClient
from hubdash.metrics import TRACKED_JOBS
from hubdash.schedulers.base import JobInfo, JobState, SchedulerError, check_job_ids
from hubdash.transport.base import Transport, TransportError

# The transport of a cluster user, for the monitor's queries as that user.
TransportFor = Callable[[str], Transport]

_log = logging.getLogger(__name__)

# Labels of metrics.TRACKED_JOBS: the JobState values, plus jobs with no answer yet and
# jobs whose queries have failed for longer than the grace period.
GAUGE_STATES = ("new", "unknown", *(state.value for state in JobState))


@dataclass(frozen=True)
class MonitorSettings:
    """How often the monitor asks; JobSpawner's monitor_* settings fill these in."""

    interval: float = 30.0  # seconds between lookups of a queued job or one whose server is up
    starting_interval: float = 5.0  # ... of a job that runs while its server starts
    detail_interval: float = 60.0  # between queue-position scans of a queue; 0: never
    unknown_grace: float = 300.0  # seconds of failed queries before a job shows `unknown`
    max_lookups_per_minute: int = 60  # all jobs together; the rounds stretch beyond it
    jitter: float = 0.2  # each wait is stretched or shrunk by up to this fraction
    remember_finished: float = 3600.0  # seconds an ended, never-untracked job stays visible

    def __post_init__(self) -> None:
        for name in ("interval", "starting_interval", "unknown_grace", "remember_finished"):
            if getattr(self, name) <= 0:
                raise ValueError(f"monitor {name} must be above 0, not {getattr(self, name)!r}")
        if self.detail_interval < 0:
            raise ValueError(f"monitor detail_interval must be 0 or more: {self.detail_interval}")
        if self.max_lookups_per_minute < 1:
            raise ValueError("monitor max_lookups_per_minute must be at least 1")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"monitor jitter must be in [0, 1), not {self.jitter!r}")


@dataclass
class JobView:
    """The monitor's knowledge of one job. `get()` hands out copies: change nothing here."""

    job_id: str
    username: str
    info: JobInfo | None = None  # the last definitive answer; None before the first
    last_seen: float | None = None  # time.time() of that answer
    unknown_since: float | None = None  # time.time() of the first failed query since then
    failures: int = 0  # consecutive failed queries
    error: str = ""  # the last failure, for logs and the dashboard
    unknown: bool = False  # queries have failed for longer than the grace period
    starting: bool = True  # in its start phase: looked up more often
    checks: int = 0  # queries made about it, answered or not
    version: int = 0  # goes up whenever state, reason, nodes, position or `unknown` change

    @property
    def state(self) -> JobState | None:
        return self.info.state if self.info is not None else None

    @property
    def finished(self) -> bool:
        """Definitively ended: the scheduler said so. Never queried again."""
        return self.info is not None and self.info.state.is_finished


@dataclass
class _Entry:
    view: JobView
    next_due: float = 0.0  # loop time
    urgent: bool = False  # refresh() asked: ahead of the budget
    ended_at: float | None = None  # loop time the end was seen
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def announce(self) -> None:
        self.view.version += 1
        self.wake()

    def wake(self) -> None:
        """Let waiters look again (refresh() waits for a lookup, changed or not)."""
        self.changed.set()
        self.changed = asyncio.Event()


def _visible(info: JobInfo | None) -> tuple[Any, ...] | None:
    """What a reader of the view would notice changing."""
    if info is None:
        return None
    return (info.state, info.raw_state, info.reason, info.queue, tuple(info.nodes),
            info.estimated_start, info.exit_code, info.position)  # fmt: skip


class JobMonitor:
    """One per cluster (`cluster.monitor`). Runs its own task from the first `track()`.

    Asks through `client` as each job's user, with that user's transport (`transport_for`).
    """

    def __init__(
        self,
        client: SchedulerClient,
        transport_for: TransportFor,
        settings: MonitorSettings | None = None,
        *,
        log: logging.Logger | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.name = client.cluster
        self._transport_for = transport_for
        self.settings = settings or MonitorSettings()
        self.log = log or _log
        self._wall = wall_clock
        self._entries: dict[str, _Entry] = {}
        self._busy: set[str] = set()  # users with a lookup in flight
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._tokens = float(self._burst)
        self._refilled: float | None = None
        self._positions_due: dict[str, float] = {}  # queue -> loop time
        self._closed = False

    # --- the API spawners use ------------------------------------------------------------

    def track(self, job_id: str, username: str, *, starting: bool = True) -> None:
        """Follow a job of this cluster user. Again with starting=False once its server is
        up (or for a job found after a hub restart): it is then looked up less often."""
        check_job_ids([job_id])  # ValueError now, not in a lookup later
        entry = self._entries.get(job_id)
        if entry is None:
            self._entries[job_id] = _Entry(JobView(job_id, username, starting=starting))
        else:
            entry.view.username, entry.view.starting = username, starting
        self._ensure_running()
        self._update_gauge()
        self._wake.set()

    def untrack(self, job_id: str) -> None:
        """Forget a job (its server was stopped and the job cancelled, or is no concern)."""
        entry = self._entries.pop(job_id, None)
        if entry is not None:
            entry.changed.set()  # waiters see it gone
            self._update_gauge()

    def get(self, job_id: str) -> JobView | None:
        """The monitor's view of the job (a copy), or None when it is not tracked."""
        entry = self._entries.get(job_id)
        return copy.deepcopy(entry.view) if entry is not None else None

    async def wait_for_change(
        self, job_id: str, timeout: float, since: int | None = None
    ) -> JobView | None:
        """The view as soon as its `version` passes `since` (default: its version now), or
        as it is after `timeout` seconds; None when the job is not (or no longer) tracked."""
        entry = self._entries.get(job_id)
        if entry is None:
            return None
        base = entry.view.version if since is None else since
        await self._wait(job_id, lambda view: view.version > base, timeout)
        return self.get(job_id)

    async def refresh(self, job_id: str, timeout: float = 30.0) -> JobView | None:
        """Look the job up now, ahead of the budget (e.g. the first poll() after a hub
        restart); the view after that lookup, or as it is after `timeout` seconds."""
        entry = self._entries.get(job_id)
        if entry is None:
            return None
        if not entry.view.finished:
            before = entry.view.checks
            entry.urgent, entry.next_due = True, 0.0
            self._wake.set()
            await self._wait(job_id, lambda view: view.checks > before, timeout)
        return self.get(job_id)

    async def close(self) -> None:
        self._closed = True
        tasks = [*self._tasks, *([self._runner] if self._runner else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._runner = None

    # --- waiting -------------------------------------------------------------------------

    async def _wait(self, job_id: str, done: Callable[[JobView], bool], timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            entry = self._entries.get(job_id)
            if entry is None or done(entry.view):
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(entry.changed.wait(), remaining)

    # --- the rounds ----------------------------------------------------------------------

    @property
    def _burst(self) -> int:
        # Tokens saved up at most: ten seconds' worth, so a burst of new jobs is seen soon.
        return max(1, self.settings.max_lookups_per_minute // 6)

    def _ensure_running(self) -> None:
        if self._closed:
            raise RuntimeError(f"the job monitor of cluster {self.name} is closed")
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            try:
                now = loop.time()
                self._refill(now)
                self._dispatch_lookups(now)
                self._dispatch_positions(now)
                self._forget_ended(now)
                wait = self._next_wake(loop.time())
            except Exception:  # the monitor must outlive any bug in one round
                self.log.exception("Job monitor of %s: round failed", self.name)
                wait = self.settings.starting_interval
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(wait, 0.01))

    def _refill(self, now: float) -> None:
        if self._refilled is not None:
            rate = self.settings.max_lookups_per_minute / 60.0
            self._tokens = min(self._burst, self._tokens + (now - self._refilled) * rate)
        self._refilled = now

    def _due(self, now: float) -> list[_Entry]:
        due = [
            e
            for e in self._entries.values()
            if not e.view.finished and e.next_due <= now and e.view.username not in self._busy
        ]
        due.sort(key=lambda e: (not e.urgent, e.next_due))
        return due

    def _dispatch_lookups(self, now: float) -> None:
        """Start lookups of due jobs, oldest first; each scheduler command takes a token
        (one asked for by refresh() goes ahead without)."""
        due: dict[str, list[_Entry]] = {}
        for entry in self._due(now):
            due.setdefault(entry.view.username, []).append(entry)
        batch_min = self.client.adapter.lookup_batch_min
        for username, entries in due.items():
            if batch_min is None:
                chunks = [entries]  # one command answers for any number of ids
            else:
                active = self._active_of(username)
                # A per-user query answers for all of the user's jobs: ask it for all.
                chunks = [active] if len(active) >= batch_min else [[e] for e in entries]
            taken: list[list[_Entry]] = []
            for chunk in chunks:
                if not any(e.urgent for e in chunk):
                    if self._tokens < 1:
                        break
                    self._tokens -= 1
                taken.append(chunk)
            if not taken:
                continue
            for entry in (e for chunk in taken for e in chunk):
                entry.urgent = False
                entry.next_due = float("inf")  # until its lookup ends
            self._busy.add(username)
            ids = [[e.view.job_id for e in chunk] for chunk in taken]
            self._spawn(self._lookup_user(username, ids))

    def _active_of(self, username: str) -> list[_Entry]:
        return [
            e for e in self._entries.values() if e.view.username == username and not e.view.finished
        ]

    def _next_wake(self, now: float) -> float:
        waits = [self.settings.interval]
        active = [e for e in self._entries.values() if not e.view.finished]
        for entry in active:
            if entry.view.username in self._busy or entry.next_due == float("inf"):
                continue
            wait = entry.next_due - now
            if wait <= 0 and self._tokens < 1 and not entry.urgent:
                wait = (1 - self._tokens) * 60.0 / self.settings.max_lookups_per_minute
            waits.append(wait)
        waits.extend(due - now for due in self._positions_due.values())
        return min(waits)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _lookup_user(self, username: str, chunks: list[list[str]]) -> None:
        """Look up one user's due jobs through that user's transport, a command per chunk."""
        try:
            await asyncio.gather(*(self._lookup(username, chunk) for chunk in chunks))
        finally:
            self._busy.discard(username)
            self._update_gauge()
            self._wake.set()

    async def _lookup(self, username: str, job_ids: list[str]) -> None:
        try:
            transport = self._transport_for(username)
            answers = await self.client.lookup(transport, job_ids, username)
            error = ""
        except (SchedulerError, TransportError, OSError) as exc:
            answers, error = {}, str(exc) or type(exc).__name__
        except Exception as exc:  # a bug or bad config: still no verdict on the jobs
            self.log.exception("Job monitor of %s: lookup of %s failed", self.name, job_ids)
            answers, error = {}, f"{type(exc).__name__}: {exc}"
        for job_id in job_ids:
            entry = self._entries.get(job_id)
            if entry is None:
                continue  # untracked meanwhile
            info = answers.get(job_id)
            if info is None:
                self._failed(entry, error or "the scheduler did not answer for this job")
            else:
                self._answered(entry, info)
            self._schedule(entry)
            entry.wake()  # an answer that changed nothing still ends a refresh()

    def _answered(self, entry: _Entry, info: JobInfo) -> None:
        view = entry.view
        before = (_visible(view.info), view.unknown)
        if view.info is not None and info.state is JobState.PENDING and info.position is None:
            if view.info.queue == info.queue:
                info.position = view.info.position  # positions come from their own scan
        view.info, view.last_seen, view.checks = info, self._wall(), view.checks + 1
        view.failures, view.unknown_since, view.error, view.unknown = 0, None, "", False
        if view.finished:
            entry.ended_at = asyncio.get_running_loop().time()
            self.log.info("Job %s of %s ended: %s", view.job_id, view.username, info.state.value)
        if (_visible(view.info), view.unknown) != before:
            entry.announce()

    def _failed(self, entry: _Entry, error: str) -> None:
        view = entry.view
        now = self._wall()
        view.checks, view.failures, view.error = view.checks + 1, view.failures + 1, error
        if view.unknown_since is None:
            view.unknown_since = now
        if not view.unknown and now - view.unknown_since >= self.settings.unknown_grace:
            view.unknown = True
            self.log.warning(
                "Job %s of %s: no answer from the scheduler for %.0f s (%s); it keeps its "
                "last known state %s",
                view.job_id,
                view.username,
                now - view.unknown_since,
                error,
                view.state.value if view.state else "(none yet)",
            )
            entry.announce()
        elif view.failures == 1:
            self.log.info("Job %s of %s: lookup failed: %s", view.job_id, view.username, error)

    def _schedule(self, entry: _Entry) -> None:
        view = entry.view
        # Fast only where an answer soon matters: a job that runs while its server starts
        # (it may die), or one with no answer yet. A queued job changes slowly, and its
        # start shows first in its connection file.
        fast = view.starting and view.state is not JobState.PENDING
        base = self.settings.starting_interval if fast else self.settings.interval
        entry.next_due = asyncio.get_running_loop().time() + self._jittered(base)

    def _jittered(self, seconds: float) -> float:
        spread = self.settings.jitter
        return seconds * random.uniform(1 - spread, 1 + spread)

    # --- queue positions -----------------------------------------------------------------

    def _dispatch_positions(self, now: float) -> None:
        if not self.settings.detail_interval:
            return
        pending: dict[str, list[_Entry]] = {}
        for entry in self._entries.values():
            info = entry.view.info
            if info is not None and info.state is JobState.PENDING and info.queue:
                pending.setdefault(info.queue, []).append(entry)
        for queue in list(self._positions_due):
            if queue not in pending:
                del self._positions_due[queue]
        for queue, entries in pending.items():
            if not self.client.lists_positions(queue):
                continue
            due = self._positions_due.setdefault(queue, now)
            if due <= now:
                self._positions_due[queue] = now + self._jittered(self.settings.detail_interval)
                self._spawn(self._positions(queue, entries[0].view.username))

    async def _positions(self, queue: str, username: str) -> None:
        try:
            transport = self._transport_for(username)
            positions = await self.client.positions(transport, queue)
        except Exception as exc:  # positions are a nicety: never a reason to stop
            self.log.info("Queue positions in %s unknown for now: %s", queue, exc)
            return
        for entry in self._entries.values():
            info = entry.view.info
            if info is None or info.state is not JobState.PENDING or info.queue != queue:
                continue
            position = positions.get(entry.view.job_id)
            if position != info.position:
                info.position = position
                entry.announce()

    # --- bookkeeping ---------------------------------------------------------------------

    def _forget_ended(self, now: float) -> None:
        keep = self.settings.remember_finished
        for job_id, entry in list(self._entries.items()):
            if entry.ended_at is not None and now - entry.ended_at > keep:
                self.untrack(job_id)

    def _counts(self) -> dict[str, int]:
        counts = dict.fromkeys(GAUGE_STATES, 0)
        for entry in self._entries.values():
            view = entry.view
            if view.unknown and not view.finished:
                counts["unknown"] += 1
            else:
                counts[view.state.value if view.state else "new"] += 1
        return counts

    def _update_gauge(self) -> None:
        for state, count in self._counts().items():
            TRACKED_JOBS.labels(self.name, state).set(count)
