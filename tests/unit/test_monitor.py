"""JobMonitor's state machine against a scheduler on paper (tests/unit/fake_cluster.py)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest

from hubdash.cluster.cluster import Cluster
from hubdash.cluster.config import ClusterConfig
from hubdash.cluster.monitor import GAUGE_STATES, MonitorSettings
from hubdash.metrics import TRACKED_JOBS
from hubdash.schedulers.base import JobState
from hubdash.transport.base import CommandResult, TransportError

from ..monitor_views import view_once
from .fake_cluster import PaperJob, PaperScheduler, PaperTransport

# Short cadences so the state machine turns many times within a test; only upper bounds
# on waiting (so a hang fails), never assertions on time.
FAST = MonitorSettings(
    interval=0.05, starting_interval=0.02, detail_interval=0.05, unknown_grace=0.2, jitter=0.1
)
PATIENCE = 10.0


def make_cluster(
    scheduler: PaperScheduler,
    settings: MonitorSettings = FAST,
    kind: str = "slurm",
    name: str = "paper",
) -> Cluster:
    options = (("flavor", "slurm-torque"),) if kind == "pbs" else ()
    config = ClusterConfig(name=name, scheduler=kind, scheduler_options=options, monitor=settings)
    return Cluster(config, transport_maker=lambda user, _keys: PaperTransport(scheduler, user))


# A monitor that asks once and then only when told to (refresh, wait_for_change).
SETTLED = MonitorSettings(interval=3600, starting_interval=3600)


@asynccontextmanager
async def paper_cluster(scheduler: PaperScheduler, *args: Any, **kwargs: Any):
    """make_cluster's cluster, closed (its monitor stopped) however the block ends."""
    cluster = make_cluster(scheduler, *args, **kwargs)
    try:
        yield cluster
    finally:
        await cluster.close()


@pytest.fixture
async def paper():
    scheduler = PaperScheduler()
    cluster = make_cluster(scheduler)
    yield scheduler, cluster, cluster.monitor
    await cluster.close()


# The view of a job once a check holds (see tests/monitor_views.py).
until = partial(view_once, patience=PATIENCE, poll=0.2)


async def test_tracked_job_follows_the_scheduler_from_pending_to_done(paper):
    scheduler, _, monitor = paper
    scheduler.jobs["41"] = PaperJob("PENDING", "Resources")
    monitor.track("41", "alice")
    view = await until(monitor, "41", lambda v: v.state is JobState.PENDING, "PENDING")
    assert (view.info.reason, view.info.queue, view.last_seen is not None) == (
        "Resources",
        "debug",
        True,
    )
    scheduler.jobs["41"] = PaperJob("RUNNING", "None", nodes="cn1")
    view = await until(monitor, "41", lambda v: v.state is JobState.RUNNING, "RUNNING")
    assert view.info.nodes == ["cn1"]
    scheduler.jobs["41"] = PaperJob("COMPLETED", "None", nodes="cn1", exit_code="0:0")
    view = await until(monitor, "41", lambda v: v.finished, "the end")
    assert (view.state, view.info.exit_code) == (JobState.DONE, 0)


async def test_slurm_lookups_are_single_job_scontrol_queries(paper):
    scheduler, _, monitor = paper
    scheduler.jobs.update({"41": PaperJob(), "42": PaperJob()})
    monitor.track("41", "alice")
    monitor.track("42", "alice")
    await until(monitor, "41", lambda v: v.info is not None, "an answer")
    await until(monitor, "42", lambda v: v.info is not None, "an answer")
    lookups = [argv for argv in scheduler.commands if argv[0] == "scontrol"]
    assert ["scontrol", "--local", "-o", "show", "job", "41"] in lookups
    assert all(len(argv) == 6 for argv in lookups)  # one id each: never a full scan
    assert not any(argv[0] == "squeue" and "-j" in argv for argv in scheduler.commands)


async def test_finished_job_is_remembered_and_never_queried_again(paper):
    scheduler, _, monitor = paper
    scheduler.jobs["41"] = PaperJob("FAILED", "NonZeroExitCode", exit_code="3:0")
    scheduler.jobs["42"] = PaperJob("RUNNING", "None", nodes="cn2")
    monitor.track("41", "alice")
    monitor.track("42", "bob")
    view = await until(monitor, "41", lambda v: v.finished, "the end")
    assert (view.state, view.info.exit_code) == (JobState.FAILED, 3)
    asked = scheduler.lookups_of("41")
    # Let the other job be looked up many more times meanwhile.
    before = monitor.get("42").checks
    await until(monitor, "42", lambda v: v.checks >= before + 5, "five more lookups of 42")
    assert scheduler.lookups_of("41") == asked
    assert monitor.get("41").finished


async def test_scheduler_failing_longer_than_a_round_leaves_a_running_job_running(paper):
    scheduler, _, monitor = paper
    scheduler.jobs["41"] = PaperJob("RUNNING", "None", nodes="cn1")
    monitor.track("41", "alice", starting=False)
    await until(monitor, "41", lambda v: v.state is JobState.RUNNING, "RUNNING")
    scheduler.failing = True
    view = await until(monitor, "41", lambda v: v.unknown, "unknown after the grace period")
    assert view.failures > 1  # failed for several rounds, not one
    assert (view.state, view.finished) == (JobState.RUNNING, False)
    assert "Socket timed out" in view.error and view.unknown_since is not None
    scheduler.failing = False
    view = await until(monitor, "41", lambda v: not v.unknown, "an answer again")
    assert (view.state, view.failures, view.unknown_since, view.error) == (
        JobState.RUNNING,
        0,
        None,
        "",
    )


