"""JobSpawner's lifecycle against a scheduler on paper: start through every phase to a
server that answers (what the spawn page reads, the job saved at the submit, the hub forward
the job calls the hub through), a start that fails and what it then says, poll of a running
job (its tunnel, round trip and engines, a forward lost or not had back) and of each way a
job ends, stop, state saved and read back by a restarted hub, and a cancel the scheduler
does not confirm retried until it does.

The notebook forward leads to a small HTTP server on this machine's loopback, so the
start's last wait (the server answering through the tunnel) is real.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest

from hubdash.cluster import cluster as cluster_module
from hubdash.job.contract import RELAY_ENV, HubRoute, decode_env
from hubdash.schedulers.base import JobState
from hubdash.spawner.enginestatus import EngineStatus
from hubdash.spawner.hubstate import hub_state
from hubdash.spawner.jobspawner import JobSpawner
from hubdash.spawner.spawnerror import SpawnError
from hubdash.transport.base import Forward, TransportError

from .fake_cluster import (
    START_BOUND,
    PaperJob,
    PaperLoginNodes,
    PaperScheduler,
    PaperTransport,
    paper_spawner,
)

PHASES = ["submitted", "running", "connecting", "tunnel"]
FOLDER = ".hubdash/servers/h1/default"


class AnsweringTransport(PaperTransport):
    """Its notebook forward listens where `answer_port` answers HTTP, as a real one would.
    Its hub forwards are refused while `scheduler.login_forwards_down`, and on a login-node
    port in `scheduler.login_ports_taken`."""

    answer_port = 0

    async def open_local_forward(self, dest_host, dest_port, *, listen_port=0, **_options):
        self.scheduler.forward_to = (dest_host, dest_port)
        self.scheduler.notebook_forwards += 1
        self.scheduler.notebook_forward_opened.set()
        return Forward("127.0.0.1", self.answer_port)

    async def open_remote_forward(self, listen_host, listen_port, dest_host, dest_port):
        if self.scheduler.login_forwards_down or listen_port in self.scheduler.login_ports_taken:
            raise TransportError(f"login.example.org refused a forward on port {listen_port}")
        port = listen_port or 40001 + len(self.scheduler.login_ports_taken)
        self.scheduler.hub_forwards.append(port)
        return Forward(listen_host, port)


@pytest.fixture
async def paper(monkeypatch):
    """The scheduler on paper, with what this module's tests turn: `answering` (the server
    behind the notebook forward), the forwards opened, the states saved (`saved`)."""
    scheduler = PaperScheduler()
    scheduler.answering = True  # the server behind the notebook forward answers HTTP
    scheduler.notebook_forwards, scheduler.hub_forwards = 0, []
    scheduler.login_forwards_down, scheduler.login_ports_taken = False, set()

    async def answer(reader, writer):
        await reader.read(100)
        if scheduler.answering:
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


def make_spawner(settings: dict | None = None, **options) -> JobSpawner:
    queues = {"debug": {"max_walltime": "1:00:00", "max_nodes": 2, "max_engines": 8}}
    spawner = paper_spawner("", queues, **{"startup_timeout": 5, **(settings or {})})
    spawner.api_token = "token"
    spawner.user_options = {"queue": "debug", "walltime": "0:10:00", "nodes": 1, **options}
    return spawner


async def started(scheduler: PaperScheduler, settings: dict | None = None) -> JobSpawner:
    spawner = make_spawner(settings)
    address = await asyncio.wait_for(spawner.start(), START_BOUND)
    assert address == ("127.0.0.1", AnsweringTransport.answer_port)
    return spawner


def route(scheduler: PaperScheduler) -> HubRoute:
    """Where the job's relay reads that the hub forward listens."""
    return HubRoute.decode(scheduler.files[f"{FOLDER}/hub-route.json"])


async def until(condition) -> None:
    async with asyncio.timeout(START_BOUND):
        while not condition():  # noqa: ASYNC110 - the paper cluster has no event for it
            await asyncio.sleep(0.01)


async def test_a_start_goes_through_every_phase_to_a_server_that_answers(paper, caplog):
    caplog.set_level(logging.INFO)
    spawner = make_spawner()
    address = await asyncio.wait_for(spawner.start(), START_BOUND)
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
    assert "Submitted job 1000 for alice" in caplog.messages


