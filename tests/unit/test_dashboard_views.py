"""What the dashboard shows of a server, read from the hub's models; its docstring examples."""

from __future__ import annotations

import doctest
import importlib

import pytest

from hubdash.dashboard.schedulerrate import SchedulerRate, command_totals
from hubdash.dashboard.sse import EventStreamParser
from hubdash.dashboard.views import server_view


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


def test_running_server_counts_walltime_used_and_left_from_the_jobs_start():
    model = {
        "name": "",
        "ready": True,
        "state": {"job_id": "7", "job_state": "running", "walltime": "1:00:00", "started_at": 1000},
    }
    view = server_view("alice", model, now=1000 + 600)
    assert (view["status"], view["elapsed_seconds"], view["walltime_left_seconds"]) == (
        "running",
        600,
        3000,
    )


def test_queued_server_takes_queue_and_walltime_from_the_form_when_state_lacks_them():
    model = {
        "name": "gpu",
        "pending": "spawn",
        "user_options": {"queue": "batch", "walltime": "2:00:00", "nodes": 2, "engines": 0},
        "state": {"job_id": "8", "job_state": "pending"},
    }
    view = server_view("alice", model, now=0)
    assert (view["status"], view["queue"], view["walltime_seconds"]) == ("queued", "batch", 7200)
    assert (view["nodes"], view["engines"], view["title"]) == (2, 0, "gpu")


def test_stopped_server_whose_job_failed_shows_the_failure_and_its_output():
    model = {
        "name": "",
        "ready": False,
        "state": {
            "last_outcome": {
                "job_id": "9",
                "state": "failed",
                "message": "Job 9 ended before its server started (FAILED, exit code 1).",
                "exit_code": 1,
                "log_tail": "ModuleNotFoundError: no module named jupyterhub",
            }
        },
    }
    view = server_view("alice", model, now=0)
    assert view["status"] == "failed"
    assert view["last_error"].endswith(
        "Last lines of its output:\nModuleNotFoundError: no module named jupyterhub"
    )


def test_a_server_stopped_by_its_user_is_not_a_failure():
    state = {"last_outcome": {"state": "cancelled", "message": "Job 9 was stopped from the hub."}}
    view = server_view("alice", {"name": "", "state": state}, now=0)
    assert view["status"] == "stopped"
    assert view["outcome"]["message"] == "Job 9 was stopped from the hub."


def test_missing_and_odd_state_fields_do_not_break_the_view():
    state = {"tunnel": "not a dict", "history": None, "position": "x", "nodes": None}
    view = server_view("alice", {"name": "", "pending": "spawn", "state": state}, now=0)
    assert (view["tunnel"], view["history"], view["position"]) == (None, [], None)


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