async def test_lost_connection_is_no_verdict_on_the_job(paper):
    scheduler, _, monitor = paper
    scheduler.jobs["41"] = PaperJob("PENDING")
    monitor.track("41", "alice")
    await until(monitor, "41", lambda v: v.state is JobState.PENDING, "PENDING")
    scheduler.transport_down = True
    view = await until(monitor, "41", lambda v: v.failures >= 3, "three failed lookups")
    assert (view.state, view.finished) == (JobState.PENDING, False)
    assert "timed out" in view.error


async def test_new_job_without_any_answer_is_neither_running_nor_gone(paper):
    scheduler, _, monitor = paper
    scheduler.failing = True
    monitor.track("41", "alice")
    view = await until(monitor, "41", lambda v: v.unknown, "unknown")
    assert (view.info, view.state, view.finished) == (None, None, False)


async def test_only_the_scheduler_saying_it_does_not_know_the_job_ends_it(paper):
    scheduler, _, monitor = paper
    scheduler.jobs["41"] = PaperJob("RUNNING", nodes="cn1")
    monitor.track("41", "alice")
    await until(monitor, "41", lambda v: v.state is JobState.RUNNING, "RUNNING")
    del scheduler.jobs["41"]  # purged after MinJobAge: "Invalid job id specified"
    view = await until(monitor, "41", lambda v: v.finished, "the end")
    assert view.state is JobState.GONE


async def test_lookups_keep_within_the_budget_however_many_jobs_wait():
    scheduler = PaperScheduler()
    settings = MonitorSettings(
        interval=0.01, starting_interval=0.01, max_lookups_per_minute=60, jitter=0.0
    )
    async with paper_cluster(scheduler, settings) as cluster:
        for n in range(30):  # users with few jobs each: one lookup per job
            scheduler.jobs[str(100 + n)] = PaperJob(owner=f"user{n % 10}")
            cluster.monitor.track(str(100 + n), f"user{n % 10}")
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.sleep(0.5)
        elapsed = loop.time() - started
        looked_up = len([argv for argv in scheduler.commands if argv[0] == "scontrol"])
        # A burst of ten seconds' worth (10), then one a second; never one per job per round.
        assert 1 <= looked_up <= 10 + int(elapsed) + 1


async def test_user_with_many_jobs_is_asked_about_all_of_them_at_once(paper):
    scheduler, _, monitor = paper
    ids = [str(200 + n) for n in range(8)]
    for job_id in ids:
        scheduler.jobs[job_id] = PaperJob("PENDING", owner="dave")
        monitor.track(job_id, "dave")
    for job_id in ids:
        await until(monitor, job_id, lambda v: v.state is JobState.PENDING, "PENDING")
    per_user = [argv for argv in scheduler.commands if "-u" in argv]
    assert per_user and all(argv[argv.index("-u") + 1] == "dave" for argv in per_user)
    assert not any(argv[0] == "scontrol" for argv in scheduler.commands)
    del scheduler.jobs[ids[0]]  # not among dave's jobs any more: gone
    view = await until(monitor, ids[0], lambda v: v.finished, "the end")
    assert view.state is JobState.GONE
    assert monitor.get(ids[1]).state is JobState.PENDING


async def test_queue_positions_come_from_one_scan_per_queue(paper):
    scheduler, _, monitor = paper
    for job_id in ("41", "42", "43"):
        scheduler.jobs[job_id] = PaperJob("PENDING", "Priority")
        monitor.track(job_id, "alice")
    view = await until(monitor, "43", lambda v: v.info and v.info.position == 3, "position 3")
    assert monitor.get("41").info.position == 1
    scans = [argv for argv in scheduler.commands if argv[0] == "squeue"]
    assert scans and all("--states=PENDING" in argv and "debug" in argv for argv in scans)
    assert view.info.reason == "Priority"


async def test_pbs_jobs_of_one_user_share_one_qstat():
    scheduler = PaperScheduler()
    async with paper_cluster(scheduler, kind="pbs") as cluster:
        scheduler.jobs.update({"51": PaperJob("RUNNING"), "52": PaperJob("PENDING")})
        cluster.monitor.track("51", "alice")
        cluster.monitor.track("52", "alice")
        await until(cluster.monitor, "51", lambda v: v.state is JobState.RUNNING, "RUNNING")
        await until(cluster.monitor, "52", lambda v: v.state is JobState.PENDING, "PENDING")
        assert ["qstat", "-f", "51", "52"] in scheduler.commands
        del scheduler.jobs["52"]  # qstat: Unknown Job Id 52 is definitive
        view = await until(cluster.monitor, "52", lambda v: v.finished, "the end")
        assert view.state is JobState.GONE
        assert cluster.monitor.get("51").state is JobState.RUNNING


async def test_pbs_jobs_tracked_at_different_moments_are_still_asked_together():
    # Servers spawned at different moments fall due at different moments; asking only for
    # the due ones would cost one qstat per server a round (bench/README.md, section 1b).
    scheduler = PaperScheduler()
    async with paper_cluster(scheduler, kind="pbs") as cluster:
        monitor = cluster.monitor
        for job_id in ("61", "62", "63"):
            scheduler.jobs[job_id] = PaperJob("PENDING")
            monitor.track(job_id, "alice")
            await until(monitor, job_id, lambda v: v.info is not None, "an answer")
        settled = len(scheduler.commands)
        before = monitor.get("61").checks
        await until(monitor, "61", lambda v: v.checks >= before + 4, "four more lookups")
        later = [argv for argv in scheduler.commands[settled:] if argv[0] == "qstat"]
        assert later and all(argv[-3:] == ["61", "62", "63"] for argv in later)


