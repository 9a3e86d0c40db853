"""Hub restarts: the job of a server that was queued when the hub went down is kept and
adopted by the next start (never cancelled, never submitted twice); a shutdown leaves a
start's job in place; the hub's identity keeps hubs apart; cleanup_servers is off.

JobSpawner runs against a scheduler on paper (tests/unit/fake_cluster.py).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from types import SimpleNamespace

import pytest
from traitlets import TraitError
from traitlets.config import Config

from hubdash.cluster import cluster as cluster_module
from hubdash.cluster.client import SchedulerClient
from hubdash.schedulers.pbs import PBSAdapter
from hubdash.schedulers.sge import GridEngineAdapter
from hubdash.schedulers.slurm import SlurmAdapter
from hubdash.serverstate import JobRecord, Resume, read_server_state
from hubdash.spawner.hubrestart import hub_is_stopping
from hubdash.spawner.hubstate import hub_state
from hubdash.spawner.jobadoption import token_sha256
from hubdash.spawner.jobspawner import JobSpawner
from hubdash.spawner.orphansweep import is_orphan
from hubdash.spawner.restartsettings import hub_id_of_database
from hubdash.spawner.spawnerror import SpawnError
from hubdash.transport.base import CommandResult

from .fake_cluster import (
    START_BOUND,
    PaperJob,
    PaperLoginNodes,
    PaperScheduler,
    PaperTransport,
    paper_spawner,
    start_at_tunnel,
)

TOKEN = "the-token-the-job-holds"
FOLDER = ".hubdash/servers/h1/queued"


@pytest.fixture
async def paper(monkeypatch):
    box = SimpleNamespace(scheduler=PaperScheduler())
    monkeypatch.setattr(
        cluster_module,
        "make_transport",
        lambda login, user, keys, throttle, log=None: PaperTransport(box.scheduler, user),
    )
    monkeypatch.setattr(JobSpawner, "_save_state", lambda self: None)  # no hub database here
    PaperLoginNodes().install(monkeypatch)
    hub_state(None).resumes.clear()
    yield box.scheduler
    await hub_state(None).clusters.close()


def make_spawner(state: dict | None = None, **options) -> JobSpawner:
    queues = {"debug": {"max_walltime": "1:00:00"}, "hold": {}}
    spawner = paper_spawner("queued", queues, startup_timeout=5)
    if state is not None:
        spawner.load_state(state)
    spawner.user_options = {"queue": "hold", "walltime": "0:10:00", "nodes": 1, **options}
    return spawner


def saved_queued_job(job_id: str) -> dict:
    job = JobRecord(
        job_id=job_id,
        job_name="jupyterhub-h1-alice-queued",
        queue="hold",
        node_count=1,
        walltime_seconds=600,
        state="pending",
        state_dir=FOLDER,
        token_sha256=token_sha256(TOKEN),
    )
    return {"version": 2, "job": json.loads(json.dumps(job.__dict__))}


def queue_job(scheduler: PaperScheduler, state: str = "PENDING") -> str:
    job_id = str(scheduler.next_id)
    scheduler.next_id += 1
    scheduler.jobs[job_id] = PaperJob(
        state, partition="hold", nodes="cn1" if state == "RUNNING" else ""
    )
    return job_id


async def test_a_job_queued_when_the_hub_went_down_is_kept_to_adopt_not_cancelled(paper):
    job_id = queue_job(paper)
    spawner = make_spawner(saved_queued_job(job_id))
    assert await spawner.poll() == 0  # stopped in the hub's books ...
    assert spawner.resume is not None and spawner.resume.job.job_id == job_id  # ... job kept
    assert spawner.will_resume  # JupyterHub keeps the API token the job holds
    assert ("alice", "queued") in hub_state(None).resumes
    assert not any(argv[0] == "scancel" for argv in paper.commands)
    assert await spawner.poll() == 0  # JupyterHub polls again before stopping: no job now
    spawner.clear_state()  # as JupyterHub does on stopping, and again before starting
    saved = read_server_state(spawner.get_state())
    assert saved.resume is not None and saved.resume.job.job_id == job_id
    assert spawner.claimed_job_ids() == {job_id}


async def test_the_next_start_adopts_the_queued_job_with_its_own_token(paper):
    job_id = queue_job(paper, "RUNNING")
    paper.files[f"{FOLDER}/env.json"] = json.dumps({"JUPYTERHUB_API_TOKEN": TOKEN}).encode()
    paper.files[f"{FOLDER}/connection.json"] = json.dumps(
        {"host": "cn1", "port": 41234, "job_id": job_id}
    ).encode()
    spawner = make_spawner(saved_queued_job(job_id))
    await spawner.poll()
    again = make_spawner(spawner.get_state())
    again.api_token = "a-new-token-the-hub-made"
    job, commands = await tunnel_opened(again, paper)
    assert job.job_id == job_id and again.resume is None
    assert (job.node, job.remote_port) == ("cn1", 41234)
    taken_up = [e async for e in again.progress() if e["hubdash"]["phase"] == "submitted"]
    assert [(e["message"], e["hubdash"]["state"]) for e in taken_up] == [
        (
            f"Job {job_id} was starting when the hub restarted; taken up again (same job, "
            "same place in queue hold)",
            "running",
        )
    ]
    assert again.api_token == TOKEN  # the hub then keeps the job's token, not the new one
    assert not any(argv[0] in ("sbatch", "scancel") for argv in commands)


async def tunnel_opened(
    spawner: JobSpawner, scheduler: PaperScheduler
) -> tuple[JobRecord, list[list[str]]]:
    """Run the start until its notebook tunnel opens (no server answers on paper): its job
    and the scheduler's commands then (the start is cancelled after)."""
    async with start_at_tunnel(spawner, scheduler):
        return copy.deepcopy(spawner.job), list(scheduler.commands)


