"""The hub's queue API on a hub of several clusters: `cluster=` picks whose figures and
estimate, a cluster the user may not use is refused, and /clusters lists what each caller may
see with whether each login node answers.

The real handlers, in a tornado app on loopback: only who calls (user, admin, service) and
their scopes are set by the test; schedulers and login nodes are on paper.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest
from jupyterhub import orm
from jupyterhub.scopes import parse_scopes
from jupyterhub.user import User
from tornado import web
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from traitlets.config import Config

from hubdash.cluster import cluster as cluster_module
from hubdash.spawner.hubstate import hub_state
from hubdash.spawner.jobspawner import JobSpawner
from hubdash.spawner.queueapi import queue_info_handlers
from hubdash.transport.base import CommandResult

from .fake_cluster import PaperLoginNodes

CLUSTERS = {
    "cpu": {
        "title": "CPU cluster",
        "queues": {"debug": {"max_walltime": "1:00:00", "max_nodes": 2}},
    },
    "gpu": {
        "title": "GPU cluster",
        "login_host": "gpu-login.example.org",
        "groups": ["gpu-users"],
        "queues": {"gpu": {"max_walltime": "4:00:00", "max_nodes": 2}},
    },
    "lab": {
        "title": "Lab",
        "transport": "local",
        "groups": ["lab"],
        "queues": {"small": {"max_walltime": "0:20:00"}},
    },
}
# What each cluster's scheduler says (Slurm's formats: sinfo, squeue, sbatch --test-only).
ANSWERS = {
    "cpu-login.example.org": {
        "sinfo": "debug*|up|1:00:00|2|1/1/0/2\n",
        "squeue": "debug\ndebug\ndebug\n",
        "sbatch": "sbatch: Job 39 to start at 2026-11-25T21:22:08 using 1 processors on nodes "
        "cn1 in partition debug\n",
    },
    "gpu-login.example.org": {
        "sinfo": "gpu|up|4:00:00|8|2/6/0/8\n",
        "squeue": "gpu\n",
        "sbatch": "sbatch: Job 7 to start at 2026-12-31T23:00:00 using 1 processors on nodes "
        "g1 in partition gpu\n",
    },
}


class PaperTransport:
    """A login node's scheduler commands answered from ANSWERS; every command recorded."""

    def __init__(self, host: str, asked: list[tuple[str, str]]) -> None:
        self.host, self.asked = host, asked

    async def run(self, argv, *, input=None, timeout=30):  # noqa: A002 - the contract's name
        self.asked.append((self.host, argv[0]))
        text = ANSWERS[self.host][argv[0]]
        if argv[0] == "sbatch":
            return CommandResult(0, "", text)
        return CommandResult(0, text, "")

    async def close(self) -> None:
        pass


class HubUser(User):
    """A JupyterHub User without a database: its name, groups and admin flag as set."""

    def __init__(self, name: str, settings: dict, groups=(), admin=False) -> None:
        self.orm_user = SimpleNamespace(
            name=name,
            admin=admin,
            groups=[SimpleNamespace(name=g) for g in groups],
            orm_spawners={},
        )
        self.settings = settings
        self._spawner = JobSpawner(config=settings["config"], user=self, hub=settings["hub"])
        self._spawner.user_options = {}

    @property
    def spawner(self) -> JobSpawner:
        return self._spawner


def as_caller(handler: type[web.RequestHandler]) -> type[web.RequestHandler]:
    """The handler with its caller and scopes from the test (header X-Caller), not a token."""

    class Called(handler):
        def _caller(self) -> tuple[Any, set[str]]:
            return self.settings["callers"].get(self.request.headers.get("X-Caller"), (None, set()))

        async def get_current_user(self):
            self._jupyterhub_user = self._caller()[0]
            return self._jupyterhub_user

        def _resolve_roles_and_scopes(self):
            self.expanded_scopes = set(self._caller()[1])
            self.parsed_scopes = parse_scopes(self.expanded_scopes)

    return Called