async def test_refresh_asks_at_once_even_for_a_settled_job():
    scheduler = PaperScheduler()
    async with paper_cluster(
        scheduler, MonitorSettings(interval=3600, starting_interval=3600)
    ) as cluster:
        scheduler.jobs["41"] = PaperJob("PENDING")
        cluster.monitor.track("41", "alice", starting=False)
        await until(cluster.monitor, "41", lambda v: v.info is not None, "the first answer")
        scheduler.jobs["41"] = PaperJob("RUNNING", nodes="cn1")
        view = await cluster.monitor.refresh("41", timeout=PATIENCE)
        assert view.state is JobState.RUNNING


async def test_refresh_of_a_job_that_did_not_change_returns_after_its_lookup():
    # Its answer changes nothing a reader sees: refresh() must still end with the lookup,
    # not at its timeout.
    scheduler = PaperScheduler()
    async with paper_cluster(
        scheduler, MonitorSettings(interval=3600, starting_interval=3600)
    ) as cluster:
        scheduler.jobs["42"] = PaperJob("RUNNING", nodes="cn1")
        cluster.monitor.track("42", "alice", starting=False)
        await until(cluster.monitor, "42", lambda v: v.info is not None, "the first answer")
        checks = cluster.monitor.get("42").checks
        started = time.monotonic()
        view = await cluster.monitor.refresh("42", timeout=30)
        assert time.monotonic() - started < 5
        assert view.checks == checks + 1 and view.info.nodes == ["cn1"]


async def test_untracked_job_is_forgotten_and_its_waiters_told(paper):
    scheduler, _, monitor = paper
    scheduler.jobs["41"] = PaperJob("PENDING")
    monitor.track("41", "alice")
    await until(monitor, "41", lambda v: v.info is not None, "an answer")
    waiter = asyncio.ensure_future(monitor.wait_for_change("41", PATIENCE))
    await asyncio.sleep(0)
    monitor.untrack("41")
    assert await asyncio.wait_for(waiter, PATIENCE) is None
    assert monitor.get("41") is None


def test_settings_that_cannot_work_are_refused_with_their_name():
    with pytest.raises(ValueError, match="unknown_grace"):
        MonitorSettings(unknown_grace=0)
    with pytest.raises(ValueError, match="max_lookups_per_minute"):
        MonitorSettings(max_lookups_per_minute=0)


# --- the settings an admin may give --------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["interval", "starting_interval", "unknown_grace", "remember_finished"]
)
def test_each_period_must_be_above_zero_and_may_be_short(name):
    for bad in (0, -1):
        with pytest.raises(ValueError) as caught:
            MonitorSettings(**{name: bad})
        assert str(caught.value) == f"monitor {name} must be above 0, not {bad}"
    assert getattr(MonitorSettings(**{name: 0.5}), name) == 0.5


def test_queue_position_scans_may_be_switched_off_but_not_negative():
    assert MonitorSettings(detail_interval=0).detail_interval == 0
    assert MonitorSettings(detail_interval=0.5).detail_interval == 0.5
    with pytest.raises(ValueError) as caught:
        MonitorSettings(detail_interval=-1)
    assert str(caught.value) == "monitor detail_interval must be 0 or more: -1"


def test_the_lookup_budget_is_at_least_one_a_minute():
    assert MonitorSettings(max_lookups_per_minute=1).max_lookups_per_minute == 1
    with pytest.raises(ValueError) as caught:
        MonitorSettings(max_lookups_per_minute=0)
    assert str(caught.value) == "monitor max_lookups_per_minute must be at least 1"


def test_jitter_is_a_fraction_below_one():
    assert MonitorSettings(jitter=0).jitter == 0
    assert MonitorSettings(jitter=0.99).jitter == 0.99
    for bad in (1, 1.5, -0.1):
        with pytest.raises(ValueError) as caught:
            MonitorSettings(jitter=bad)
        assert str(caught.value) == f"monitor jitter must be in [0, 1), not {bad!r}"


# --- what an admin reads: logs and the tracked-jobs metric ---------------------------------


def running_jobs_of_twelve_users(scheduler, monitor, first: int) -> list[str]:
    """Twelve running jobs from `first` on, each of its own user, tracked: their ids."""
    ids = [str(first + n) for n in range(12)]
    for n, job_id in enumerate(ids):
        scheduler.jobs[job_id] = PaperJob("RUNNING", owner=f"user{n}")
        monitor.track(job_id, f"user{n}")
    return ids


def tracked(cluster: str) -> dict[str, float]:
    """hubdash_tracked_jobs of one cluster, by state (only the states with jobs)."""
    counts = {state: TRACKED_JOBS.labels(cluster, state)._value.get() for state in GAUGE_STATES}
    return {state: count for state, count in counts.items() if count}


def messages(caplog, level: int = logging.DEBUG) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level]


