"""guess_start: a start estimate from what a queue holds (schedulers with no what-if query)."""

from __future__ import annotations

from datetime import datetime, timedelta

from hubdash.cluster.startguess import guess_start
from hubdash.schedulers.base import Backlog

NOW = datetime(2026, 12, 4, 12, 0)


def at(minutes: int) -> datetime:
    return NOW + timedelta(minutes=minutes)


def test_behind_waiting_jobs_the_latest_of_their_estimates():
    guess = guess_start(Backlog(waiting_starts=[at(5), at(30), None]), 2, 1, NOW)
    assert guess.start == at(30)
    assert guess.basis == "after the 3 jobs waiting in this queue, by the scheduler's own estimates"


def test_waiting_jobs_without_any_estimate_give_none_and_say_so():
    guess = guess_start(Backlog(waiting_starts=[None]), 2, 1, NOW)
    assert guess.start is None and "1 job wait" in guess.basis


def test_an_estimate_in_the_past_means_now():
    assert guess_start(Backlog(waiting_starts=[at(-3)]), 0, 1, NOW).start == NOW


def test_free_nodes_and_nothing_waiting_is_now():
    assert guess_start(Backlog(running_ends=[(at(50), 2)]), 2, 2, NOW).start == NOW


def test_busy_nodes_free_up_as_running_jobs_reach_their_walltime():
    backlog = Backlog(running_ends=[(at(40), 1), (at(10), 1), (at(25), 2)])
    assert guess_start(backlog, 0, 1, NOW).start == at(10)
    assert guess_start(backlog, 0, 2, NOW).start == at(25)
    assert guess_start(backlog, 1, 4, NOW).start == at(25)  # 1 free + 1 + 2
    assert guess_start(backlog, 0, 4, NOW).start == at(40)


def test_more_nodes_than_will_ever_be_free_gives_none():
    guess = guess_start(Backlog(running_ends=[(at(10), 1)]), 0, 3, NOW)
    assert guess.start is None and "busy" in guess.basis


def test_unknown_free_nodes_with_nothing_running_gives_none():
    assert guess_start(Backlog(), None, 1, NOW).start is None
