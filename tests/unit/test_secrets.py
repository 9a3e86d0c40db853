"""Secrets (the server's hub API token) never reach a command line or a file others may read.

Runs a whole JobSpawner.start() against a scheduler on paper and inspects every argument list
the hub built and every file it wrote.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from jupyterhub.objects import Hub
from traitlets.config import Config

from hubdash.cluster import cluster as cluster_module
from hubdash.spawner.jobspawner import JobSpawner

from .fake_cluster import PaperLoginNodes, PaperScheduler, PaperTransport, start_at_tunnel

TOKEN = "hubdash-test-token-4f1c2e9a7b"  # what the hub would hand the server


@pytest.fixture
def recorded(monkeypatch):
    """The paper cluster and its transports, which keep every argv and every file written."""
    scheduler = PaperScheduler()
    transports: list[PaperTransport] = []

    def make_transport(login, username, keys, throttle, log=None):
        transports.append(PaperTransport(scheduler, username))
        return transports[-1]

    monkeypatch.setattr(cluster_module, "make_transport", make_transport)
    PaperLoginNodes().install(monkeypatch)  # every login node answers
    return SimpleNamespace(scheduler=scheduler, transports=transports)


def make_spawner() -> JobSpawner:
    config = Config()
    config.JobSpawner.login_host = "login.example.org"
    config.JobSpawner.queues = {"debug": {"max_walltime": "1:00:00"}}
    config.JobSpawner.job_prologue = ["module load python"]
    config.JobSpawner.forward_keeper = "hub"  # paper transports: forwards of their own
    config.Spawner.cmd = ["jupyterhub-singleuser"]
    config.Spawner.args = ["--ServerApp.log_level=INFO"]
    user = SimpleNamespace(name="alice", url="/user/alice/", escaped_name="alice", groups=[])
    spawner = JobSpawner(config=config, user=user, hub=Hub(base_url="/hub/"))
    spawner.api_token = TOKEN
    spawner.user_options = {"queue": "debug", "walltime": "0:10:00", "nodes": 1}
    return spawner


async def test_token_travels_in_a_0600_file_never_in_an_argv(recorded):
    spawner = make_spawner()
    # The whole way to the notebook tunnel (nothing answers behind it on paper), then stop:
    # submit, status, connection file, tunnel, and the cancel of the abandoned start.
    async with start_at_tunnel(spawner, recorded.scheduler):
        pass

    argvs = [argv for t in recorded.transports for argv in t.argvs]
    assert any(argv[0] == "sbatch" for argv in argvs)  # the start did run commands
    assert any(argv[0] == "scancel" for argv in argvs)
    assert not [argv for argv in argvs if any(TOKEN in item for item in argv)]

    writes = [w for t in recorded.transports for w in t.writes]
    with_token = [(path, mode) for path, data, mode in writes if TOKEN.encode() in data]
    assert with_token == [(".hubdash/servers/hub/default/env.json", 0o600)]
    env = json.loads(dict((p, d) for p, d, _ in writes)[".hubdash/servers/hub/default/env.json"])
    assert env["JUPYTERHUB_API_TOKEN"] == TOKEN


def test_job_script_never_holds_the_token():
    spawner = make_spawner()
    script = spawner.job_script()
    assert TOKEN not in script
    assert "jupyterhub-singleuser --ServerApp.log_level=INFO" in script