async def test_a_settings_file_with_another_token_is_not_adopted_and_its_job_cancelled(paper):
    job_id = queue_job(paper)
    paper.files[f"{FOLDER}/env.json"] = json.dumps({"JUPYTERHUB_API_TOKEN": "forged"}).encode()
    spawner = make_spawner(saved_queued_job(job_id))
    await spawner.poll()
    again = make_spawner(spawner.get_state())
    with pytest.raises(SpawnError, match="no longer holds the token"):
        await asyncio.wait_for(again.start(), START_BOUND)
    assert ["scancel", job_id] in paper.commands
    assert again.api_token != "forged"


async def test_a_start_with_other_choices_replaces_the_queued_job(paper):
    job_id = queue_job(paper)
    spawner = make_spawner(saved_queued_job(job_id))
    await spawner.poll()
    again = make_spawner(spawner.get_state(), queue="debug")
    again.api_token = "new"
    job, _ = await tunnel_opened(again, paper)
    assert ["scancel", job_id] in paper.commands
    assert job.job_id != job_id
    assert any(argv[0] == "sbatch" for argv in paper.commands)


class TokenTable:
    """The hub database's API tokens, on paper: find() by token, delete(), commit()."""

    def __init__(self, owner: object) -> None:
        self.rows = {TOKEN: SimpleNamespace(user=owner), "another": SimpleNamespace(user=owner)}
        self.committed = False

    def find(self, db: TokenTable, token: str):
        return db.rows.get(token)

    def delete(self, row) -> None:
        self.rows = {token: r for token, r in self.rows.items() if r is not row}

    def commit(self) -> None:
        self.committed = True


async def test_giving_up_a_resume_cancels_the_job_revokes_its_token_and_says_why(
    paper, monkeypatch
):
    from jupyterhub import orm

    job_id = queue_job(paper)
    paper.files[f"{FOLDER}/env.json"] = json.dumps({"JUPYTERHUB_API_TOKEN": TOKEN}).encode()
    spawner = make_spawner(saved_queued_job(job_id))
    await spawner.poll()
    spawner.user.orm_user = owner = object()
    spawner.user.db = db = TokenTable(owner)
    monkeypatch.setattr(orm.APIToken, "find", db.find)
    await spawner.give_up_resume("the hub could not start it again (HTTP 400: bad queue)")
    assert set(db.rows) == {"another"} and db.committed  # JupyterHub had kept it to resume
    assert ["scancel", job_id] in paper.commands
    assert spawner.resume is None
    assert "HTTP 400: bad queue" in spawner.last_outcome.message
    assert "still queued when the hub restarted" in spawner.last_outcome.message


