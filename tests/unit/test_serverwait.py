"""Waiting for a submitted job's server (hubdash.spawner.serverwait) on its own: queued,
running, where the job says its server listens, its engines, the server answering; each
limit, and what the user reads at each step.

The spawner's other parts are stand-ins (progress events and saved states are recorded),
the monitor plays a script of views, one per wait, and the clock is the test's: a wait
moves it on by the time waited, so the limits are exact and no test sleeps.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from hubdash.cluster.monitor import JobView
from hubdash.job.contract import CONNECTION_FILE_LIMIT, ServerAddress
from hubdash.schedulers.base import JobInfo, JobState
from hubdash.schedulers.pbs import PBSAdapter
from hubdash.schedulers.slurm import SlurmAdapter
from hubdash.serverstate import JobRecord
from hubdash.spawner import serverwait
from hubdash.spawner.enginestatus import EngineStatus
from hubdash.spawner.serverwait import ServerWait
from hubdash.spawner.spawnerror import SpawnError
from hubdash.transport.base import FileTooLarge, TransportError

STATE_DIR = "servers/s"
CONNECTION = f"{STATE_DIR}/connection.json"
JOB_LOG = f"{STATE_DIR}/job.log"
ENGINES = f"{STATE_DIR}/engines.json"
WALL = 1_700_000_000.0  # time.time() when the test's clock reads 0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Files:
    """The user's transport, as far as waiting uses it: files that exist, and their reads."""

    def __init__(self) -> None:
        self.files: dict[str, object] = {}  # content, an exception to raise, or a list of them
        self.unreachable: set[str] = set()  # paths whose look-up fails
        self.reads: list[tuple[str, int, str]] = []
        self.job_output = "last words"  # the end of the job's log, as read through it

    async def exists(self, path: str) -> bool:
        if path in self.unreachable:
            raise TransportError("the login node did not answer")
        return path in self.files

    async def read_file(self, path: str, *, max_bytes: int, what: str = "a file") -> bytes:
        self.reads.append((path, max_bytes, what))
        if path not in self.files:
            raise FileNotFoundError(path)
        content = self.files[path]
        if isinstance(content, list):
            content = content.pop(0) if len(content) > 1 else content[0]
        if isinstance(content, BaseException):
            raise content
        return content


class Monitor:
    """The cluster's monitor: `view` until a wait applies the script's next step (a dict of
    a new `view` and files that appear)."""

    def __init__(self, clock: Clock, files: Files, view: JobView | None, script=()) -> None:
        self.clock, self.files, self.view = clock, files, view
        self.script = list(script)
        self.waits: list[tuple[float, int | None]] = []
        self.refreshes: list[float] = []
        self.refreshed: JobView | None = None  # what refresh() answers; default: the view
        self.gets = 0

    def get(self, job_id: str) -> JobView | None:
        assert job_id == "1000"
        self.gets += 1
        assert self.gets < 10_000, "the wait never ends"  # a hang fails at once
        return replace(self.view) if self.view is not None else None

    async def refresh(self, job_id: str, timeout: float = 30.0) -> JobView | None:
        assert job_id == "1000"
        self.refreshes.append(timeout)
        return self.refreshed if self.refreshed is not None else self.get(job_id)

    async def wait_for_change(self, job_id: str, timeout: float, since=None) -> JobView | None:
        assert job_id == "1000"
        self.waits.append((timeout, since))
        self.clock.now += timeout
        if self.script:
            step = self.script.pop(0)
            self.view = step.get("view", self.view)
            self.files.files.update(step.get("files", {}))
        return self.get(job_id)


