"""The saved state of a server: written and read back, the previous layout read, what cannot be
read named instead of raised."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from hubdash.serverstate import (
    VERSION,
    JobOutcome,
    JobRecord,
    ServerState,
    Step,
    read_server_state,
)

JOB = JobRecord(
    job_id="4242",
    job_name="jupyterhub-alice",
    queue="debug",
    node_count=2,
    nodes=["cn1", "cn2"],
    engines=4,
    engines_up=4,
    engines_state="running",
    walltime_seconds=1800,
    submitted_at=1_700_000_000.5,
    started_at=1_700_000_030.0,
    state="running",
    node="cn1",
    remote_port=41234,
    local_port=50001,
    hub_forward_port=38001,
)
TUNNEL = {
    "hub_forward": {"port": 38001, "open": True},
    "notebook_forward": {"local_port": 50001, "node": "cn1", "remote_port": 41234, "open": True},
    "rtt_ms": 3.2,
}

# What the spawner saved before the layout had a version: the job nested and again at the top.
V1_JOB = {
    "job_id": "4242",
    "job_name": "jupyterhub-alice",
    "job_state": "running",
    "queue": "debug",
    "nodes": 2,
    "engines": 4,
    "engines_up": 4,
    "engines_state": "running",
    "walltime": "0:30:00",
    "reason": "",
    "position": None,
    "estimated_start": None,
    "submitted_at": 1_700_000_000.5,
    "started_at": 1_700_000_030.0,
    "node": "cn1",
    "node_list": ["cn1", "cn2"],
    "remote_port": 41234,
    "local_port": 50001,
    "hub_forward_port": 38001,
}
V1_STATE = {
    "job": V1_JOB,
    **V1_JOB,
    "tunnel": TUNNEL,
    "history": [{"phase": "submitted", "time": 1_700_000_000.6, "message": "Job 4242 submitted"}],
    "last_outcome": {
        "job_id": "4241",
        "state": "failed",
        "message": "Job 4241 ended (FAILED, exit code 1).",
        "ended_at": 1_699_999_000.0,
        "exit_code": 1,
        "log_tail": "Traceback",
    },
    "cancel_pending": ["4240", 4239],
}


def test_a_saved_state_reads_back_the_same():
    state = ServerState(
        job=JOB,
        tunnel=TUNNEL,
        history=[Step("submitted", 1_700_000_000.6, "Job 4242 submitted")],
        last_outcome=JobOutcome("4241", "failed", "Job 4241 ended.", 1.0, exit_code=1),
        cancel_pending=["4240"],
    )
    saved = state.to_state()
    assert saved["version"] == VERSION
    assert saved["job"]["nodes"] == ["cn1", "cn2"] and saved["job"]["walltime_seconds"] == 1800
    again = read_server_state(copy.deepcopy(saved))
    assert again == state and again.problems == []


def test_an_empty_state_is_no_job_and_saves_only_its_version():
    assert read_server_state({}) == ServerState()
    assert read_server_state(None) == ServerState()
    assert ServerState().to_state() == {"version": VERSION}


def test_the_previous_layout_is_read_so_an_upgraded_hub_keeps_its_servers():
    state = read_server_state(copy.deepcopy(V1_STATE))
    assert state.problems == []
    assert state.job == JOB
    assert state.tunnel == TUNNEL
    assert state.history == [Step("submitted", 1_700_000_000.6, "Job 4242 submitted")]
    assert state.last_outcome is not None and state.last_outcome.message.startswith("Job 4241")
    assert state.cancel_pending == ["4240", "4239"]


def test_the_previous_layout_with_its_job_only_at_the_top_level_is_read_too():
    flat = {key: value for key, value in V1_STATE.items() if key != "job"}
    assert read_server_state(flat).job == JOB


def test_a_newer_version_is_not_read_and_says_so():
    state = read_server_state({"version": VERSION + 1, "job": {"job_id": "7"}})
    assert state.job == JobRecord()
    assert state.problems == [
        f"saved by a newer hubdash (state version {VERSION + 1}; this one reads up to "
        f"{VERSION}): not read"
    ]


@pytest.mark.parametrize("version", ["2", 0, True, None])
def test_a_version_that_is_no_version_is_not_read(version):
    state = read_server_state({"version": version, "job": {"job_id": "7"}})
    assert state.job == JobRecord()
    assert state.problems == [f"state version {version!r} is not a version: not read"]


def test_values_of_the_wrong_type_are_named_and_left_out():
    job = {"job_id": "7", "node_count": "2", "nodes": ["cn1", 3], "walltime_seconds": True}
    job["started_at"] = "yesterday"
    state = read_server_state({"version": 2, "job": job, "cancel_pending": "7"})
    assert state.job == JobRecord(job_id="7")
    assert state.problems == [
        "job.node_count: '2' is not a whole number",
        "job.nodes: ['cn1', 3] is not a list of text",
        "job.walltime_seconds: True is not a whole number",
        "job.started_at: 'yesterday' is not a number or null",
        "cancel_pending: '7' is not a list",
    ]


def test_an_outcome_without_its_message_is_not_read():
    state = read_server_state({"version": 2, "last_outcome": {"job_id": "7", "state": "failed"}})
    assert state.last_outcome is None
    assert state.problems == ["last_outcome: no message: not read"]


def test_a_walltime_of_the_previous_layout_that_is_not_h_mm_ss_is_named():
    state = read_server_state({"job": {"job_id": "7", "walltime": "soon"}})
    assert state.job == JobRecord(job_id="7")
    assert state.problems == ["job.walltime: 'soon' is not H:MM:SS"]


def test_a_job_without_an_id_is_no_job():
    state = read_server_state({"version": 2, "job": {"queue": "debug"}})
    assert state.job == JobRecord()


def test_the_spawner_re_adopts_a_server_saved_by_the_previous_layout():
    from hubdash.spawner.jobspawner import JobSpawner

    spawner = JobSpawner()
    spawner.load_state({**copy.deepcopy(V1_STATE), "cancel_pending": []})
    # Saved by a hub without hub ids: its folder is the one such a hub used.
    assert spawner.job == replace(JOB, state_dir=".hubdash/servers/default")
    assert spawner.state_dir == ".hubdash/servers/default"
    saved = spawner.get_state()
    assert saved["version"] == VERSION and saved["job"]["job_id"] == "4242"
    assert "job_id" not in saved  # the job once, under "job"
    assert read_server_state(saved).job == replace(JOB, state_dir=".hubdash/servers/default")
    spawner.clear_state()
    assert set(spawner.get_state()) == {"version", "last_outcome"}


def test_the_spawner_writes_its_state_to_the_hubs_database_at_once(tmp_path):
    # JupyterHub saves a spawner's state only when start() returns; a job just submitted is
    # written at once, so that a hub that dies meanwhile still knows it.
    import sqlalchemy
    from jupyterhub import orm
    from sqlalchemy.orm import Session

    from hubdash.spawner.jobspawner import JobSpawner

    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path}/jupyterhub.sqlite")
    orm.Base.metadata.create_all(engine)
    hub_db = Session(engine)
    row = orm.Spawner(user=orm.User(name="alice"), name="")
    hub_db.add(row)
    hub_db.commit()
    spawner = JobSpawner(orm_spawner=row)
    spawner.job = JOB
    spawner._save_state()
    another = Session(engine)  # another session sees it committed
    assert read_server_state(another.query(orm.Spawner).one().state).job == JOB
    JobSpawner(orm_spawner=None)._save_state()  # a spawner without a row writes nothing