@pytest.fixture
async def hub(monkeypatch, request):
    """The queue API of a hub of three clusters (or of the `clusters` a test's parameter
    gives), with callers of every kind."""
    paper = SimpleNamespace(asked=[], nodes=PaperLoginNodes().install(monkeypatch))
    monkeypatch.setattr(
        cluster_module,
        "make_transport",
        lambda login, user, keys, throttle, log=None: PaperTransport(
            login.host or "local", paper.asked
        ),
    )
    config = Config()
    config.JobSpawner.login_host = "cpu-login.example.org"
    config.JobSpawner.queues = {"spare": {"max_walltime": "1:00:00"}}
    config.JobSpawner.clusters = getattr(request, "param", CLUSTERS)
    settings: dict[str, Any] = {
        "config": config,
        "hub": SimpleNamespace(base_url="/hub/"),
        "db": SimpleNamespace(dirty=False),  # BaseHandler.finish looks; nothing else does
        "spawner_class": JobSpawner,
    }
    app = web.Application(
        [(f"/hub{path}", as_caller(handler)) for path, handler in queue_info_handlers()],
        **settings,
    )
    settings = app.settings
    users = {
        "alice": HubUser("alice", settings, groups=["gpu-users"]),
        "bob": HubUser("bob", settings),
        "root": HubUser("root", settings, admin=True),
    }
    own = {f"{kind}!user={name}" for kind in ("servers", "read:servers") for name in users}
    settings["callers"] = {
        name: (user, {s for s in own if s.endswith(f"={name}")}) for name, user in users.items()
    }
    settings["callers"]["root"] = (users["root"], {"servers", "read:servers"})
    settings["callers"]["dashboard"] = (orm.Service(name="hubdash"), {"read:servers"})
    settings["callers"]["metrics-only"] = (orm.Service(name="other"), {"read:metrics"})
    sock, port = bind_unused_port()
    server = HTTPServer(app)
    server.add_sockets([sock])
    paper.users = users
    paper.url = f"http://127.0.0.1:{port}/hub/api/hubdash"

    async def get(path: str, caller: str | None) -> tuple[int, dict]:
        headers = {"X-Caller": caller} if caller else {}
        response = await AsyncHTTPClient().fetch(
            paper.url + path, headers=headers, raise_error=False
        )
        return response.code, json.loads(response.body or b"{}")

    paper.get = get
    yield paper
    server.stop()
    await hub_state(SimpleNamespace(settings=settings)).clusters.close()


async def test_queues_answer_the_asked_clusters_figures(hub):
    status, answer = await hub.get("/queues?cluster=gpu", "alice")
    assert status == 200 and answer["cluster"] == "gpu"
    (gpu,) = answer["queues"]
    assert (gpu["name"], gpu["nodes_free"], gpu["nodes_total"], gpu["jobs_pending"]) == (
        "gpu",
        6,
        8,
        1,
    )
    assert {host for host, _ in hub.asked} == {"gpu-login.example.org"}


async def test_queues_without_a_cluster_are_the_users_first_clusters(hub):
    status, answer = await hub.get("/queues", "alice")
    assert status == 200 and answer["cluster"] == "cpu"
    assert [(q["name"], q["nodes_free"], q["jobs_pending"]) for q in answer["queues"]] == [
        ("debug", 1, 3)
    ]
    assert {host for host, _ in hub.asked} == {"cpu-login.example.org"}


async def test_a_cluster_the_user_may_not_use_is_refused_by_name(hub):
    status, answer = await hub.get("/queues?cluster=gpu", "bob")
    assert status == 403
    assert "'gpu'" in answer["errors"]["cluster"] and "'gpu'" in answer["message"]
    status, answer = await hub.get("/estimate?cluster=lab&queue=small&walltime=10", "alice")
    assert status == 403 and "'lab'" in answer["errors"]["cluster"]
    assert hub.asked == []


async def test_an_unknown_cluster_is_a_bad_request_naming_the_field(hub):
    for path in ("/queues?cluster=moon", "/estimate?cluster=moon&queue=debug&walltime=10"):
        status, answer = await hub.get(path, "alice")
        assert status == 400, path
        assert "there is no cluster 'moon'" in answer["errors"]["cluster"]
    assert hub.asked == []


async def test_the_estimate_is_the_asked_clusters_and_leaves_the_users_server_alone(hub):
    running = hub.users["alice"].spawner
    running.use_cluster("cpu")  # the default server, say, runs on cpu
    status, answer = await hub.get("/estimate?cluster=gpu&queue=gpu&walltime=60&nodes=1", "alice")
    assert status == 200, answer
    assert answer["start"] == "2026-12-31T23:00:00"
    assert ("gpu-login.example.org", "sbatch") in hub.asked
    assert running.chosen_cluster == "cpu" and "debug" in running.queue_table
    # The gpu cluster's own rules: its queue, not cpu's.
    status, answer = await hub.get("/estimate?cluster=gpu&queue=debug&walltime=60", "alice")
    assert status == 400 and "queue" in answer["errors"]


async def test_a_cluster_whose_login_node_does_not_answer_is_not_asked(hub):
    hub.nodes.down = {"gpu-login.example.org"}
    status, answer = await hub.get("/queues?cluster=gpu", "alice")
    assert status == 200 and not answer["available"]
    assert "cluster GPU cluster is unavailable" in answer["message"]
    status, answer = await hub.get("/estimate?cluster=gpu&queue=gpu&walltime=60", "alice")
    assert not answer["available"] and "unavailable" in answer["message"]
    assert hub.asked == []