class Waiter(ServerWait):
    """ServerWait with the spawner's other parts as stand-ins."""

    def __init__(self, adapter=None, **settings) -> None:
        self.job = JobRecord(job_id="1000", queue="debug")
        self.state_dir = STATE_DIR
        self.queue_timeout, self.startup_timeout, self.engines_timeout = 600, 60, 30
        self.command_timeout, self.status_interval = 7, 2.0
        self.log = logging.getLogger("test.serverwait")
        self._log_name = "alice's server"
        self.events: list[tuple[str, str, dict]] = []
        self.saved: list[JobRecord] = []
        self.adapter = adapter or SlurmAdapter()
        self.cluster_config = SimpleNamespace(adapter=lambda: self.adapter)
        for key, value in settings.items():
            setattr(self, key, value)

    @property
    def job_id(self) -> str:
        return self.job.job_id

    async def _emit(self, phase: str, message: str, **details) -> None:
        self.events.append((phase, message, details))

    def _save_state(self) -> None:
        self.saved.append(replace(self.job, nodes=list(self.job.nodes)))

    async def _job_ended_error(self, transport, info: JobInfo) -> SpawnError:
        return SpawnError(
            f"Job {self.job_id} ended before its server started ({info.state.value}).",
            await self._log_tail(transport),
        )

    async def _log_tail(self, transport) -> str:
        return transport.job_output


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()

    async def sleep(seconds: float) -> None:
        clock.now += seconds
        await asyncio.sleep(0)

    loop = SimpleNamespace(time=clock)
    monkeypatch.setattr(
        serverwait, "asyncio", SimpleNamespace(get_running_loop=lambda: loop, sleep=sleep)
    )
    monkeypatch.setattr(
        serverwait, "time", SimpleNamespace(monotonic=clock, time=lambda: WALL + clock.now)
    )
    return clock


def job_view(state: JobState = JobState.PENDING, version: int = 1, **info) -> JobView:
    return JobView("1000", "alice", info=JobInfo("1000", state, **info), version=version)


def address(host: str = "cn1", port: int = 41234, job_id: str = "1000") -> bytes:
    return ServerAddress(job_id, host, port).encode()


async def wait_address(waiter: Waiter, monitor: Monitor, files: Files):
    cluster = SimpleNamespace(monitor=monitor, adapter=waiter.adapter)
    return await waiter._wait_for_server_address(cluster, files)


# --- queued -----------------------------------------------------------------------------------


async def test_a_queued_job_says_where_it_waits_why_and_its_place(clock):
    files = Files()
    estimate = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)
    queued = job_view(queue="debug", reason="Resources", position=3, estimated_start=estimate)
    monitor = Monitor(clock, files, queued, [{"files": {CONNECTION: address()}}])
    monitor.refreshed = job_view(JobState.RUNNING, 2, nodes=["cn1"])
    waiter = Waiter()
    assert await wait_address(waiter, monitor, files) == ("cn1", 41234)
    assert waiter.events[0] == (
        "pending",
        "Job 1000 is queued in debug (Resources), position 3",
        {
            "state": "pending",
            "reason": "Resources",
            "position": 3,
            "estimated_start": "2026-12-04T20:00:00+00:00",
        },
    )
    assert (waiter.job.reason, waiter.job.position) == ("", None)  # running now
    assert waiter.job.estimated_start == "2026-12-04T20:00:00+00:00"


async def test_a_queued_job_without_details_names_the_queue_it_was_sent_to(clock):
    files = Files()
    waiter = Waiter(queue_timeout=0.5)
    with pytest.raises(SpawnError):
        await wait_address(waiter, Monitor(clock, files, job_view(queue="")), files)
    assert waiter.events == [
        (
            "pending",
            "Job 1000 is queued in debug",
            {"state": "pending", "reason": "", "position": None, "estimated_start": None},
        )
    ]
    assert (waiter.job.reason, waiter.job.position, waiter.job.estimated_start) == ("", None, None)


async def test_a_job_the_scheduler_has_not_answered_for_yet_is_queued(clock):
    files = Files()
    waiter = Waiter(queue_timeout=0.5)
    no_answer = JobView("1000", "alice", info=None, version=1)
    with pytest.raises(SpawnError):
        await wait_address(waiter, Monitor(clock, files, no_answer), files)
    assert [message for _, message, _ in waiter.events] == ["Job 1000 is queued in debug"]