async def test_the_tracked_jobs_metric_counts_each_state_of_the_cluster():
    scheduler = PaperScheduler()
    settings = MonitorSettings(
        interval=0.05, starting_interval=0.02, unknown_grace=0.2, max_lookups_per_minute=6000
    )
    async with paper_cluster(scheduler, settings, name="metric-states") as cluster:
        monitor = cluster.monitor
        scheduler.failing = True
        monitor.track("41", "alice")
        monitor.track("42", "bob")
        assert tracked("metric-states") == {"new": 2}
        scheduler.jobs["41"] = PaperJob("PENDING")
        scheduler.jobs["42"] = PaperJob("RUNNING", nodes="cn1", owner="bob")
        await until(monitor, "41", lambda v: v.unknown, "unknown")
        await until(monitor, "42", lambda v: v.unknown, "unknown")
        assert tracked("metric-states") == {"unknown": 2}
        scheduler.failing = False
        await until(monitor, "41", lambda v: v.state is JobState.PENDING, "PENDING")
        await until(monitor, "42", lambda v: v.state is JobState.RUNNING, "RUNNING")
        await asyncio.sleep(0.1)
        assert tracked("metric-states") == {"pending": 1, "running": 1}
        scheduler.jobs["42"].state = "COMPLETED"
        await until(monitor, "42", lambda v: v.finished, "the end")
        await asyncio.sleep(0.1)
        assert tracked("metric-states") == {"pending": 1, "done": 1}
        monitor.untrack("41")
        assert tracked("metric-states") == {"done": 1}


async def test_a_failing_scheduler_is_logged_once_then_when_the_job_turns_unknown(caplog):
    caplog.set_level(logging.INFO)
    scheduler = PaperScheduler()
    async with paper_cluster(scheduler) as cluster:
        scheduler.jobs["41"] = PaperJob("RUNNING", nodes="cn1")
        cluster.monitor.track("41", "alice")
        await until(cluster.monitor, "41", lambda v: v.state is JobState.RUNNING, "RUNNING")
        scheduler.failing = True
        await until(cluster.monitor, "41", lambda v: v.unknown, "unknown")
        view = await until(cluster.monitor, "41", lambda v: v.failures >= 5, "more failures")
        assert view.unknown and view.checks == view.failures + 1  # one answer, then failures
        failed = [m for m in messages(caplog) if "lookup failed" in m]
        assert len(failed) == 1  # once, at the first failure
        assert failed[0].startswith("Job 41 of alice: lookup failed: ")
        assert failed[0].endswith("Socket timed out on send/recv")
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warned) == 1
        assert re.fullmatch(
            r"Job 41 of alice: no answer from the scheduler for \d+ s \(.*Socket timed out.*\); "
            r"it keeps its last known state running",
            warned[0],
        )
        seconds = int(re.search(r"for (\d+) s", warned[0]).group(1))
        assert seconds < 60  # the time since the first failure, not a clock reading


async def test_a_job_that_never_answered_is_logged_with_no_state_yet(caplog):
    caplog.set_level(logging.INFO)
    scheduler = PaperScheduler()
    async with paper_cluster(scheduler) as cluster:
        scheduler.failing = True
        cluster.monitor.track("41", "alice")
        await until(cluster.monitor, "41", lambda v: v.unknown, "unknown")
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warned) == 1 and warned[0].endswith("it keeps its last known state (none yet)")


async def test_the_end_of_a_job_is_logged_with_its_state(caplog):
    caplog.set_level(logging.INFO)
    scheduler = PaperScheduler()
    async with paper_cluster(scheduler) as cluster:
        scheduler.jobs["41"] = PaperJob("FAILED", "NonZeroExitCode", exit_code="3:0")
        cluster.monitor.track("41", "alice")
        await until(cluster.monitor, "41", lambda v: v.finished, "the end")
        assert "Job 41 of alice ended: failed" in messages(caplog)
        # Through the cluster's logger, which the hub's log settings reach.
        assert {r.name for r in caplog.records if "ended" in r.getMessage()} == {"hubdash.cluster"}
        assert not [m for m in caplog.records if m.levelno >= logging.WARNING]


async def test_a_bug_in_a_lookup_is_logged_and_is_no_verdict_on_the_job(caplog):
    scheduler = PaperScheduler()
    calls = []

    def broken(user, _keys):
        calls.append(user)
        raise RuntimeError("no transport for you")

    config = ClusterConfig(name="paper", scheduler="slurm", monitor=FAST)
    cluster = Cluster(config, transport_maker=broken)
    try:
        scheduler.jobs["41"] = PaperJob("RUNNING")
        cluster.monitor.track("41", "alice")
        view = await until(cluster.monitor, "41", lambda v: v.failures >= 2, "two failures")
        assert (view.state, view.finished, calls[0]) == (None, False, "alice")
        assert view.error == "RuntimeError: no transport for you"
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert errors and errors[0].getMessage() == "Job monitor of paper: lookup of ['41'] failed"
    finally:
        await cluster.close()


async def test_a_round_that_fails_is_logged_and_the_monitor_goes_on(caplog):
    scheduler = PaperScheduler()
    async with paper_cluster(scheduler, name="shaky") as cluster:
        monitor = cluster.monitor

        def broken(queue):
            raise RuntimeError("bug")

        monitor.client.lists_positions = broken
        scheduler.jobs["41"] = PaperJob("PENDING")
        monitor.track("41", "alice")
        await until(monitor, "41", lambda v: v.state is JobState.PENDING, "PENDING")
        before = monitor.get("41").checks
        await until(monitor, "41", lambda v: v.checks >= before + 2, "more lookups")
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert errors and set(errors) == {"Job monitor of shaky: round failed"}


