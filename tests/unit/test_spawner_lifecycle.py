"""JobSpawner's lifecycle against a scheduler on paper: start through every phase to a
server that answers, poll of each way a job ends, stop, state saved and read back by a
restarted hub, and a cancel the scheduler does not confirm retried until it does.

The notebook forward leads to a small HTTP server on this machine's loopback, so the
start's last wait (the server answering through the tunnel) is real.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from hubdash.cluster import cluster as cluster_module
from hubdash.schedulers.base import JobState
from hubdash.spawner.hubstate import hub_state
from hubdash.spawner.jobspawner import JobSpawner
from hubdash.spawner.spawnerror import SpawnError
from hubdash.transport.base import Forward

from .fake_cluster import PaperLoginNodes, PaperScheduler, PaperTransport, paper_spawner

PHASES = ["submitted", "running", "connecting", "tunnel"]


class AnsweringTransport(PaperTransport):
    """Its notebook forward listens where `answer_port` answers HTTP, as a real one would."""

    answer_port = 0

    async def open_local_forward(self, dest_host, dest_port, *, listen_port=0, **_options):
        self.scheduler.forward_to = (dest_host, dest_port)
        return Forward("127.0.0.1", self.answer_port)


@pytest.fixture
async def paper(monkeypatch):
    scheduler = PaperScheduler()

    async def answer(reader, writer):
        await reader.read(100)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    AnsweringTransport.answer_port = server.sockets[0].getsockname()[1]
    monkeypatch.setattr(
        cluster_module,
        "make_transport",
        lambda login, user, keys, throttle, log=None: AnsweringTransport(scheduler, user),
    )
    saved: list[dict] = []
    monkeypatch.setattr(JobSpawner, "_save_state", lambda self: saved.append(self.get_state()))
    scheduler.saved = saved
    PaperLoginNodes().install(monkeypatch)
    yield scheduler
    server.close()
    await hub_state(None).clusters.close()


def make_spawner(**options) -> JobSpawner:
    queues = {"debug": {"max_walltime": "1:00:00", "max_nodes": 2}}
    spawner = paper_spawner("", queues, startup_timeout=10)
    spawner.api_token = "token"
    spawner.user_options = {"queue": "debug", "walltime": "0:10:00", "nodes": 1, **options}
    return spawner


async def started(scheduler: PaperScheduler) -> JobSpawner:
    spawner = make_spawner()
    address = await asyncio.wait_for(spawner.start(), 30)
    assert address == ("127.0.0.1", AnsweringTransport.answer_port)
    return spawner


async def test_a_start_goes_through_every_phase_to_a_server_that_answers(paper):
    spawner = make_spawner()
    address = await asyncio.wait_for(spawner.start(), 30)
    assert address == ("127.0.0.1", AnsweringTransport.answer_port)
    phases = [step.phase for step in spawner._progress.history]
    assert [p for p in phases if p in PHASES] == PHASES
    job = spawner.job
    assert job.job_id == "1000" and job.node == "cn1" and job.remote_port == 41234
    assert job.state_dir == ".hubdash/servers/h1/default" and job.token_sha256
    assert paper.forward_to == ("cn1", 41234)  # the tunnel goes to the job's own node
    # Saved at once after the submit (a hub dying then still knows the job) and once up.
    assert [s["job"]["job_id"] for s in paper.saved[:1]] == ["1000"]
    assert paper.saved[-1]["job"]["local_port"] == AnsweringTransport.answer_port
    assert [argv[0] for argv in paper.commands].count("sbatch") == 1
    assert not any(argv[0] == "scancel" for argv in paper.commands)


async def test_a_running_job_polls_as_running(paper):
    spawner = await started(paper)
    assert await spawner.poll() is None
    assert spawner.job.state == "running"


@pytest.mark.parametrize(
    ("state", "exit_code", "polled", "words"),
    [
        ("COMPLETED", "0:0", 0, "ended (COMPLETED"),
        ("FAILED", "3:0", 3, "exit code 3"),
        ("TIMEOUT", "0:15", 143, "TIMEOUT"),  # killed by signal 15: 128 + 15
        ("CANCELLED", "0:15", 143, "CANCELLED"),
        ("NODE_FAIL", "0:0", 0, "NODE_FAIL"),
    ],
)
async def test_each_way_a_job_ends_is_polled_as_ended_with_its_reason(
    paper, state, exit_code, polled, words
):
    spawner = await started(paper)
    job_id = spawner.job.job_id
    paper.jobs[job_id].state, paper.jobs[job_id].exit_code = state, exit_code
    await spawner.cluster.monitor.refresh(job_id, timeout=5)
    assert await spawner.poll() == polled
    assert spawner.last_outcome.job_id == job_id
    assert words in spawner.last_outcome.message
    assert spawner._tunnel is None  # JupyterHub calls no stop() for a server poll() ends


async def test_a_job_the_scheduler_forgot_is_polled_as_ended(paper):
    spawner = await started(paper)
    del paper.jobs[spawner.job.job_id]
    await spawner.cluster.monitor.refresh(spawner.job.job_id, timeout=5)
    assert await spawner.poll() == 0
    assert spawner.last_outcome.state == JobState.GONE.value


async def test_a_scheduler_that_does_not_answer_is_no_ended_job(paper):
    spawner = await started(paper)
    paper.failing = True
    await spawner.cluster.monitor.refresh(spawner.job.job_id, timeout=5)
    assert await spawner.poll() is None
    assert spawner.last_outcome is None


async def test_stop_cancels_the_job_and_says_so(paper):
    spawner = await started(paper)
    job_id = spawner.job.job_id
    await spawner.stop()
    assert ["scancel", job_id] in paper.commands
    assert paper.jobs[job_id].state == "CANCELLED"
    assert spawner.job.job_id == "" and spawner._tunnel is None
    assert spawner.last_outcome.message == f"Job {job_id} was stopped from the hub."
    assert await spawner.poll() == 0


async def test_a_start_that_fails_after_the_submit_cancels_its_job(paper, monkeypatch):
    async def broken(self, *args):
        raise SpawnError("the job's node went away")

    monkeypatch.setattr(JobSpawner, "_follow_job", broken)
    spawner = make_spawner()
    with pytest.raises(SpawnError, match="went away"):
        await asyncio.wait_for(spawner.start(), 30)
    assert ["scancel", "1000"] in paper.commands
    assert spawner.job.job_id == "" and spawner.last_outcome.job_id == "1000"


def test_a_failed_start_reads_the_same_in_the_hubs_log_and_on_the_spawn_page():
    # JupyterHub logs str(error); a '%' stays one '%'; the page shows the output escaped.
    error = SpawnError("Job 7 used 100% of its memory.", "oom <kill>")
    text = "Job 7 used 100% of its memory. Last lines of its output:\noom <kill>"
    assert str(error) == f"HTTP 500: Internal Server Error ({text})"
    assert error.jupyterhub_message == text
    assert error.jupyterhub_html_message == (
        "<p>Job 7 used 100% of its memory.</p><p>Last lines of its output:</p>"
        "<pre>oom &lt;kill&gt;</pre>"
    )


async def test_a_restarted_hub_reads_the_state_back_and_reopens_the_tunnel(paper):
    spawner = await started(paper)
    state = spawner.get_state()
    await hub_state(None).clusters.close()  # the old hub's monitors and connections
    again = make_spawner()
    again.load_state(state)
    assert again.job == spawner.job
    assert await again.poll() is None  # still running: re-adopted, not ended
    assert again._tunnel is not None
    assert again.job.local_port == AnsweringTransport.answer_port
    assert [argv[0] for argv in paper.commands].count("sbatch") == 1


async def test_a_cancel_the_scheduler_does_not_confirm_is_kept_and_retried(paper, monkeypatch):
    spawner = await started(paper)
    job_id = spawner.job.job_id
    paper.failing = True
    await spawner.stop()
    assert spawner.cancel_pending == [job_id]
    assert spawner.get_state()["cancel_pending"] == [job_id]
    spawner.clear_state()  # JupyterHub clears state even when stop() did not finish
    assert spawner.cancel_pending == [job_id]
    paper.failing = False
    spawner._cancel_retry.cancel()
    await spawner._retry_cancels(first_delay=0)
    assert spawner.cancel_pending == [] and paper.jobs[job_id].state == "CANCELLED"


async def test_a_stop_after_idling_says_how_long_and_what_it_gave_back(paper):
    from hubdash.metrics import IDLE_NODE_HOURS, IDLE_STOPS

    spawner = await started(paper)
    job_id, cluster = spawner.job.job_id, spawner.cluster.name
    spawner.idle_culler_timeout = 60
    spawner.job.started_at = time.time() - 120  # 10 min asked: 8 min of one node left
    spawner.orm_spawner.last_activity = datetime.now(UTC).replace(tzinfo=None) - timedelta(
        seconds=130
    )
    stops, hours = (
        IDLE_STOPS.labels(cluster=cluster)._value.get(),
        IDLE_NODE_HOURS.labels(cluster=cluster)._value.get(),
    )
    await spawner.stop()
    assert ["scancel", job_id] in paper.commands
    outcome = spawner.last_outcome
    assert outcome.message == (
        f"Job {job_id} was stopped after 2 minutes idle; 0.13 node-hours of walltime given back."
    )
    assert outcome.idle_seconds == pytest.approx(130, abs=2)
    assert outcome.node_hours_returned == 0.13
    assert IDLE_STOPS.labels(cluster=cluster)._value.get() == stops + 1
    assert IDLE_NODE_HOURS.labels(cluster=cluster)._value.get() == pytest.approx(hours + 0.13)


async def test_a_stop_of_a_server_in_use_is_no_idle_stop(paper):
    spawner = await started(paper)
    spawner.idle_culler_timeout = 60
    spawner.orm_spawner.last_activity = datetime.now(UTC).replace(tzinfo=None)
    await spawner.stop()
    assert spawner.last_outcome.message.endswith("was stopped from the hub.")
    assert spawner.last_outcome.idle_seconds is None