async def test_a_job_the_monitor_does_not_track_yet_is_only_waited_for(clock):
    files = Files()
    waiter = Waiter(queue_timeout=0.5)
    with pytest.raises(SpawnError):
        await wait_address(waiter, Monitor(clock, files, None), files)
    assert waiter.events == []


async def test_each_change_of_the_queued_job_is_told_once(clock):
    files = Files()
    first, moved = job_view(position=3), job_view(version=2, position=2)
    script = [{}, {}, {"view": moved}, {}, {"files": {CONNECTION: address()}}]
    monitor = Monitor(clock, files, first, script)
    monitor.refreshed = job_view(JobState.RUNNING, 3, nodes=["cn1"])
    waiter = Waiter()
    await wait_address(waiter, monitor, files)
    assert [message for _, message, _ in waiter.events] == [
        "Job 1000 is queued in debug, position 3",
        "Job 1000 is queued in debug, position 2",
        "Job 1000 is running on cn1",
    ]
    # Each wait wakes at the next change after the version seen, or after a second.
    assert monitor.waits == [(1.0, 1), (1.0, 1), (1.0, 1), (1.0, 2), (1.0, 2)]


async def test_a_job_that_ends_while_queued_fails_the_start_with_its_end(clock):
    files = Files()
    monitor = Monitor(clock, files, job_view(), [{"view": job_view(JobState.CANCELLED, 2)}])
    with pytest.raises(SpawnError) as caught:
        await wait_address(Waiter(), monitor, files)
    assert caught.value.jupyterhub_message == (
        "Job 1000 ended before its server started (cancelled)."
        " Last lines of its output:\nlast words"
    )


async def test_the_queue_limit_cancels_with_the_limit_as_hmmss(clock):
    files = Files()
    waiter = Waiter(queue_timeout=5)
    queued = job_view(reason="Priority", position=3)
    with pytest.raises(SpawnError) as caught:
        await wait_address(waiter, Monitor(clock, files, queued), files)
    assert caught.value.jupyterhub_message == (
        "Job 1000 waited in the queue longer than the limit of 0:00:05 (H:MM:SS) and was cancelled."
    )
    assert 1005 < clock.now <= 1006
    assert (waiter.job.state, waiter.job.reason, waiter.job.position) == ("", "Priority", 3)


# --- running ----------------------------------------------------------------------------------


async def test_a_running_job_says_on_which_nodes_and_is_saved_as_running(clock):
    files = Files()
    queued = job_view(reason="Priority", position=1)
    running = job_view(JobState.RUNNING, 2, nodes=["cn1", "cn2"])
    script = [{"view": running}, {"files": {CONNECTION: address("cn2")}}]
    waiter = Waiter()
    assert await wait_address(waiter, Monitor(clock, files, queued, script), files) == (
        "cn2",
        41234,
    )
    assert waiter.events[1:] == [
        (
            "running",
            "Job 1000 is running on cn1, cn2",
            {"state": "running", "node": "cn1", "nodes": ["cn1", "cn2"]},
        )
    ]  # once: the address that follows is no news
    job = waiter.job
    assert (job.state, job.started_at, job.nodes, job.node) == (
        "running",
        WALL + 1001,
        ["cn1", "cn2"],
        "cn1",
    )
    assert (job.reason, job.position) == ("", None)
    assert len(waiter.saved) == 1 and waiter.saved[0].state == "running"


async def test_a_running_job_without_node_names_says_its_node(clock):
    files = Files()
    monitor = Monitor(clock, files, job_view(JobState.RUNNING))
    waiter = Waiter(startup_timeout=0.5)
    with pytest.raises(SpawnError):
        await wait_address(waiter, monitor, files)
    assert waiter.events == [
        (
            "running",
            "Job 1000 is running on its node",
            {"state": "running", "node": "", "nodes": []},
        )
    ]


