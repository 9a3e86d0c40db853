"""The tunnel goes only to the job's own node: a connection file naming the login node,
another node, a privileged port, or too large to read, fails the start and says why.

Whole JobSpawner.start() runs against a scheduler on paper (tests/unit/fake_cluster.py).
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from jupyterhub.objects import Hub
from traitlets.config import Config

from hubdash.cluster import cluster as cluster_module
from hubdash.job.contract import CONNECTION_FILE_LIMIT
from hubdash.spawner.hubstate import hub_state
from hubdash.spawner.jobspawner import JobSpawner
from hubdash.spawner.spawnerror import SpawnError
from hubdash.transport.base import Forward

from .fake_cluster import (
    START_BOUND,
    PaperLoginNodes,
    PaperScheduler,
    PaperTransport,
    start_at_tunnel,
)


class RoutedScheduler(PaperScheduler):
    """Its jobs run on `nodes` (Slurm's host list) and write `connection` as their file."""

    def __init__(self, connection: dict | bytes, nodes: str = "cn1") -> None:
        super().__init__()
        self.connection, self.nodes = connection, nodes
        self.forward_to: list[tuple[str, int]] = []

    def _submit(self, script_path: str):
        result = super()._submit(script_path)
        job_id = result.stdout.strip()
        self.jobs[job_id].nodes = self.nodes
        content = self.connection
        if isinstance(content, dict):
            content = json.dumps({"job_id": job_id, **content}).encode()
        self.files[f"{script_path.rsplit('/', 1)[0]}/connection.json"] = content
        return result


class RecordingTransport(PaperTransport):
    async def open_local_forward(self, dest_host, dest_port, **kwargs):
        self.scheduler.forward_to.append((dest_host, dest_port))
        self.scheduler.notebook_forward_opened.set()
        return Forward("127.0.0.1", 40000)


@pytest.fixture
async def paper(monkeypatch):
    box = SimpleNamespace(scheduler=None)
    monkeypatch.setattr(
        cluster_module,
        "make_transport",
        lambda login, user, keys, throttle, log=None: RecordingTransport(box.scheduler, user),
    )
    monkeypatch.setattr(JobSpawner, "_save_state", lambda self: None)  # no hub database here
    PaperLoginNodes().install(monkeypatch)  # every login node answers
    yield box
    await hub_state(None).clusters.close()  # the monitors' tasks too


def make_spawner(name: str) -> JobSpawner:
    config = Config()
    config.JobSpawner.login_host = "login.example.org"
    config.JobSpawner.queues = {"debug": {"max_walltime": "1:00:00"}}
    config.JobSpawner.forward_hub_api = False
    config.JobSpawner.forward_keeper = "hub"  # paper transports: forwards of their own
    config.JobSpawner.startup_timeout = 5
    user = SimpleNamespace(name="alice", url="/user/alice/", escaped_name="alice", groups=[])
    row = SimpleNamespace(name=name, display_name=name, server=None, state=None)
    spawner = JobSpawner(config=config, user=user, hub=Hub(base_url="/hub/"), orm_spawner=row)
    spawner.api_token = "token"
    spawner.user_options = {"queue": "debug", "walltime": "0:10:00", "nodes": 1}
    return spawner


async def start_fails(paper, scheduler: RoutedScheduler, name: str) -> str:
    paper.scheduler = scheduler
    with pytest.raises(SpawnError) as caught:
        await asyncio.wait_for(make_spawner(name).start(), START_BOUND)
    assert scheduler.forward_to == []  # no tunnel was opened anywhere
    assert any(argv[0] == "scancel" for argv in scheduler.commands)  # the job was cancelled
    return caught.value.jupyterhub_message


async def tunnel_opened_to(paper, scheduler: RoutedScheduler, name: str) -> tuple[str, int]:
    paper.scheduler = scheduler
    spawner = make_spawner(name)
    async with start_at_tunnel(spawner, scheduler):
        assert spawner.job.node == scheduler.forward_to[0][0]
        return scheduler.forward_to[0]


@pytest.mark.parametrize(
    ("host", "nodes"),
    [
        ("login", "cn1"),  # the login node
        ("10.213.0.2", "cn1"),  # an address, even the login node's
        ("cn2", "cn1"),  # a node of the cluster, but not this job's
        ("cn10", "cn[1-2]"),
        ("", "cn1"),
    ],
)
async def test_a_host_that_is_not_one_of_the_jobs_nodes_fails_the_start(paper, host, nodes):
    message = await start_fails(
        paper, RoutedScheduler({"host": host, "port": 8081}, nodes), "bnd-host"
    )
    assert message == (
        f"Job 1000 says its server listens on {host}:8081, which is not one of the job's "
        f"nodes ({', '.join(['cn1', 'cn2'] if nodes == 'cn[1-2]' else ['cn1'])}); refusing to "
        "tunnel there."
    )


@pytest.mark.parametrize("port", [22, 80, 1023, 65536, 0, -1, "8081", True, None])
async def test_a_port_that_is_not_an_unprivileged_port_fails_the_start(paper, port):
    message = await start_fails(paper, RoutedScheduler({"host": "cn1", "port": port}), "bnd-port")
    assert message.startswith(f"Job 1000 says its server listens on cn1:{port}, but ")
    assert message.endswith("is not an unprivileged port (1024-65535); refusing to tunnel there.")


async def test_a_connection_file_over_its_limit_fails_the_start_naming_its_size(paper):
    big = b'{"host": "cn1", "port": 8081, "pad": "' + b"x" * CONNECTION_FILE_LIMIT + b'"}'
    message = await start_fails(paper, RoutedScheduler(big), "bnd-big")
    assert message == (
        "The connection file of job 1000 is too large to read: "
        f".hubdash/servers/hub/bnd-big/connection.json on paper is {len(big)} bytes, over the "
        f"{CONNECTION_FILE_LIMIT}-byte limit for a connection file."
    )


@pytest.mark.parametrize(
    ("host", "nodes", "node"),
    [
        ("cn1", "cn1", "cn1"),
        ("cn2", "cn[1-2]", "cn2"),  # a multi-node job: any of its nodes
        ("CN1.cluster.example.org", "cn1", "cn1"),  # the node's FQDN: its name is used
        ("n01", "n[01-02].cluster.example.org", "n01.cluster.example.org"),
    ],
)
async def test_a_host_of_the_job_is_reached_by_the_schedulers_name_for_it(paper, host, nodes, node):
    scheduler = RoutedScheduler({"host": host, "port": 41234}, nodes)
    assert await tunnel_opened_to(paper, scheduler, "bnd-ok") == (node, 41234)


async def test_a_file_written_before_the_monitor_saw_the_job_run_is_checked_after_one_lookup(
    paper, monkeypatch
):
    # The monitor has not seen the job's nodes yet (it still thinks it pending): the spawner
    # asks the scheduler once more before it judges the file.
    scheduler = RoutedScheduler({"host": "cn1", "port": 41234})
    calls = []
    real_refresh = cluster_module.JobMonitor.refresh

    async def refresh(self, job_id, timeout=30.0):
        calls.append(job_id)
        return await real_refresh(self, job_id, timeout)

    monkeypatch.setattr(cluster_module.JobMonitor, "refresh", refresh)
    real_get = cluster_module.JobMonitor.get

    def get_without_nodes_before_a_refresh(self, job_id):
        view = real_get(self, job_id)
        if view is not None and view.info is not None and not calls:
            view.info.nodes = []
        return view

    monkeypatch.setattr(cluster_module.JobMonitor, "get", get_without_nodes_before_a_refresh)
    assert await tunnel_opened_to(paper, scheduler, "bnd-late") == ("cn1", 41234)
    assert calls == ["1000"]


async def test_a_file_is_not_taken_while_the_scheduler_names_no_nodes(paper, monkeypatch):
    # A status command that fails or hangs is no answer: the start waits (no tunnel, no
    # refusal) until the scheduler names the job's nodes.
    scheduler = RoutedScheduler({"host": "cn1", "port": 41234})
    real_get = cluster_module.JobMonitor.get
    answering = asyncio.Event()

    def get(self, job_id):
        view = real_get(self, job_id)
        if view is not None and view.info is not None and not answering.is_set():
            view.info.nodes = []
        return view

    monkeypatch.setattr(cluster_module.JobMonitor, "get", get)
    paper.scheduler = scheduler
    spawner = make_spawner("bnd-wait")
    start = asyncio.ensure_future(spawner.start())
    try:
        await asyncio.sleep(2)
        assert not start.done() and scheduler.forward_to == []
        answering.set()
        await asyncio.wait_for(scheduler.notebook_forward_opened.wait(), START_BOUND)
        assert scheduler.forward_to[0] == ("cn1", 41234)
    finally:
        start.cancel()
        await asyncio.gather(start, return_exceptions=True)