async def test_the_spawn_page_reads_what_each_phase_did(paper):
    spawner = await started(paper)
    port = AnsweringTransport.answer_port
    events = {event["hubdash"]["phase"]: event async for event in spawner.progress()}

    def said(phase: str) -> tuple[str, dict]:
        event = events[phase]
        details = {k: v for k, v in event["hubdash"].items() if k not in ("phase", "time")}
        return event["message"], details

    assert said("submitted") == (
        "Job 1000 submitted to queue debug",
        {
            "job_id": "1000", "state": "pending", "queue": "debug", "node_count": 1,
            "engines": 0, "walltime_seconds": 600, "queue_timeout": 4 * 3600,
        },
    )  # fmt: skip
    assert said("connecting") == (
        "Server starting on cn1:41234",
        {"job_id": "1000", "state": "running", "node": "cn1", "port": 41234},
    )
    assert said("tunnel") == (
        f"Tunnel open: 127.0.0.1:{port} → cn1:41234; waiting for the server to answer",
        {
            "job_id": "1000",
            "state": "running",
            "tunnel": {
                "hub_forward": {"port": None, "open": False},
                "notebook_forward": {
                    "local_port": port, "node": "cn1", "remote_port": 41234, "open": True,
                },
                "rtt_ms": None,
            },
        },
    )  # fmt: skip


async def test_the_job_is_saved_as_submitted_and_its_script_is_where_sbatch_reads_it(paper):
    before = time.time()
    await started(paper)
    job = paper.saved[0]["job"]  # saved at once after the submit
    assert {key: job[key] for key in ("job_id", "job_name", "state", "queue")} == {
        "job_id": "1000",
        "job_name": "jupyterhub-h1-alice-default",
        "state": "pending",
        "queue": "debug",
    }
    assert (job["node_count"], job["walltime_seconds"]) == (1, 600)
    assert before <= job["submitted_at"] <= time.time()
    script = f"{FOLDER}/job.sh"
    assert ["sbatch", "--parsable", script] in paper.commands
    assert paper.files[script].startswith(b"#!") and paper.modes[script] == 0o700
    assert paper.modes[f"{FOLDER}/env.json"] == 0o600  # the server's token


async def test_slurms_qsub_wrapper_is_told_where_the_jobs_output_goes(paper):
    # PBS's slurm-torque flavor: the wrapper's own output path would beat the script's #PBS
    # line, and the hub watches for the job's output where it asked for it.
    spawner = make_spawner({"scheduler": "pbs", "pbs_flavor": "slurm-torque"})
    with pytest.raises(SpawnError):  # the paper cluster speaks Slurm: it has no qsub
        await asyncio.wait_for(spawner.start(), START_BOUND)
    qsub = [argv for argv in paper.commands if argv[0] == "qsub"]
    assert qsub == [["qsub", "-j", "oe", "-r", "n", "-o", f"{FOLDER}/job.log", f"{FOLDER}/job.sh"]]


async def test_the_monitor_asks_often_while_the_server_starts_and_seldom_once_it_is_up(paper):
    paper.answering = False
    spawner = make_spawner()
    start = asyncio.ensure_future(spawner.start())
    try:
        await asyncio.wait_for(paper.notebook_forward_opened.wait(), START_BOUND)
        monitor = spawner.cluster.monitor
        assert monitor.get("1000").starting is True  # its server may still die: asked often
        paper.answering = True
        await asyncio.wait_for(asyncio.shield(start), START_BOUND)
        assert monitor.get("1000").starting is False
    finally:
        start.cancel()
        await asyncio.gather(start, return_exceptions=True)


async def test_the_job_calls_the_hub_through_its_forward_and_follows_it_when_it_moves(
    paper, caplog
):
    spawner = await started(paper, {"forward_hub_api": True})
    env = decode_env(paper.files[f"{FOLDER}/env.json"])
    assert env[RELAY_ENV] == "1"  # the launcher starts the relay that follows the forward
    assert urlsplit(env["JUPYTERHUB_API_URL"]).netloc == "login.example.org:40001"
    assert route(paper) == HubRoute("login.example.org", 40001)
    assert paper.saved[0]["job"]["hub_forward_port"] == 40001
    # An SSH reconnect found the port taken: the transport opened the forward on another.
    forward = spawner._tunnel.hub_forward
    forward.listen_port = 40002
    forward._announce_reopen()
    await until(lambda: paper.saved[-1]["job"]["hub_forward_port"] == 40002)
    assert route(paper) == HubRoute("login.example.org", 40002)
    assert (
        "Hub forward of alice moved from port 40001 to 40002 on the login node" in caplog.messages
    )
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_a_running_job_polls_as_running(paper):
    spawner = await started(paper)
    assert await spawner.poll() is None
    assert spawner.job.state == "running"