async def test_a_server_address_before_the_running_state_counts_as_running_there(clock):
    files = Files()
    files.files[CONNECTION] = address("cn1")
    monitor = Monitor(clock, files, job_view())
    monitor.refreshed = job_view(JobState.RUNNING, 2, nodes=["cn1"])
    waiter = Waiter()
    assert await wait_address(waiter, monitor, files) == ("cn1", 41234)
    assert [phase for phase, _, _ in waiter.events] == ["pending", "running"]
    assert waiter.events[1][1] == "Job 1000 is running on cn1"
    assert monitor.refreshes == [7]  # the nodes, asked once within the command timeout


async def test_the_start_limit_counts_from_the_jobs_start_not_from_the_submit(clock):
    files = Files()
    script = [{}, {}, {}, {"view": job_view(JobState.RUNNING, 2, nodes=["cn1"])}]
    monitor = Monitor(clock, files, job_view(), script)
    with pytest.raises(SpawnError) as caught:
        await wait_address(Waiter(queue_timeout=5, startup_timeout=3), monitor, files)
    assert caught.value.jupyterhub_message == (
        "Job 1000 runs, but its server did not start within 3 s and the job was cancelled."
        " Last lines of its output:\nlast words"
    )
    assert 1007 < clock.now <= 1008  # running from 1004 on


async def test_the_jobs_log_appearing_asks_the_scheduler_at_once_and_only_once(clock):
    files = Files()
    monitor = Monitor(clock, files, job_view(), [{"files": {JOB_LOG: b""}}, {}, {}])
    with pytest.raises(SpawnError):
        await wait_address(Waiter(queue_timeout=3), monitor, files)
    assert monitor.refreshes == [7]


# --- the connection file ----------------------------------------------------------------------


async def test_another_jobs_connection_file_is_left_until_ours_writes_its_own(clock):
    files = Files()
    files.files[CONNECTION] = address("cn2", job_id="999")
    script = [{}, {"files": {CONNECTION: address("cn1")}}]
    monitor = Monitor(clock, files, job_view(JobState.RUNNING, nodes=["cn1"]), script)
    assert await wait_address(Waiter(), monitor, files) == ("cn1", 41234)
    assert files.reads[0] == (CONNECTION, CONNECTION_FILE_LIMIT, "a connection file")
    assert len(files.reads) == 3


async def test_the_jobs_id_in_the_schedulers_other_spelling_is_ours(clock):
    files = Files()
    files.files[CONNECTION] = address("cn1", job_id="1000.pbs")
    monitor = Monitor(clock, files, job_view(JobState.RUNNING, nodes=["cn1"]))
    assert await wait_address(Waiter(PBSAdapter("pbspro")), monitor, files) == ("cn1", 41234)


@pytest.mark.parametrize(
    ("first", "why"),
    [
        (b'{"host": "cn1"}', "the connection file names no host and port"),  # half-written
        (TransportError("channel closed"), "channel closed"),
        (FileNotFoundError(CONNECTION), None),  # gone between the look and the read
    ],
    ids=["half-written", "transport", "gone"],
)
async def test_a_connection_file_not_readable_yet_is_read_again(clock, caplog, first, why):
    files = Files()
    files.files[CONNECTION] = [first, address()]
    monitor = Monitor(clock, files, job_view(JobState.RUNNING, nodes=["cn1"]))
    with caplog.at_level(logging.DEBUG, logger="test.serverwait"):
        assert await wait_address(Waiter(), monitor, files) == ("cn1", 41234)
    logged = [r.getMessage() for r in caplog.records]
    assert logged == ([f"Connection file of alice's server not readable yet: {why}"] if why else [])


async def test_a_connection_file_over_its_limit_fails_the_start_with_the_jobs_output(clock):
    files = Files()
    files.files[CONNECTION] = FileTooLarge(CONNECTION, 20000, 16384, where="login", what="x")
    monitor = Monitor(clock, files, job_view(JobState.RUNNING, nodes=["cn1"]))
    with pytest.raises(SpawnError) as caught:
        await wait_address(Waiter(), monitor, files)
    assert caught.value.jupyterhub_message == (
        "The connection file of job 1000 is too large to read: servers/s/connection.json on "
        "login is 20000 bytes, over the 16384-byte limit for x."
        " Last lines of its output:\nlast words"
    )