async def test_a_failed_position_scan_is_logged_and_the_job_keeps_its_state(caplog):
    caplog.set_level(logging.INFO)
    scheduler = PaperScheduler()
    cluster = make_cluster(scheduler)
    answer = scheduler.answer

    def no_scans(argv):
        if argv[0] == "squeue" and "--states=PENDING" in argv:
            scheduler.commands.append(list(argv))
            return CommandResult(1, "", "squeue: error: slurmctld busy\n")
        return answer(argv)

    scheduler.answer = no_scans
    try:
        scheduler.jobs["41"] = PaperJob("PENDING")
        cluster.monitor.track("41", "alice")
        await until(cluster.monitor, "41", lambda v: v.state is JobState.PENDING, "PENDING")
        for _ in range(50):
            if any(m.startswith("Queue positions in debug unknown") for m in messages(caplog)):
                break
            await asyncio.sleep(0.05)
        logged = [m for m in messages(caplog) if m.startswith("Queue positions")]
        assert logged[0] == (
            "Queue positions in debug unknown for now: squeue could not list queue debug: "
            "squeue: error: slurmctld busy"
        )
        view = cluster.monitor.get("41")
        assert (view.state, view.info.position, view.unknown) == (JobState.PENDING, None, False)
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    finally:
        await cluster.close()


# --- what spawners see: copies, changes, waits ---------------------------------------------


async def test_a_view_handed_out_is_a_copy(paper):
    scheduler, _, monitor = paper
    scheduler.jobs["41"] = PaperJob("RUNNING", nodes="cn1")
    monitor.track("41", "alice")
    view = await until(monitor, "41", lambda v: v.info is not None, "an answer")
    view.info.nodes.append("cn9")
    view.info.reason = "changed by a reader"
    again = monitor.get("41")
    assert (again.info.nodes, again.info.reason) == (["cn1"], "Priority")


async def test_the_version_moves_with_visible_changes_only():
    scheduler = PaperScheduler()
    settings = MonitorSettings(interval=0.05, starting_interval=0.05, detail_interval=0)
    async with paper_cluster(scheduler, settings) as cluster:
        monitor = cluster.monitor
        scheduler.jobs["41"] = PaperJob("PENDING", "Resources")
        monitor.track("41", "alice", starting=False)
        assert monitor.get("41").version == 0
        view = await until(monitor, "41", lambda v: v.state is JobState.PENDING, "PENDING")
        first = view.version
        assert first > 0
        before = view.checks
        await until(monitor, "41", lambda v: v.checks >= before + 3, "three more lookups")
        assert monitor.get("41").version == first  # answers that change nothing
        scheduler.jobs["41"] = PaperJob("RUNNING", "None", nodes="cn1")
        view = await asyncio.wait_for(monitor.wait_for_change("41", PATIENCE), PATIENCE)
        assert view.version > first and view.state is JobState.RUNNING


async def test_wait_for_change_returns_at_once_for_a_change_already_seen():
    scheduler = PaperScheduler()
    settings = MonitorSettings(interval=3600, starting_interval=3600, detail_interval=0)
    async with paper_cluster(scheduler, settings) as cluster:
        monitor = cluster.monitor
        scheduler.jobs["41"] = PaperJob("PENDING")
        monitor.track("41", "alice")
        await until(monitor, "41", lambda v: v.state is JobState.PENDING, "PENDING")
        loop = asyncio.get_running_loop()
        started = loop.time()
        view = await monitor.wait_for_change("41", 8, since=0)  # nothing changes after this
        assert loop.time() - started < 4 and view.version > 0
        assert await monitor.wait_for_change("99", 30) is None
        assert await monitor.refresh("99") is None


async def test_wait_for_change_without_a_change_waits_its_timeout():
    scheduler = PaperScheduler()
    async with paper_cluster(
        scheduler, MonitorSettings(interval=3600, starting_interval=3600)
    ) as cluster:
        monitor = cluster.monitor
        scheduler.jobs["41"] = PaperJob("RUNNING", nodes="cn1")
        monitor.track("41", "alice", starting=False)
        await until(monitor, "41", lambda v: v.info is not None, "the first answer")
        loop = asyncio.get_running_loop()
        for timeout in (0.3, 1.2):
            started = loop.time()
            view = await monitor.wait_for_change("41", timeout)
            assert loop.time() - started >= timeout * 0.9
            assert view.state is JobState.RUNNING


async def test_a_waiter_is_woken_by_the_change_not_by_its_timeout():
    scheduler = PaperScheduler()
    settings = MonitorSettings(interval=0.05, starting_interval=0.05, detail_interval=0)
    async with paper_cluster(scheduler, settings) as cluster:
        monitor = cluster.monitor
        scheduler.jobs["41"] = PaperJob("PENDING")
        monitor.track("41", "alice")
        await until(monitor, "41", lambda v: v.state is JobState.PENDING, "PENDING")
        waiter = asyncio.ensure_future(monitor.wait_for_change("41", 60))
        await asyncio.sleep(0.1)
        assert not waiter.done()
        scheduler.jobs["41"] = PaperJob("RUNNING", nodes="cn1")
        view = await asyncio.wait_for(waiter, PATIENCE)
        assert view.state is JobState.RUNNING


async def test_refresh_of_an_ended_job_answers_at_once_without_asking():
    scheduler = PaperScheduler()
    async with paper_cluster(scheduler) as cluster:
        scheduler.jobs["41"] = PaperJob("COMPLETED", nodes="cn1")
        cluster.monitor.track("41", "alice")
        await until(cluster.monitor, "41", lambda v: v.finished, "the end")
        asked = len(scheduler.commands)
        loop = asyncio.get_running_loop()
        started = loop.time()
        view = await cluster.monitor.refresh("41", timeout=30)
        assert loop.time() - started < 5
        assert view.state is JobState.DONE and len(scheduler.commands) == asked


