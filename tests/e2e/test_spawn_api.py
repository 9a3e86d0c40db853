"""The REST API way in: the form's rules for `user_options`, a 400 naming the option, or a job."""

from __future__ import annotations

import subprocess

import pytest

from ..conftest import JOB_PREFIX, cluster_jobs
from .hubprocess import Hub


def jobs_of(user: str) -> list[str]:
    return [line.split()[0] for line in cluster_jobs(JOB_PREFIX, users=(user,))]


@pytest.mark.parametrize(
    ("options", "option", "fragment"),
    [
        ({"queue": "debug", "walltime": "2:00:00"}, "walltime", "allows at most 1:00:00"),
        ({"queue": "debug", "walltime": "soon"}, "walltime", "is not a duration"),
        ({"queue": "batch", "walltime": "30"}, "queue", "may not submit to queue 'batch'"),
        ({"queue": "nosuch"}, "queue", "there is no queue 'nosuch'"),
        ({"queue": "debug", "nodes": "two"}, "nodes", "must be a whole number"),
        ({"queue": "debug", "nodes": 3}, "nodes", "at most 2 node(s)"),
        ({"queue": "debug", "engines": 9, "nodes": 1}, "engines", "9 engines need 2 nodes"),
        ({"queue": "debug", "partition": "batch"}, "partition", "unknown option"),
    ],
)
def test_bad_options_get_a_400_naming_the_option(hub: Hub, options, option, fragment):
    answer = hub.spawn("alice", "api", **options)
    assert answer.status_code == 400, answer.text
    message = answer.json()["message"]
    assert f"{option}: " in message and fragment in message, message
    server = hub.server("alice", "api") or {}
    assert not server.get("pending") and not server.get("ready")
    assert jobs_of("alice") == []


def test_good_options_spawn_a_job_of_that_size_and_stop_removes_it(hub: Hub):
    # A D-HH:MM:SS walltime, normalised on the way to the scheduler.
    answer = hub.spawn("bob", "api", queue="batch", walltime="0-00:15:00", nodes=1)
    assert answer.status_code in (201, 202), answer.text
    try:
        server = hub.wait_ready("bob", "api", timeout=180)
        job_id = server["state"]["job_id"]
        assert job_id in jobs_of("bob")
        queue, limit = (
            subprocess.run(
                ["squeue", "-h", "-j", job_id.split(".")[0], "-o", "%P %l"],
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .split()
        )
        assert (queue, limit) == ("batch", "15:00")
    finally:
        hub.stop("bob", "api")
    hub.wait_for(lambda: not jobs_of("bob"), timeout=30)