async def test_a_look_that_fails_is_no_file_yet(clock, caplog):
    files = Files()
    files.files[CONNECTION] = address()
    files.unreachable.add(CONNECTION)
    waiter = Waiter(startup_timeout=0.5)
    monitor = Monitor(clock, files, job_view(JobState.RUNNING, nodes=["cn1"]))
    with caplog.at_level(logging.DEBUG, logger="test.serverwait"), pytest.raises(SpawnError):
        await wait_address(waiter, monitor, files)
    assert files.reads == []
    assert caplog.records[0].getMessage() == (
        "Could not look for servers/s/connection.json yet: the login node did not answer"
    )


async def test_an_address_is_held_until_the_scheduler_names_the_jobs_nodes(clock, caplog):
    files = Files()
    files.files[CONNECTION] = address("cn1")
    nameless = job_view(JobState.RUNNING)
    script = [{}, {"view": job_view(JobState.RUNNING, 2, nodes=["cn1"])}]
    monitor = Monitor(clock, files, nameless, script)
    with caplog.at_level(logging.INFO, logger="test.serverwait"):
        assert await wait_address(Waiter(), monitor, files) == ("cn1", 41234)
    assert monitor.refreshes == [7, 7]  # asked each time the monitor had no nodes
    assert (
        "Job 1000 wrote where its server listens; waiting for the scheduler to name its "
        "nodes before tunnelling there"
    ) in [r.getMessage() for r in caplog.records]


# --- the server answering -----------------------------------------------------------------


class Tunnel:
    """Answers a probe (its round trip) from the `silent`-th probe on; None before."""

    def __init__(self, silent: int) -> None:
        self.silent, self.probes = silent, []

    async def probe(self, timeout: float):
        self.probes.append(timeout)
        assert len(self.probes) < 10_000, "the wait never ends"
        return 0.004 if len(self.probes) > self.silent else None


async def wait_answer(waiter: Waiter, monitor: Monitor, tunnel: Tunnel) -> None:
    cluster = SimpleNamespace(monitor=monitor, adapter=waiter.adapter)
    await waiter._wait_for_answer(cluster, monitor.files, tunnel)


async def test_a_server_that_answers_after_a_few_probes_is_ready(clock):
    files, tunnel = Files(), Tunnel(silent=3)
    monitor = Monitor(clock, files, job_view(JobState.RUNNING, nodes=["cn1"]))
    await wait_answer(Waiter(), monitor, tunnel)
    assert tunnel.probes == [2, 2, 2, 2]  # each probe within 2 s
    assert clock.now == pytest.approx(1000.3)  # 0.1 s between probes
    assert monitor.refreshes == []  # not silent for a status interval


async def test_a_silent_server_has_its_job_looked_up_every_status_interval(clock):
    files, tunnel = Files(), Tunnel(silent=25)  # 2.5 s
    monitor = Monitor(clock, files, job_view(JobState.RUNNING, nodes=["cn1"]))
    await wait_answer(Waiter(status_interval=1.0), monitor, tunnel)
    assert monitor.refreshes == [7, 7]  # past 1 s, past 2 s; each within the command timeout


async def test_a_job_that_ends_before_its_server_answers_fails_the_start_with_its_end(clock):
    files, tunnel = Files(), Tunnel(silent=1000)
    monitor = Monitor(clock, files, job_view(JobState.RUNNING, nodes=["cn1"]))
    monitor.refreshed = job_view(JobState.FAILED, 2, reason="NodeFail")
    with pytest.raises(SpawnError) as caught:
        await wait_answer(Waiter(status_interval=1.0), monitor, tunnel)
    assert caught.value.jupyterhub_message == (
        "Job 1000 ended before its server started (failed). Last lines of its output:\nlast words"
    )
    assert 1001 < clock.now < 1001.2