async def test_refresh_goes_ahead_of_a_spent_budget():
    scheduler = PaperScheduler()
    settings = MonitorSettings(interval=0.05, starting_interval=0.05, max_lookups_per_minute=1)
    async with paper_cluster(scheduler, settings) as cluster:
        scheduler.jobs["41"] = PaperJob("PENDING")
        cluster.monitor.track("41", "alice", starting=False)
        await until(cluster.monitor, "41", lambda v: v.info is not None, "the first answer")
        # The one token of the minute is spent: the next lookup would wait about a minute.
        scheduler.jobs["41"] = PaperJob("RUNNING", nodes="cn1")
        view = await cluster.monitor.refresh("41", timeout=5)
        assert view.state is JobState.RUNNING
        assert scheduler.lookups_of("41") == 2
        await asyncio.sleep(0.5)
        assert scheduler.lookups_of("41") == 2  # and the budget holds again after it


async def test_a_closed_monitor_takes_no_more_jobs_and_asks_no_more():
    scheduler = PaperScheduler()
    cluster = make_cluster(scheduler, name="closing")
    monitor = cluster.monitor
    scheduler.jobs["41"] = PaperJob("RUNNING", nodes="cn1")
    monitor.track("41", "alice")
    await until(monitor, "41", lambda v: v.info is not None, "an answer")
    await monitor.close()
    asked = len(scheduler.commands)
    with pytest.raises(RuntimeError) as caught:
        monitor.track("42", "alice")
    assert str(caught.value) == "the job monitor of cluster closing is closed"
    await asyncio.sleep(0.3)
    assert len(scheduler.commands) == asked
    await cluster.close()


# --- the cadence and the budget ------------------------------------------------------------


async def test_a_starting_running_job_is_asked_often_a_queued_or_settled_one_seldom():
    scheduler = PaperScheduler()
    settings = MonitorSettings(interval=3600, starting_interval=0.05, detail_interval=0)
    async with paper_cluster(scheduler, settings) as cluster:
        monitor = cluster.monitor
        scheduler.jobs["41"] = PaperJob("RUNNING", nodes="cn1")  # its server is starting
        scheduler.jobs["42"] = PaperJob("PENDING", owner="bob")  # queued
        scheduler.jobs["43"] = PaperJob("RUNNING", nodes="cn2", owner="carol")  # server up
        monitor.track("41", "alice")
        monitor.track("42", "bob")
        monitor.track("43", "carol", starting=False)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await until(monitor, "41", lambda v: v.checks >= 5, "five lookups of the starting job")
        assert loop.time() - started < 2.5  # about every 0.05 s, not every round's end
        assert monitor.get("42").checks == 1
        assert monitor.get("43").checks == 1
        # Its server is up: from now on as seldom as the others, keeping what is known of it.
        monitor.track("41", "alice", starting=False)
        view = monitor.get("41")
        assert (view.state, view.starting, view.checks >= 5) == (JobState.RUNNING, False, True)
        await asyncio.sleep(0.1)
        settled = monitor.get("41").checks
        await asyncio.sleep(0.4)
        assert monitor.get("41").checks <= settled + 1


async def test_a_new_job_without_an_answer_is_asked_again_soon():
    scheduler = PaperScheduler()
    settings = MonitorSettings(interval=3600, starting_interval=0.05, unknown_grace=3600)
    async with paper_cluster(scheduler, settings) as cluster:
        scheduler.failing = True
        cluster.monitor.track("41", "alice")
        await until(cluster.monitor, "41", lambda v: v.failures >= 3, "three failed lookups")


async def test_a_burst_of_new_jobs_is_seen_at_once_then_the_budget_holds(caplog):
    scheduler = PaperScheduler()
    settings = MonitorSettings(
        interval=0.01, starting_interval=0.01, max_lookups_per_minute=60, jitter=0.0
    )
    async with paper_cluster(scheduler, settings) as cluster:
        monitor = cluster.monitor
        ids = running_jobs_of_twelve_users(scheduler, monitor, 300)
        loop = asyncio.get_running_loop()
        started = loop.time()
        # Ten seconds' worth of the budget (10 lookups) at once; the rest one a second.
        for job_id in ids[:10]:
            await until(monitor, job_id, lambda v: v.info is not None, "an answer")
        assert loop.time() - started < 1.5
        assert sum(1 for j in ids if monitor.get(j).info is not None) == 10
        await asyncio.sleep(0.3)
        answered = sum(1 for j in ids if monitor.get(j).info is not None)
        assert answered == 10 or loop.time() - started >= 0.9
        await until(monitor, ids[11], lambda v: v.info is not None, "the twelfth answer")
        assert loop.time() - started >= 1.5  # two more tokens: about two seconds
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(("count", "per_user_query"), [(5, False), (6, True)])
async def test_from_six_jobs_a_user_is_asked_with_one_query(count, per_user_query):
    scheduler = PaperScheduler()
    async with paper_cluster(scheduler) as cluster:
        monitor = cluster.monitor
        ids = [str(400 + n) for n in range(count)]
        for job_id in ids:
            scheduler.jobs[job_id] = PaperJob("PENDING", owner="dave")
            monitor.track(job_id, "dave")
        scheduler.jobs["499"] = PaperJob("PENDING", owner="erin")
        monitor.track("499", "erin")
        for job_id in [*ids, "499"]:
            await until(monitor, job_id, lambda v: v.info is not None, "an answer")
        per_user = [argv for argv in scheduler.commands if argv[0] == "squeue" and "-u" in argv]
        single = {argv[-1] for argv in scheduler.commands if argv[0] == "scontrol"}
        assert bool(per_user) is per_user_query
        assert all(argv[argv.index("-u") + 1] == "dave" for argv in per_user)
        assert single == ({"499"} if per_user_query else {*ids, "499"})