async def test_a_poll_of_a_running_job_keeps_its_tunnel_and_shows_the_round_trip(paper):
    spawner = await started(paper)
    tunnel, lookups = spawner._tunnel, paper.lookups_of("1000")
    paper.reads.clear()  # those of the start
    paper.answering = False
    assert await spawner.poll() is None
    assert spawner.get_state()["tunnel"]["rtt_ms"] is None  # no answer: no round trip shown
    paper.answering = True
    assert await spawner.poll() is None
    assert spawner.get_state()["tunnel"]["rtt_ms"] is not None
    assert spawner._tunnel is tunnel and paper.notebook_forwards == 1  # never opened again
    assert paper.hub_forwards == []  # this hub forwards no hub API: none opened
    assert paper.lookups_of("1000") == lookups  # the monitor's answer: no command of its own
    assert paper.reads == []  # nor a file: it has no engines to count


async def test_a_start_with_engines_waits_for_them_and_each_poll_counts_them_again(paper):
    def submit(script_path: str):
        result = PaperScheduler._submit(paper, script_path)
        job_id = result.stdout.strip()
        paper.files[f"{FOLDER}/engines.json"] = EngineStatus(
            4, 4, "running", job_id=job_id
        ).encode()
        return result

    paper._submit = submit
    spawner = make_spawner(engines=4)
    await asyncio.wait_for(spawner.start(), START_BOUND)
    assert spawner.get_state()["job"]["engines_up"] == 4
    paper.files[f"{FOLDER}/engines.json"] = EngineStatus(4, 3, "running", job_id="1000").encode()
    assert await spawner.poll() is None
    assert spawner.get_state()["job"]["engines_up"] == 3  # what the dashboard shows


async def test_a_tunnel_the_forward_keeper_lost_is_opened_again_on_its_port(paper, caplog):
    spawner = await started(paper)
    old = spawner._tunnel

    async def lost() -> bool:  # the keeper's answer to a renewal of a forward it lost
        return False

    old.notebook_forward.renew = lost
    assert await spawner.poll() is None
    assert "The forward keeper lost the tunnel of alice" in caplog.messages
    assert spawner._tunnel is not old and not old.notebook_forward.is_open
    assert paper.notebook_forwards == 2
    assert spawner.get_state()["tunnel"]["notebook_forward"] == {
        "local_port": AnsweringTransport.answer_port,  # where the proxy's route points
        "node": "cn1",
        "remote_port": 41234,
        "open": True,
    }


async def test_a_hub_forward_not_had_back_after_a_restart_is_tried_again_and_the_job_follows(
    paper, caplog
):
    spawner = await started(paper, {"forward_hub_api": True})
    state = spawner.get_state()
    await hub_state(None).clusters.close()  # the old hub's monitors and connections
    again = make_spawner({"forward_hub_api": True})
    again.load_state(state)
    paper.login_forwards_down = True
    assert await again.poll() is None
    assert again.get_state()["tunnel"]["hub_forward"]["open"] is False
    assert again.get_state()["tunnel"]["notebook_forward"]["open"] is True
    assert (
        "Hub forward of alice not re-opened on port 40001: "
        "login.example.org refused a forward on port 40001"
    ) in caplog.messages
    # At the next poll the login node forwards again, but someone took the old port.
    paper.login_forwards_down, paper.login_ports_taken = False, {40001}
    assert await again.poll() is None
    assert again.get_state()["tunnel"]["hub_forward"] == {"port": 40002, "open": True}
    assert route(paper) == HubRoute("login.example.org", 40002)
    assert again.get_state()["job"]["hub_forward_port"] == 40002


async def test_a_status_unknown_for_long_is_logged_and_the_job_keeps_its_last_state(paper, caplog):
    spawner = await started(paper, {"monitor_unknown_grace": 0.01})
    paper.failing = True
    for _ in range(2):  # failed lookups for longer than the grace
        await spawner.cluster.monitor.refresh("1000", timeout=5)
        await asyncio.sleep(0.02)
    assert spawner.cluster.monitor.get("1000").unknown
    assert await spawner.poll() is None
    assert spawner.job.state == "running" and spawner.last_outcome is None
    assert (  # with the scheduler's own words
        "Status of job 1000 unknown for now: scontrol show job 1000 failed (exit 1): "
        "slurm_load_jobs error: Socket timed out on send/recv"
    ) in caplog.messages