async def test_a_job_whose_lookup_has_no_answer_is_not_taken_for_ended(clock):
    files, tunnel = Files(), Tunnel(silent=15)
    monitor = Monitor(clock, files, None)  # no longer tracked: refresh answers None
    await wait_answer(Waiter(status_interval=1.0), monitor, tunnel)
    assert monitor.refreshes == [7]


async def test_a_running_server_that_never_answers_fails_the_start_with_its_output(clock):
    files, tunnel = Files(), Tunnel(silent=1000)
    monitor = Monitor(clock, files, job_view(JobState.RUNNING, nodes=["cn1"]))
    with pytest.raises(SpawnError) as caught:
        await wait_answer(Waiter(startup_timeout=3), monitor, tunnel)
    assert caught.value.jupyterhub_message == (
        "Job 1000 runs, but its server did not answer within 3 s and the job was cancelled."
        " Last lines of its output:\nlast words"
    )
    assert 1003 < clock.now < 1003.2


# --- engines --------------------------------------------------------------------------------


def engines(up: int, state: str = "starting", message: str = "", job_id: str = "1000") -> bytes:
    return EngineStatus(4, up, state, message=message, job_id=job_id).encode()


def shown(up: int, requested: int, state: str) -> dict:
    """A progress event's details of the engines."""
    return {
        "state": "running",
        "engines_up": up,
        "engines_requested": requested,
        "engines_state": state,
    }


@pytest.fixture
def watched(monkeypatch):
    """watch_engines as a script of statuses; the call's arguments recorded."""
    box = SimpleNamespace(statuses=[], calls=[])

    async def watch(transport, state_dir, job_id, timeout, interval, requested=0, *, same_job):
        box.calls.append((state_dir, job_id, timeout, interval, requested, same_job))
        for status in box.statuses:
            yield status

    monkeypatch.setattr(serverwait, "watch_engines", watch)
    return box


async def test_engines_are_told_as_they_come_up(watched):
    watched.statuses = [EngineStatus(4, 1, "starting"), EngineStatus(4, 4, "running")]
    waiter = Waiter(status_interval=3.0)
    waiter.job.engines = 4
    await waiter._wait_for_engines(Files())
    assert waiter.events == [
        (
            "engines",
            "Parallel engines starting: 1 of 4 up",
            shown(1, 4, "starting"),
        ),
        (
            "engines",
            "All 4 parallel engines are up",
            shown(4, 4, "running"),
        ),
    ]
    assert (waiter.job.engines_up, waiter.job.engines_state) == (4, "running")
    # Watched for engines_timeout, looking every half status interval, for this job's id.
    [(state_dir, job_id, timeout, interval, requested, same_job)] = watched.calls
    assert (state_dir, job_id, timeout, interval, requested) == (STATE_DIR, "1000", 30, 1.5, 4)
    assert same_job("1000", "1000") and not same_job("999", "1000")


async def test_failed_engines_are_told_with_their_reason_and_the_notebook_opens(watched):
    watched.statuses = [EngineStatus(4, 1, "failed", message="ipengine: not found")]
    waiter = Waiter()
    waiter.job.engines = 4
    await waiter._wait_for_engines(Files())
    assert [message for _, message, _ in waiter.events] == [
        "Parallel engines: 1 of 4 up; ipengine: not found"
    ]
    assert (waiter.job.engines_up, waiter.job.engines_state) == (1, "failed")


async def test_engines_not_all_up_in_time_leave_the_notebook_to_open(watched):
    watched.statuses = [EngineStatus(4, 1, "starting")]
    waiter = Waiter(engines_timeout=45.4)
    waiter.job.engines = 4
    await waiter._wait_for_engines(Files())
    assert waiter.events[-1] == (
        "engines",
        "1 of 4 parallel engines up after 45 s; opening the notebook, the others may still join",
        shown(1, 4, "starting"),
    )


async def test_engines_that_never_reported_are_none_up_and_starting(watched):
    waiter = Waiter()
    waiter.job.engines = 2
    await waiter._wait_for_engines(Files())
    assert waiter.events == [
        (
            "engines",
            "0 of 2 parallel engines up after 30 s; "
            "opening the notebook, the others may still join",
            shown(0, 2, "starting"),
        )
    ]