# --- queue positions and the memory of ended jobs ------------------------------------------


async def test_a_position_is_kept_between_scans_and_scanned_once_per_period():
    scheduler = PaperScheduler()
    settings = MonitorSettings(interval=0.05, starting_interval=0.05, detail_interval=3600)
    async with paper_cluster(scheduler, settings) as cluster:
        monitor = cluster.monitor
        scheduler.jobs["40"] = PaperJob("PENDING")
        scheduler.jobs["41"] = PaperJob("PENDING")
        monitor.track("41", "alice")
        view = await until(monitor, "41", lambda v: v.info and v.info.position, "a position")
        assert view.info.position == 2
        before = view.checks
        await until(monitor, "41", lambda v: v.checks >= before + 4, "four more lookups")
        assert monitor.get("41").info.position == 2
        scans = [argv for argv in scheduler.commands if "--states=PENDING" in argv]
        assert len(scans) == 1


async def test_no_position_scans_when_switched_off():
    scheduler = PaperScheduler()
    settings = MonitorSettings(interval=0.05, starting_interval=0.05, detail_interval=0)
    async with paper_cluster(scheduler, settings) as cluster:
        scheduler.jobs["41"] = PaperJob("PENDING")
        cluster.monitor.track("41", "alice")
        await until(cluster.monitor, "41", lambda v: v.checks >= 4, "four lookups")
        assert not [argv for argv in scheduler.commands if "--states=PENDING" in argv]
        assert cluster.monitor.get("41").info.position is None


async def test_an_ended_job_is_remembered_for_a_while_then_forgotten(caplog):
    scheduler = PaperScheduler()
    settings = MonitorSettings(
        interval=0.05, starting_interval=0.05, detail_interval=0.05, remember_finished=0.5
    )
    async with paper_cluster(scheduler, settings) as cluster:
        monitor = cluster.monitor
        scheduler.jobs["40"] = PaperJob("RUNNING", nodes="cn1", owner="bob")
        monitor.track("40", "bob")
        scheduler.jobs["41"] = PaperJob("COMPLETED", nodes="cn1")
        monitor.track("41", "alice")
        await until(monitor, "41", lambda v: v.finished, "the end")
        loop = asyncio.get_running_loop()
        ended = loop.time()
        await asyncio.sleep(0.2)
        assert monitor.get("41") is not None
        while monitor.get("41") is not None:
            assert loop.time() - ended < PATIENCE, "never forgotten"
            await asyncio.sleep(0.05)
        assert loop.time() - ended >= 0.4
        assert monitor.get("40").state is JobState.RUNNING
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


class SlowTransport(PaperTransport):
    """A PaperTransport whose commands take `delay` seconds; `running` counts those under way
    per user, `most` the highest count seen."""

    running: dict[str, int] = {}
    most: dict[str, int] = {}

    def __init__(self, scheduler: PaperScheduler, username: str, delay: float) -> None:
        super().__init__(scheduler, username)
        self.delay = delay

    async def run(self, argv, *, input=None, timeout=30):
        user = self.username
        SlowTransport.running[user] = SlowTransport.running.get(user, 0) + 1
        SlowTransport.most[user] = max(SlowTransport.most.get(user, 0), self.running[user])
        try:
            await asyncio.sleep(self.delay)
            return await super().run(argv, input=input, timeout=timeout)
        finally:
            SlowTransport.running[user] -= 1


def slow_cluster(scheduler, settings, kind="slurm", delay=0.2) -> Cluster:
    SlowTransport.running, SlowTransport.most = {}, {}
    options = (("flavor", "slurm-torque"),) if kind == "pbs" else ()
    config = ClusterConfig(name="slow", scheduler=kind, scheduler_options=options, monitor=settings)
    return Cluster(
        config, transport_maker=lambda user, _keys: SlowTransport(scheduler, user, delay)
    )


async def test_a_user_has_one_lookup_under_way_at_a_time():
    scheduler = PaperScheduler()
    settings = MonitorSettings(interval=0.01, starting_interval=0.01, detail_interval=0)
    cluster = slow_cluster(scheduler, settings)
    try:
        scheduler.jobs["41"] = PaperJob("RUNNING", nodes="cn1")
        cluster.monitor.track("41", "alice")
        await until(cluster.monitor, "41", lambda v: v.checks >= 3, "three lookups")
        assert SlowTransport.most == {"alice": 1}
    finally:
        await cluster.close()


async def test_a_job_untracked_during_a_lookup_leaves_the_others_of_that_lookup_followed():
    scheduler = PaperScheduler()
    settings = MonitorSettings(interval=0.05, starting_interval=0.05, detail_interval=0)
    cluster = slow_cluster(scheduler, settings, kind="pbs", delay=0.3)
    monitor = cluster.monitor
    try:
        scheduler.jobs.update({"51": PaperJob("RUNNING"), "52": PaperJob("RUNNING")})
        monitor.track("51", "alice")
        monitor.track("52", "alice")
        await asyncio.sleep(0.1)  # the first qstat of both is under way
        monitor.untrack("51")
        await until(monitor, "52", lambda v: v.checks >= 2, "two lookups of 52")
    finally:
        await cluster.close()


