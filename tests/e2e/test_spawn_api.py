"""The REST API way in: the form's rules for `user_options`, a 400 naming the option, or a job."""

from __future__ import annotations

import re
import subprocess

import pytest
import requests

from ..conftest import JOB_PREFIX, cluster_jobs
from .hubprocess import Hub


def jobs_of(user: str) -> list[str]:
    return [line.split()[0] for line in cluster_jobs(JOB_PREFIX, users=(user,))]


@pytest.mark.parametrize(
    ("options", "option", "fragment"),
    [
        ({"queue": "debug", "walltime": "2:00:00"}, "walltime", "allows at most 1:00:00"),
        ({"queue": "debug", "walltime": "50%"}, "walltime", "'50%' is not a duration"),
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
        job_id = server["state"]["job"]["job_id"]
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


@pytest.mark.timeout(360)  # a spawn from an opt- URL (180 s), its job gone (30 s)
def test_an_opt_url_spawns_through_the_same_rules(hub: Hub):
    alice = logged_in(hub, "alice")
    answer = alice.get(
        f"{hub.url}/hub/spawn/alice/url?opt-queue=debug&opt-walltime=10:00&opt-nodes=1", timeout=60
    )
    assert answer.ok, answer.text
    try:
        server = hub.wait_ready("alice", "url", timeout=180)
        assert server["user_options"]["walltime"] == "0:10:00"  # "10:00" is MM:SS
        assert server["state"]["job"]["job_id"] in jobs_of("alice")
    finally:
        hub.stop("alice", "url")
    hub.wait_for(lambda: not jobs_of("alice"), timeout=30)


def logged_in(hub: Hub, user: str) -> requests.Session:
    """A session with the user's login cookie, as the browser holds it."""
    session = requests.Session()
    page = session.get(f"{hub.url}/hub/login", timeout=30).text
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page).group(1)
    answer = session.post(
        f"{hub.url}/hub/login?_xsrf={xsrf}",
        data={"username": user, "password": user, "_xsrf": xsrf},
        timeout=30,
    )
    assert answer.ok and "/hub/login" not in answer.url, answer.url
    return session


def test_queue_information_is_for_logged_in_users_and_their_queues_only(hub: Hub):
    url = f"{hub.url}/hub/api/hubdash/queues"
    assert requests.get(url, timeout=30).status_code == 403
    as_service = requests.get(url, headers={"Authorization": f"token {hub.token}"}, timeout=30)
    assert as_service.status_code == 400, as_service.text
    alice = logged_in(hub, "alice")
    figures = alice.get(url, timeout=60).json()
    assert [q["name"] for q in figures["queues"]] == ["debug"]  # batch is bob's
    estimate = alice.get(
        f"{hub.url}/hub/api/hubdash/estimate",
        params={"queue": "batch", "walltime": "30"},
        timeout=60,
    )
    assert estimate.status_code == 400
    assert "may not submit to queue 'batch'" in estimate.json()["errors"]["queue"]