@pytest.mark.parametrize(
    ("state", "exit_code", "polled", "words"),
    [
        ("COMPLETED", "0:0", 0, "ended (COMPLETED"),
        ("FAILED", "3:0", 3, "exit code 3"),
        ("FAILED", "1:0", 1, "exit code 1"),
        ("TIMEOUT", "0:15", 143, "TIMEOUT"),  # killed by signal 15: 128 + 15
        ("CANCELLED", "0:15", 143, "CANCELLED"),
        ("NODE_FAIL", "0:0", 0, "NODE_FAIL"),
    ],
)
async def test_each_way_a_job_ends_is_polled_as_ended_with_its_reason(
    paper, caplog, state, exit_code, polled, words
):
    caplog.set_level(logging.INFO)
    spawner = await started(paper)
    job_id = spawner.job.job_id
    paper.jobs[job_id].state, paper.jobs[job_id].exit_code = state, exit_code
    await spawner.cluster.monitor.refresh(job_id, timeout=5)
    assert await spawner.poll() == polled
    assert spawner.last_outcome.job_id == job_id
    assert words in spawner.last_outcome.message
    assert f"alice: {spawner.last_outcome.message}" in caplog.messages  # the hub's log says why
    assert spawner._tunnel is None  # JupyterHub calls no stop() for a server poll() ends
    assert spawner.cluster.monitor.get(job_id) is None  # no longer followed
    assert ["scontrol", "show", "job", "-o", job_id] not in paper.commands  # had its code


async def test_an_end_reported_without_its_exit_code_has_it_looked_up(paper):
    spawner = await started(paper)
    job = paper.jobs["1000"]
    job.state, job.exit_code, job.accounted_exit_code = "FAILED", "", "7:0"
    await spawner.cluster.monitor.refresh("1000", timeout=5)
    assert await spawner.poll() == 7
    assert spawner.last_outcome.message == "Job 1000 ended (FAILED, exit code 7)."
    assert ["scontrol", "show", "job", "-o", "1000"] in paper.commands


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


async def test_a_stop_says_the_job_it_stopped_not_how_the_one_before_ended(paper):
    spawner = await started(paper)
    paper.jobs["1000"].state = "COMPLETED"
    await spawner.cluster.monitor.refresh("1000", timeout=5)
    assert await spawner.poll() == 0
    spawner.clear_state()  # as JupyterHub does once the server ended
    await asyncio.wait_for(spawner.start(), START_BOUND)
    await spawner.stop()
    assert spawner.last_outcome.job_id == "1001"
    assert spawner.last_outcome.message == "Job 1001 was stopped from the hub."


async def test_the_saved_state_shows_the_tunnel_and_timeline_of_the_current_job_only(paper):
    spawner = await started(paper)
    state = spawner.get_state()
    assert state["tunnel"]["notebook_forward"]["node"] == "cn1"
    phases = [step["phase"] for step in state["history"]]
    assert phases[0] == "submitted" and phases[-1] == "tunnel"
    await spawner.stop()
    state = spawner.get_state()
    assert "job" not in state and "tunnel" not in state and "history" not in state
    assert state["last_outcome"]["message"] == "Job 1000 was stopped from the hub."


async def test_the_proxy_reaches_the_server_at_the_tunnels_local_port(paper):
    from jupyterhub import orm

    spawner = await started(paper)
    spawner.orm_spawner.server = orm.Server(
        proto="http", ip="", port=0, base_url="/user/alice/", cookie_name="c"
    )
    port = AnsweringTransport.answer_port
    assert await spawner.get_url() == f"http://127.0.0.1:{port}/user/alice/"
    spawner.internal_ssl = True
    assert await spawner.get_url() == f"https://127.0.0.1:{port}/user/alice/"


def fails_at_once(scheduler: PaperScheduler, state: str, exit_code: str, output: bytes | None):
    """sbatch for a job that ends (`state`, Slurm's exit code) before it writes where its
    server listens, leaving `output` as its log (None: no log)."""

    def submit(script_path: str):
        result = PaperScheduler._submit(scheduler, script_path)
        job_id, folder = result.stdout.strip(), script_path.rsplit("/", 1)[0]
        scheduler.jobs[job_id] = PaperJob(
            state, "NonZeroExitCode", nodes="cn1", exit_code=exit_code
        )
        del scheduler.files[f"{folder}/connection.json"]
        if output is not None:
            scheduler.files[f"{folder}/job.log"] = output
        return result

    return submit