async def test_the_first_failed_lookup_is_logged_at_once(caplog):
    caplog.set_level(logging.INFO)
    scheduler = PaperScheduler()
    async with paper_cluster(
        scheduler, MonitorSettings(interval=3600, starting_interval=3600)
    ) as cluster:
        scheduler.jobs["41"] = PaperJob("RUNNING", nodes="cn1")
        cluster.monitor.track("41", "alice")
        await until(cluster.monitor, "41", lambda v: v.info is not None, "the first answer")
        scheduler.failing = True
        view = await cluster.monitor.refresh("41", timeout=PATIENCE)
        assert (view.failures, view.checks, view.state) == (1, 2, JobState.RUNNING)
        assert [m for m in messages(caplog) if "lookup failed" in m] == [
            f"Job 41 of alice: lookup failed: {view.error}"
        ]


def test_untracking_a_job_that_is_not_tracked_is_harmless():
    monitor = make_cluster(PaperScheduler()).monitor
    monitor.untrack("41")
    assert monitor.get("41") is None


async def test_positions_in_two_queues_are_each_kept_and_asked_as_a_user_with_jobs_there(
    caplog,
):
    scheduler = PaperScheduler()
    opened: list[str] = []

    def transport(user, _keys):
        opened.append(user)
        if user == "zoe":
            raise TransportError("no route to login")
        return PaperTransport(scheduler, user)

    settings = MonitorSettings(interval=0.05, starting_interval=0.05, detail_interval=3600)
    config = ClusterConfig(name="paper", scheduler="slurm", monitor=settings)
    cluster = Cluster(config, transport_maker=transport)
    monitor = cluster.monitor
    try:
        monitor.track("39", "zoe")  # never answered: no state, no queue
        scheduler.jobs["40"] = PaperJob("PENDING", owner="bob")
        scheduler.jobs["41"] = PaperJob("PENDING", partition="batch")
        scheduler.jobs["42"] = PaperJob("PENDING")
        monitor.track("41", "alice")
        monitor.track("42", "alice")
        await until(monitor, "41", lambda v: v.info and v.info.position, "a position in batch")
        await until(monitor, "42", lambda v: v.info and v.info.position, "a position in debug")
        before = monitor.get("42").checks
        await until(monitor, "42", lambda v: v.checks >= before + 3, "three more lookups")
        assert (monitor.get("41").info.position, monitor.get("42").info.position) == (1, 2)
        assert set(opened) == {"zoe", "alice"}
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        await cluster.close()


async def test_refresh_goes_ahead_of_a_spent_budget_with_other_jobs_of_the_user_due():
    scheduler = PaperScheduler()
    settings = MonitorSettings(
        interval=0.05, starting_interval=0.05, max_lookups_per_minute=2, detail_interval=0
    )
    async with paper_cluster(scheduler, settings) as cluster:
        monitor = cluster.monitor
        scheduler.jobs.update({"41": PaperJob("PENDING"), "42": PaperJob("PENDING")})
        monitor.track("41", "alice", starting=False)
        monitor.track("42", "alice", starting=False)
        await until(monitor, "41", lambda v: v.info is not None, "an answer")
        await asyncio.sleep(0.2)  # 41 is due again, and no token is left
        scheduler.jobs["42"] = PaperJob("RUNNING", nodes="cn1")
        view = await monitor.refresh("42", timeout=5)
        assert view.state is JobState.RUNNING


async def test_an_error_without_a_message_is_named_by_its_kind():
    def unreachable(user, _keys):
        raise OSError()

    config = ClusterConfig(name="paper", scheduler="slurm", monitor=FAST)
    cluster = Cluster(config, transport_maker=unreachable)
    try:
        cluster.monitor.track("41", "alice")
        view = await until(cluster.monitor, "41", lambda v: v.failures >= 1, "a failed lookup")
        assert view.error == "OSError"
    finally:
        await cluster.close()


async def test_a_second_job_of_a_user_waits_for_the_lookup_under_way(caplog):
    scheduler = PaperScheduler()
    settings = MonitorSettings(interval=0.01, starting_interval=0.01, detail_interval=0, jitter=0.0)
    cluster = slow_cluster(scheduler, settings, delay=0.2)
    monitor = cluster.monitor
    try:
        scheduler.jobs.update({"41": PaperJob("RUNNING"), "42": PaperJob("RUNNING")})
        monitor.track("41", "alice")
        await asyncio.sleep(0.05)  # the lookup of 41 is under way
        monitor.track("42", "alice")
        await until(monitor, "42", lambda v: v.checks >= 2, "two lookups of 42")
        assert SlowTransport.most == {"alice": 1}
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # rounds meanwhile
    finally:
        await cluster.close()


async def test_with_the_budget_spent_the_monitor_wakes_for_the_next_token():
    # Long intervals: only the budget's own clock can wake the monitor for the last jobs.
    scheduler = PaperScheduler()
    settings = MonitorSettings(
        interval=3600, starting_interval=3600, detail_interval=0, max_lookups_per_minute=60
    )
    async with paper_cluster(scheduler, settings) as cluster:
        monitor = cluster.monitor
        ids = running_jobs_of_twelve_users(scheduler, monitor, 500)
        loop = asyncio.get_running_loop()
        started = loop.time()
        for job_id in ids:
            await until(monitor, job_id, lambda v: v.info is not None, "an answer")
        assert 1.5 <= loop.time() - started < 6  # ten at once, then one a second