class JupyterHubOnPaper:
    """Stands for the hub app: JupyterHub cancels every task from this coroutine."""

    async def shutdown_cancel_tasks(self, started: asyncio.Event, proceed: asyncio.Event):
        started.set()
        await proceed.wait()


async def test_a_hub_shutdown_leaves_the_job_of_a_start_in_progress(paper, caplog):
    caplog.set_level(logging.INFO)
    paper._submit = lambda script: _queued_submit(paper)  # the job waits in the queue
    spawner = make_spawner()
    spawner.api_token = "t"
    start = asyncio.ensure_future(spawner.start())
    await submitted(paper)
    assert not hub_is_stopping()
    started, proceed = asyncio.Event(), asyncio.Event()
    shutdown = asyncio.ensure_future(JupyterHubOnPaper().shutdown_cancel_tasks(started, proceed))
    await started.wait()
    assert hub_is_stopping()
    start.cancel()
    await asyncio.gather(start, return_exceptions=True)
    proceed.set()
    await shutdown
    assert not any(argv[0] == "scancel" for argv in paper.commands)
    assert spawner.job.job_id  # still recorded, for the next hub to adopt
    assert f"Hub stopping: job {spawner.job.job_id} of alice:queued is left" in caplog.messages


async def test_a_cancelled_start_outside_a_shutdown_cancels_its_job(paper, caplog):
    paper._submit = lambda script: _queued_submit(paper)
    spawner = make_spawner()
    spawner.api_token = "t"
    start = asyncio.ensure_future(spawner.start())
    await submitted(paper)
    job_id = spawner.job.job_id
    start.cancel()
    await asyncio.gather(start, return_exceptions=True)
    assert ["scancel", job_id] in paper.commands
    assert "Start of alice:queued failed: cancelled" in caplog.messages
    assert (spawner.last_outcome.job_id, spawner.last_outcome.message) == (job_id, "cancelled")


def _queued_submit(scheduler: PaperScheduler) -> CommandResult:
    return CommandResult(0, f"{queue_job(scheduler)}\n", "")


async def submitted(scheduler: PaperScheduler) -> None:
    """Until the start has submitted its job and waits for it (the monitor asks about it)."""
    async with asyncio.timeout(START_BOUND):
        # The scheduler on paper has no events to wait on.
        while not any(argv[0] == "scontrol" for argv in scheduler.commands):  # noqa: ASYNC110
            await asyncio.sleep(0.05)


def test_each_job_records_its_folder_and_the_hubs_identity_is_in_its_name():
    spawner = make_spawner()
    assert spawner.job_name == "jupyterhub-h1-alice-queued"
    assert spawner.state_dir == FOLDER
    old = make_spawner({"version": 2, "job": {"job_id": "7"}})
    assert old.state_dir == ".hubdash/servers/queued"  # saved before hub ids: its old folder
    old = paper_spawner("queued", {"hold": {}}, state_root="scratch/hubdash/")
    old.load_state({"version": 2, "job": {"job_id": "7"}})
    assert old.state_dir == "scratch/hubdash/queued"


def test_the_sweep_looks_for_job_names_as_the_scheduler_was_given_them():
    # PBS Pro's names have '_' for a '.' of the prefix or user: the sweep's stem too.
    spawner = paper_spawner(
        "x", {"debug": {}}, scheduler="pbs", pbs_flavor="pbspro", job_name_prefix="j.h"
    )
    assert spawner.job_name_stem == "j_h-h1-alice"
    assert spawner.job_name == "j_h-h1-alice-x"


def test_the_hub_id_is_checked_and_derived_from_the_database():
    for bad in ("a.b", "a-b", "", "_a", "x" * 25):
        with pytest.raises(TraitError, match="JobSpawner.hub_id"):
            JobSpawner(config=Config({"JobSpawner": {"hub_id": bad}}))
    assert hub_id_of_database("sqlite:////a/hub.sqlite") != hub_id_of_database(
        "sqlite:////b/hub.sqlite"
    )
    assert hub_id_of_database("postgresql://u:one@db/hub") == hub_id_of_database(
        "postgresql://u:two@db/hub"
    )