async def test_the_engine_count_is_read_again_for_the_dashboard():
    files = Files()
    waiter = Waiter(PBSAdapter("pbspro"))
    waiter.job.engines = 4
    files.files[ENGINES] = engines(3, job_id="1000.pbs")
    await waiter._refresh_engines(files)
    assert (waiter.job.engines_up, waiter.job.engines_state) == (3, "starting")
    assert files.reads == [(ENGINES, 16 * 1024, "an engine status file")]
    files.files[ENGINES] = engines(4, "running", job_id="999")  # an earlier job's
    await waiter._refresh_engines(files)
    assert (waiter.job.engines_up, waiter.job.engines_state) == (3, "starting")
    del files.files[ENGINES]
    await waiter._refresh_engines(files)
    assert (waiter.job.engines_up, waiter.job.engines_state) == (3, "starting")


async def test_unsettled_engines_are_shown_in_the_state_their_watcher_wrote(watched):
    watched.statuses = [EngineStatus(4, 2, "running")]
    waiter = Waiter()
    waiter.job.engines = 4
    await waiter._wait_for_engines(Files())
    assert waiter.events[-1][2] == shown(2, 4, "running")


async def test_an_engine_file_too_large_is_shown_as_failed_engines():
    files = Files()
    waiter = Waiter()
    waiter.job.engines = 4
    files.files[ENGINES] = FileTooLarge(ENGINES, 20000, 16384, where="login1")
    await waiter._refresh_engines(files)
    assert (waiter.job.engines_up, waiter.job.engines_state) == (0, "failed")


# --- where the file may point -----------------------------------------------------------------


async def refused_address(clock, host, port, nodes=("cn1",)) -> str:
    files = Files()
    files.files[CONNECTION] = ServerAddress("1000", host, port).encode()
    monitor = Monitor(clock, files, job_view(JobState.RUNNING, nodes=list(nodes)))
    with pytest.raises(SpawnError) as caught:
        await wait_address(Waiter(), monitor, files)
    return caught.value.jupyterhub_message


async def test_a_port_that_is_no_whole_number_is_refused(clock):
    assert await refused_address(clock, "cn1", 8081.0) == (
        "Job 1000 says its server listens on cn1:8081.0, but 8081.0 is not an unprivileged "
        "port (1024-65535); refusing to tunnel there."
    )


async def test_a_host_that_is_no_name_is_refused(clock):
    assert await refused_address(clock, 1234, 8081) == (
        "Job 1000 says its server listens on 1234:8081, which is not one of the job's nodes "
        "(cn1); refusing to tunnel there."
    )


@pytest.mark.parametrize("host", ["10.213.0.2", "10.213.0.2."])
async def test_an_address_is_never_read_as_the_node_of_its_first_number(clock, host):
    message = await refused_address(clock, host, 8081, nodes=["10"])
    assert message.startswith(f"Job 1000 says its server listens on {host}:8081, which is not")


async def test_a_name_that_only_starts_like_a_node_is_refused(clock):
    message = await refused_address(clock, "CN1X", 8081, nodes=["cn1"])
    assert message.startswith("Job 1000 says its server listens on CN1X:8081, which is not")


async def test_a_long_host_is_shown_cut_to_two_hundred_characters(clock):
    message = await refused_address(clock, "n" * 300, 8081)
    assert message.startswith(f"Job 1000 says its server listens on {'n' * 200}, which is not")


async def test_an_address_of_a_job_the_monitor_has_no_answer_for_is_held(clock):
    files = Files()
    files.files[CONNECTION] = address()
    for view in (None, JobView("1000", "alice", info=None, version=1)):
        monitor = Monitor(clock, files, view)  # refresh() answers the same: nothing
        with pytest.raises(SpawnError, match="waited in the queue longer"):
            await wait_address(Waiter(queue_timeout=3), monitor, files)
        assert monitor.refreshes  # asked, and held while there was no answer
