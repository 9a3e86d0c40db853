"""JobMonitor's state machine against a scheduler on paper (tests/unit/fake_cluster.py)."""

from __future__ import annotations

import asyncio
import time
from functools import partial

import pytest

from hubdash.cluster.cluster import Cluster
from hubdash.cluster.config import ClusterConfig
from hubdash.cluster.monitor import MonitorSettings
from hubdash.schedulers.base import JobState

from ..monitor_views import view_once
from .fake_cluster import PaperJob, PaperScheduler, PaperTransport

# Short cadences so the state machine turns many times within a test; only upper bounds
# on waiting (so a hang fails), never assertions on time.
FAST = MonitorSettings(
    interval=0.05, starting_interval=0.02, detail_interval=0.05, unknown_grace=0.2, jitter=0.1
)
PATIENCE = 10.0


def make_cluster(
    scheduler: PaperScheduler, settings: MonitorSettings = FAST, kind: str = "slurm"
) -> Cluster:
    options = (("flavor", "slurm-torque"),) if kind == "pbs" else ()
    config = ClusterConfig(
        name="paper", scheduler=kind, scheduler_options=options, monitor=settings
    )
    return Cluster(config, transport_maker=lambda user, _keys: PaperTransport(scheduler, user))


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
    assert (view.state, view.failures, view.unknown_since) == (JobState.RUNNING, 0, None)


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
    cluster = make_cluster(scheduler, settings)
    try:
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
    finally:
        await cluster.close()


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
    cluster = make_cluster(scheduler, kind="pbs")
    try:
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
    finally:
        await cluster.close()


async def test_pbs_jobs_tracked_at_different_moments_are_still_asked_together():
    # Servers spawned at different moments fall due at different moments; asking only for
    # the due ones would cost one qstat per server a round (bench/README.md, section 1b).
    scheduler = PaperScheduler()
    cluster = make_cluster(scheduler, kind="pbs")
    monitor = cluster.monitor
    try:
        for job_id in ("61", "62", "63"):
            scheduler.jobs[job_id] = PaperJob("PENDING")
            monitor.track(job_id, "alice")
            await until(monitor, job_id, lambda v: v.info is not None, "an answer")
        settled = len(scheduler.commands)
        before = monitor.get("61").checks
        await until(monitor, "61", lambda v: v.checks >= before + 4, "four more lookups")
        later = [argv for argv in scheduler.commands[settled:] if argv[0] == "qstat"]
        assert later and all(argv[-3:] == ["61", "62", "63"] for argv in later)
    finally:
        await cluster.close()


async def test_refresh_asks_at_once_even_for_a_settled_job():
    scheduler = PaperScheduler()
    cluster = make_cluster(scheduler, MonitorSettings(interval=3600, starting_interval=3600))
    try:
        scheduler.jobs["41"] = PaperJob("PENDING")
        cluster.monitor.track("41", "alice", starting=False)
        await until(cluster.monitor, "41", lambda v: v.info is not None, "the first answer")
        scheduler.jobs["41"] = PaperJob("RUNNING", nodes="cn1")
        view = await cluster.monitor.refresh("41", timeout=PATIENCE)
        assert view.state is JobState.RUNNING
    finally:
        await cluster.close()


async def test_refresh_of_a_job_that_did_not_change_returns_after_its_lookup():
    # Its answer changes nothing a reader sees: refresh() must still end with the lookup,
    # not at its timeout.
    scheduler = PaperScheduler()
    cluster = make_cluster(scheduler, MonitorSettings(interval=3600, starting_interval=3600))
    try:
        scheduler.jobs["42"] = PaperJob("RUNNING", nodes="cn1")
        cluster.monitor.track("42", "alice", starting=False)
        await until(cluster.monitor, "42", lambda v: v.info is not None, "the first answer")
        checks = cluster.monitor.get("42").checks
        started = time.monotonic()
        view = await cluster.monitor.refresh("42", timeout=30)
        assert time.monotonic() - started < 5
        assert view.checks == checks + 1 and view.info.nodes == ["cn1"]
    finally:
        await cluster.close()


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
