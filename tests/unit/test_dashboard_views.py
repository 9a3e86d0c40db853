"""What the dashboard shows of a server, read from the hub's models; its docstring examples."""

from __future__ import annotations

import doctest
import importlib
from typing import Any

import pytest

from hubdash.dashboard.schedulerrate import SchedulerRate, command_totals
from hubdash.dashboard.sse import EventStreamParser
from hubdash.dashboard.views import server_view
from hubdash.serverstate import JobOutcome, JobRecord, ServerState


@pytest.mark.parametrize(
    "name",
    [
        "hubdash.dashboard.views",
        "hubdash.dashboard.sse",
        "hubdash.dashboard.schedulerrate",
        "hubdash.dashboard.hubapi",
        "hubdash.dashboard.handlers",
    ],
)
def test_docstring_examples(name):
    failures, _ = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert failures == 0


def saved(**job: Any) -> dict[str, Any]:
    """A server's state as the spawner saves it, with a job of these fields."""
    return ServerState(job=JobRecord(**job)).to_state()


def test_running_server_counts_walltime_used_and_left_from_the_jobs_start():
    state = saved(job_id="7", state="running", walltime_seconds=3600, started_at=1000)
    view = server_view("alice", {"name": "", "ready": True, "state": state}, now=1000 + 600)
    assert (view["status"], view["elapsed_seconds"], view["walltime_left_seconds"]) == (
        "running",
        600,
        3000,
    )
    assert (view["walltime"], view["walltime_seconds"]) == ("1:00:00", 3600)


def test_queued_server_takes_queue_and_walltime_from_the_form_when_state_lacks_them():
    model = {
        "name": "gpu",
        "pending": "spawn",
        "user_options": {"queue": "batch", "walltime": "2:00:00", "nodes": 2, "engines": 0},
        "state": saved(job_id="8", state="pending"),
    }
    view = server_view("alice", model, now=0)
    assert (view["status"], view["queue"], view["walltime"]) == ("queued", "batch", "2:00:00")
    assert (view["nodes"], view["engines"], view["title"]) == (2, 0, "gpu")


def test_the_job_counts_its_nodes_and_names_them():
    state = saved(job_id="7", state="running", node_count=2, nodes=["cn1", "cn2"], node="cn1")
    view = server_view("alice", {"name": "", "ready": True, "state": state}, now=0)
    assert (view["nodes"], view["node_list"], view["node"]) == (2, ["cn1", "cn2"], "cn1")


def test_stopped_server_whose_job_failed_shows_the_failure_and_its_output():
    outcome = JobOutcome(
        job_id="9",
        state="failed",
        message="Job 9 ended before its server started (FAILED, exit code 1).",
        ended_at=1.0,
        exit_code=1,
        log_tail="ModuleNotFoundError: no module named jupyterhub",
    )
    state = ServerState(last_outcome=outcome).to_state()
    view = server_view("alice", {"name": "", "ready": False, "state": state}, now=0)
    assert view["status"] == "failed"
    assert view["last_error"] == (
        "Job 9 ended before its server started (FAILED, exit code 1)."
        " Last lines of its output:\nModuleNotFoundError: no module named jupyterhub"
    )


def test_a_server_stopped_by_its_user_is_not_a_failure():
    outcome = JobOutcome("9", "cancelled", "Job 9 was stopped from the hub.", ended_at=1.0)
    state = ServerState(last_outcome=outcome).to_state()
    view = server_view("alice", {"name": "", "state": state}, now=0)
    assert (view["status"], view["last_error"]) == ("stopped", "")
    assert view["outcome"]["message"] == "Job 9 was stopped from the hub."


def test_odd_state_values_are_left_out_and_logged(caplog):
    state = {"version": 2, "tunnel": "not a dict", "history": None}
    state["job"] = {"job_id": "7", "position": "x", "node_count": None, "nodes": "cn1"}
    view = server_view("alice", {"name": "", "pending": "spawn", "state": state}, now=0)
    assert (view["tunnel"], view["history"], view["position"]) == (None, [], None)
    assert (view["job_id"], view["nodes"], view["node_list"]) == ("7", None, [])
    logged = caplog.text
    assert "job.position: 'x' is not a whole number or null" in logged
    assert "job.nodes: 'cn1' is not a list of text" in logged
    assert "tunnel: 'not a dict' is not an object" in logged


def test_a_server_saved_by_the_previous_layout_still_shows():
    job = {"job_id": "7", "job_state": "running", "nodes": 2, "node_list": ["cn1", "cn2"]}
    job.update(walltime="0:30:00", started_at=1000.0, node="cn1")
    state = {"job": job, **job, "history": [{"phase": "running", "time": 1000.0, "message": "m"}]}
    view = server_view("alice", {"name": "", "ready": True, "state": state}, now=1060)
    assert (view["status"], view["job_state"], view["nodes"]) == ("running", "running", 2)
    assert (view["walltime"], view["walltime_left_seconds"]) == ("0:30:00", 1740)
    assert view["node_list"] == ["cn1", "cn2"]
    assert view["history"] == [{"phase": "running", "time": 1000.0, "message": "m"}]


def test_a_state_of_a_newer_layout_shows_the_server_without_its_job(caplog):
    state = {"version": 3, "job": {"job_id": "7"}}
    view = server_view("alice", {"name": "", "ready": True, "state": state}, now=0)
    assert (view["status"], view["job_id"]) == ("running", "")
    assert "state version 3" in caplog.text


def test_event_stream_parser_reads_events_split_anywhere():
    text = b'data: {"progress": 10}\n\n\n\ndata: {"ready": true, "url": "/user/a/"}\n\n'
    for cut in range(len(text)):
        parser = EventStreamParser()
        events = parser.feed(text[:cut]) + parser.feed(text[cut:])
        assert events == [{"progress": 10}, {"ready": True, "url": "/user/a/"}]


def test_scheduler_rate_survives_a_hub_restart():
    rate = SchedulerRate(window_seconds=600)
    rate.add(0, {("c", "squeue"): 100.0})
    rate.add(60, {("c", "squeue"): 30.0})  # the hub restarted: its counters began anew
    assert rate.rates()["by_command"][0]["count"] == 30


def test_command_totals_ignores_other_metrics():
    text = 'hubdash_scheduler_command_seconds_count{cluster="c",command="squeue"} 4.0\n'
    assert command_totals(text) == {}
