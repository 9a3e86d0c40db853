"""A start estimate for a scheduler with no what-if query (OpenPBS), from what the queue holds.

Slurm answers "when would this job start?" itself (`sbatch --test-only`). PBS Pro does not,
but it estimates when each queued job starts (`estimated.start_time`), and a running job's
walltime bounds when its nodes come free. From those, in this order:

1. jobs wait in the queue: a new job queues behind them, so it starts about when the last of
   them does (the latest of the scheduler's estimates; none given: no estimate);
2. nothing waits and enough nodes are free: now;
3. nothing waits, the nodes are busy: when enough running jobs reach their walltime (they
   may end sooner, so this is the latest it should take).

Every answer says which rule gave it (`basis`), for the form to show beside the time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hubdash.schedulers.base import Backlog


@dataclass(frozen=True)
class StartGuess:
    """When a job would start (None: no estimate) and what the time rests on."""

    start: datetime | None
    basis: str = ""


def guess_start(
    backlog: Backlog, nodes_free: int | None, nodes_wanted: int, now: datetime
) -> StartGuess:
    """The start of a new job of `nodes_wanted` nodes in the queue `backlog` describes.

    >>> t = datetime(2026, 12, 4, 12, 0)
    >>> guess_start(Backlog(), 2, 1, t).start == t
    True
    >>> guess_start(Backlog(waiting_starts=[None]), 2, 1, t).start is None
    True
    """
    waiting = backlog.waiting_starts
    if waiting:
        known = [start for start in waiting if start is not None]
        jobs = f"{len(waiting)} job{'s' if len(waiting) != 1 else ''}"
        if not known:
            return StartGuess(None, f"{jobs} wait in this queue and the scheduler has no estimate")
        return StartGuess(
            max(max(known), now),
            f"after the {jobs} waiting in this queue, by the scheduler's own estimates",
        )
    free = nodes_free or 0
    if nodes_free is not None and free >= nodes_wanted:
        return StartGuess(now, "nodes are free and no job waits in this queue")
    for end, hosts in sorted(backlog.running_ends):
        free += hosts
        if free >= nodes_wanted:
            return StartGuess(
                max(end, now), "when running jobs reach their walltime, at the latest"
            )
    return StartGuess(None, "the nodes are busy and the scheduler has no estimate")