def test_orphans_are_only_this_hubs_unclaimed_jobs_of_servers_not_starting():
    same = SlurmAdapter().same_job
    pbs_same = PBSAdapter().same_job
    prefix = "jh-h1-alice-"
    assert is_orphan("9", "jh-h1-alice-x", prefix, {"7"}, set(), same)
    assert not is_orphan("9", "jh-h2-alice-x", prefix, set(), set(), same)  # another hub's
    assert not is_orphan("9", "jh-h1-bob-x", prefix, set(), set(), same)
    assert not is_orphan("9.srv", "jh-h1-alice-x", prefix, {"9"}, set(), pbs_same)
    assert not is_orphan("9", "jh-h1-alice-x", prefix, set(), {"jh-h1-alice-x"}, same)


class Answers(PaperTransport):
    def __init__(self, answers: dict[str, CommandResult]) -> None:
        super().__init__(PaperScheduler())
        self.answers = answers

    async def run(self, argv, *, input=None, timeout=30):
        self.argvs.append(list(argv))
        return self.answers[argv[0]]


async def test_a_users_jobs_are_listed_with_their_names_on_every_scheduler():
    slurm = Answers({"squeue": CommandResult(0, "12|jh-h1-alice-a\n13|other\n", "")})
    assert await SchedulerClient("c", SlurmAdapter()).user_jobs(slurm, "alice") == {
        "12": "jh-h1-alice-a",
        "13": "other",
    }
    assert slurm.argvs[0][slurm.argvs[0].index("-o") + 1] == "%i|%j"
    # PBS lists ids only: the names come from one qstat of them (a job that ended meanwhile
    # makes qstat fail for it alone).
    qstat = json.dumps({"Jobs": {"12.srv": {"Job_Name": "jh-h1-alice-a"}}})
    pbs = Answers(
        {
            "qselect": CommandResult(0, "12.srv\n14.srv\n", ""),
            "qstat": CommandResult(153, qstat, "qstat: Unknown Job Id 14.srv\n"),
        }
    )
    jobs = await SchedulerClient("c", PBSAdapter("pbspro")).user_jobs(pbs, "alice")
    assert jobs == {"12.srv": "jh-h1-alice-a", "14.srv": ""}
    assert pbs.argvs[1][:4] == ["qstat", "-f", "-F", "json"]
    xml = (
        "<job_info><queue_info><job_list state='running'><JB_job_number>5</JB_job_number>"
        "<JB_name>jh-h1-alice-a</JB_name><JB_owner>alice</JB_owner><state>r</state>"
        "<queue_name>all.q@cn1</queue_name></job_list></queue_info><job_info/></job_info>"
    )
    sge = Answers({"qstat": CommandResult(0, xml, "")})
    assert await SchedulerClient("c", GridEngineAdapter()).user_jobs(sge, "alice") == {
        "5": "jh-h1-alice-a"
    }


def test_what_a_saved_state_holds_that_cannot_be_read_is_logged(caplog):
    spawner = make_spawner({"version": 2, "job": {"job_id": "7"}, "resume": "soon"})
    assert spawner.job_id == "7" and spawner.resume is None
    assert "Saved state of alice:queued: resume: 'soon' is not an object" in caplog.messages


def test_resume_records_that_cannot_be_read_are_named():
    saved = read_server_state({"version": 2, "resume": {"job": {"queue": "x"}}})
    assert saved.resume is None and saved.problems == ["resume: no job id: not read"]
    saved = read_server_state({"version": 2, "resume": "soon"})
    assert saved.resume is None and saved.problems == ["resume: 'soon' is not an object"]
    kept = Resume(job=JobRecord(job_id="7", state_dir="x"), reason="r")
    assert (
        read_server_state(
            {"version": 2, "resume": kept.__dict__ | {"job": kept.job.__dict__}}
        ).resume
        == kept
    )