async def test_a_job_that_ends_before_its_server_starts_fails_the_start_with_its_last_words(
    paper,
):
    output = b"loading python/3.11\nModuleNotFoundError: No module named 'jupyterhub'\n"
    paper._submit = fails_at_once(paper, "FAILED", "1:0", output)
    spawner = make_spawner()
    before = time.time()
    with pytest.raises(SpawnError) as failed:
        await asyncio.wait_for(spawner.start(), START_BOUND)
    said = "Job 1000 ended before its server started (FAILED, NonZeroExitCode, exit code 1)."
    last_words = output.decode().rstrip("\n")
    assert failed.value.jupyterhub_message == f"{said} Last lines of its output:\n{last_words}"
    outcome = spawner.last_outcome  # what the dashboard shows after
    assert (outcome.job_id, outcome.state, outcome.message) == ("1000", "failed", said)
    assert (outcome.exit_code, outcome.log_tail) == (1, last_words)
    assert before <= outcome.ended_at <= time.time()
    assert spawner.job.job_id == "" and ["scancel", "1000"] in paper.commands


async def test_a_job_that_ends_without_output_shows_no_earlier_jobs_words(paper):
    paper.files[f"{FOLDER}/job.log"] = b"the output of the server's job before\n"
    paper._submit = fails_at_once(paper, "FAILED", "1:0", None)
    with pytest.raises(SpawnError) as failed:
        await asyncio.wait_for(make_spawner().start(), START_BOUND)
    assert failed.value.jupyterhub_message == (
        "Job 1000 ended before its server started (FAILED, NonZeroExitCode, exit code 1)."
    )


async def test_a_server_whose_job_dies_before_it_answers_fails_the_start_saying_so(paper):
    paper.answering = False
    spawner = make_spawner({"status_interval": 0.1})
    start = asyncio.ensure_future(spawner.start())
    try:
        await asyncio.wait_for(paper.notebook_forward_opened.wait(), START_BOUND)
        paper.jobs["1000"].state, paper.jobs["1000"].exit_code = "FAILED", "2:0"
        paper.files[f"{FOLDER}/job.log"] = b"Segmentation fault\n"
        with pytest.raises(SpawnError) as failed:
            await asyncio.wait_for(asyncio.shield(start), START_BOUND)
    finally:
        start.cancel()
        await asyncio.gather(start, return_exceptions=True)
    assert failed.value.jupyterhub_message == (
        "Job 1000 ended before its server started (FAILED, exit code 2). "
        "Last lines of its output:\nSegmentation fault"
    )


async def test_a_start_that_fails_after_the_submit_cancels_its_job(paper, monkeypatch, caplog):
    async def broken(self, *args):
        raise SpawnError("the job's node went away")

    monkeypatch.setattr(JobSpawner, "_follow_job", broken)
    spawner = make_spawner()
    with pytest.raises(SpawnError, match="went away"):
        await asyncio.wait_for(spawner.start(), START_BOUND)
    assert ["scancel", "1000"] in paper.commands
    assert spawner.job.job_id == "" and spawner.last_outcome.job_id == "1000"
    # The dashboard's "Last job:" and the hub's log read as the spawn page did.
    assert spawner.last_outcome.message == "the job's node went away"
    assert "Start of alice failed: the job's node went away" in caplog.messages


@pytest.mark.parametrize(
    ("clusters", "where"),
    [
        ({}, ""),
        (
            {"paper": {"title": "Paper HPC", "login_host": "login.example.org"}},
            "Cluster Paper HPC: ",
        ),
    ],
)
async def test_a_start_the_cluster_fails_says_so_naming_the_cluster_if_there_are_several(
    paper, caplog, clusters, where
):
    paper.transport_down = True  # every command times out
    spawner = make_spawner({"clusters": clusters})
    with pytest.raises(SpawnError) as failed:
        await asyncio.wait_for(spawner.start(), START_BOUND)
    assert failed.value.jupyterhub_message == f"{where}A command on login timed out after 30 s"
    assert "Start of alice failed: A command on login timed out after 30 s" in caplog.messages


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
    assert again.cluster.monitor.get(again.job_id).starting is False  # up: asked seldom


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