def names(answer: dict) -> list[str]:
    return [c["name"] for c in answer["clusters"]]


async def test_clusters_lists_a_users_own_clusters(hub):
    status, answer = await hub.get("/clusters", "alice")
    assert status == 200 and names(answer) == ["cpu", "gpu"]
    assert names((await hub.get("/clusters", "bob"))[1]) == ["cpu"]


async def test_clusters_lists_every_cluster_for_an_admin_and_for_a_service(hub):
    for caller in ("root", "dashboard"):
        status, answer = await hub.get("/clusters", caller)
        assert status == 200, caller
        assert names(answer) == ["cpu", "gpu", "lab"], caller


async def test_clusters_needs_credentials_and_read_servers(hub):
    assert (await hub.get("/clusters", None))[0] == 403
    assert (await hub.get("/clusters", "metrics-only"))[0] == 403


async def test_clusters_says_which_answer_after_checking(hub):
    hub.nodes.down = {"gpu-login.example.org"}
    status, answer = await hub.get("/clusters", "dashboard")
    assert status == 200
    by_name = {c["name"]: c for c in answer["clusters"]}
    cpu, gpu, lab = by_name["cpu"], by_name["gpu"], by_name["lab"]
    assert set(cpu) == {
        "name",
        "title",
        "scheduler",
        "available",
        "last_reachable",
        "checked_at",
        "message",
    }
    assert (cpu["title"], cpu["scheduler"], cpu["available"]) == ("CPU cluster", "slurm", True)
    assert cpu["checked_at"] and cpu["last_reachable"]
    assert gpu["available"] is False and gpu["last_reachable"] is None and gpu["checked_at"]
    assert "gpu-login.example.org" in gpu["message"]
    # The local transport has no login node to check: always available.
    assert lab["available"] is True and lab["checked_at"] is None
    assert sorted(hub.nodes.asked) == ["cpu-login.example.org", "gpu-login.example.org"]


async def test_clusters_are_checked_at_once_not_one_after_the_other(hub, monkeypatch):
    started = []
    both = asyncio.Event()

    async def slow_probe(host: str, port: int, timeout: float) -> str:
        started.append(host)
        if len(started) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), 2)  # the second check starts while this one waits
        return "SSH-2.0-paper"

    monkeypatch.setattr(cluster_module, "probe_login_node", slow_probe)
    status, answer = await hub.get("/clusters", "root")
    assert status == 200 and all(c["available"] for c in answer["clusters"])
    assert sorted(started) == ["cpu-login.example.org", "gpu-login.example.org"]


@pytest.mark.parametrize("hub", [{}], indirect=True)
async def test_a_hub_of_one_cluster_answers_as_it_always_did(hub):
    status, answer = await hub.get("/queues", "alice")
    assert status == 200 and "cluster" not in answer
    assert answer["queues"] == [{"name": "spare", "listed": False}]
    assert {host for host, _ in hub.asked} == {"cpu-login.example.org"}
    assert hub.nodes.asked == []  # the queue API checks no login node here
    assert (await hub.get("/queues?cluster=moon", "alice"))[0] == 400
    status, answer = await hub.get("/clusters", "bob")
    assert [(c["name"], c["available"]) for c in answer["clusters"]] == [
        ("cpu-login.example.org", True)
    ]


async def test_check_names_each_choice_the_asked_clusters_rules_refuse(hub):
    status, answer = await hub.get(
        "/check?cluster=cpu&queue=debug&walltime=2:00:00&nodes=3&engines=0", "alice"
    )
    assert status == 200
    assert answer["errors"] == {
        "walltime": "queue 'debug' allows at most 1:00:00 of walltime; you asked for 2:00:00",
        "nodes": "queue 'debug' allows at most 2 node(s); you asked for 3",
    }
    assert hub.asked == []  # the rules only: no scheduler is asked


async def test_check_names_a_queue_that_is_gone_and_an_option_no_form_field_has(hub):
    status, answer = await hub.get("/check?queue=long&walltime=30&partition=x", "alice")
    assert status == 200
    assert answer["errors"]["queue"] == "there is no queue 'long'; choose one of: debug"
    assert answer["errors"]["partition"].startswith("unknown option(s) 'partition'")


async def test_check_of_choices_that_fit_names_nothing(hub):
    status, answer = await hub.get("/check?cluster=gpu&queue=gpu&walltime=30&nodes=2", "alice")
    assert (status, answer) == (200, {"errors": {}})
    assert hub.asked == []


async def test_check_on_a_cluster_the_user_may_not_use_names_the_cluster(hub):
    status, answer = await hub.get("/check?cluster=gpu&queue=gpu&walltime=30", "bob")
    assert status == 403 and set(answer["errors"]) == {"cluster"}
