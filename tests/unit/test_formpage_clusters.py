"""The spawn form on a hub of several clusters: the cluster first, only the user's clusters,
each cluster's own queues and limits ready to swap in, and clusters that do not answer marked.
No scheduler and no network: the login nodes' checks are answered on paper."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest
from tornado import web
from traitlets.config import Config

from hubdash.spawner import formpage
from hubdash.spawner.hubstate import hub_state
from hubdash.spawner.jobspawner import JobSpawner

from .fake_cluster import PaperLoginNodes
from .test_formpage import Page

CLUSTERS = {
    "cpu": {
        "title": "CPU <b>cluster</b>",
        "queues": {
            "debug": {"max_walltime": "1:00:00", "default_walltime": "0:30:00", "max_nodes": 2},
            "batch": {"max_walltime": "24:00:00", "max_nodes": 4},
        },
    },
    "gpu": {
        "title": "GPU cluster",
        "login_host": "gpu-login.example.org",
        "groups": ["gpu-users"],
        "queue_timeout": 600,
        "form_extras": ["gpus"],
        "queues": {
            "gpu": {
                "max_walltime": "4:00:00",
                "default_walltime": "2:30:00",
                "max_nodes": 1,
                "max_gpus": 2,
            }
        },
    },
    "lab": {
        "title": "Lab",
        "login_host": "lab-login.example.org",
        "groups": ["lab"],
        "queues": {"small": {"max_walltime": "0:20:00"}},
    },
}
BODY = re.compile(r'class="hubdash-cluster-body" data-cluster="([^"]*)" data-ttl="([\d.]+)"')
TEMPLATE = re.compile(r'<template data-cluster="([^"]*)">(.*?)</template>', re.S)


class LiveIds(HTMLParser):
    """Every id of the page outside <template> elements, in order, repeats kept."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.ids: list[str] = []
        self._templates = 0
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "template":
            self._templates += 1
        elif not self._templates and dict(attrs).get("id"):
            self.ids.append(dict(attrs)["id"])

    def handle_endtag(self, tag):
        if tag == "template":
            self._templates -= 1


class ClusterPage:
    """The live page (`live`), each waiting cluster's part (`waiting[name]`), the raw HTML."""

    def __init__(self, html: str) -> None:
        self.html = html
        self.waiting_html = dict(TEMPLATE.findall(html))
        self.waiting = {name: Page(body) for name, body in self.waiting_html.items()}
        self.live = Page(TEMPLATE.sub("", html))
        self.live_ids = LiveIds(html).ids

    def cluster_options(self) -> list[tuple[str, str]]:
        return [
            (o["value"], " ".join(o["text"].split())) for o in self.live.options.get("cluster", [])
        ]

    def selected_cluster(self) -> str:
        return next(o["value"] for o in self.live.options["cluster"] if "selected" in o)

    def live_cluster(self) -> str:
        ((cluster, _ttl),) = BODY.findall(self.live_html)
        return cluster

    @property
    def live_html(self) -> str:
        return TEMPLATE.sub("", self.html)


def day(n: int) -> datetime:
    return datetime(2026, 1, n)


def make_spawner(user="alice", groups=(), user_options=None, others=None, server="", clusters=None):
    config = Config()
    config.JobSpawner.login_host = "cpu-login.example.org"
    config.JobSpawner.queues = {"spare": {"max_walltime": "1:00:00"}}
    config.JobSpawner.clusters = clusters or CLUSTERS
    config.JobSpawner.scheduler_precheck = False  # the login nodes answer on paper only
    orm_spawners = {
        name: SimpleNamespace(user_options=options, started=started, last_activity=None)
        for name, (options, started) in (others or {}).items()
    }
    hub_user = SimpleNamespace(
        name=user,
        groups=[SimpleNamespace(name=g) for g in groups],
        orm_spawners=orm_spawners,
        settings={},  # its own hub: clusters and their checks are this test's alone
    )
    spawner = JobSpawner(
        config=config,
        user=hub_user,
        hub=SimpleNamespace(base_url="/hub/"),
        orm_spawner=SimpleNamespace(name=server, server=None, state=None) if server else None,
    )
    spawner.user_options = user_options or {}
    return spawner


def render(spawner) -> ClusterPage:
    return ClusterPage(formpage.render_options_form(spawner))


@pytest.fixture
def login_nodes(monkeypatch):
    """Login nodes on paper: each answers unless its host is in `down`."""
    return PaperLoginNodes().install(monkeypatch)


def test_the_cluster_is_the_first_choice_and_lists_only_the_users_clusters():
    page = render(make_spawner(groups=["gpu-users"]))
    assert page.cluster_options() == [("cpu", "CPU <b>cluster</b>"), ("gpu", "GPU cluster")]
    assert page.live.by_id["cluster"]["name"] == "cluster"
    assert page.live_ids.index("cluster") < page.live_ids.index("queue")
    # Every group may use cpu, lab only its group: a member of both sees all three.
    both = render(make_spawner(groups=["gpu-users", "lab"]))
    assert [name for name, _ in both.cluster_options()] == ["cpu", "gpu", "lab"]


def test_a_user_with_one_cluster_sees_no_choice_but_sends_it():
    html = formpage.render_options_form(make_spawner("bob"))
    page = ClusterPage(html)
    assert "cluster" not in page.live.by_id and not page.waiting
    (hidden,) = re.findall(r'<input type="hidden" name="cluster" value="([^"]*)">', html)
    assert hidden == "cpu"
    assert page.live_cluster() == "cpu"
    assert [o["value"] for o in page.live.options["queue"]] == ["debug", "batch"]


def test_each_clusters_part_holds_its_own_queues_limits_and_extras():
    page = render(make_spawner(groups=["gpu-users", "lab"]))
    assert page.live_cluster() == "cpu"
    assert [o["value"] for o in page.live.options["queue"]] == ["debug", "batch"]
    assert "gpus" not in page.live.by_id  # cpu has no GPU field
    assert set(page.waiting) == {"gpu", "lab"}  # the live cluster has no template
    gpu = page.waiting["gpu"]
    assert [o["value"] for o in gpu.options["queue"]] == ["gpu"]
    assert gpu.by_id["gpus"]["max"] == "2"
    assert "after 10 minutes in the queue" in " ".join(page.waiting_html["gpu"].split())
    assert "after 240 minutes in the queue" in " ".join(page.live_html.split())
    assert [o["value"] for o in page.waiting["lab"].options["queue"]] == ["small"]
    assert gpu.by_id["walltime"]["value"] == "2:30:00"  # gpu's own default


def test_no_id_is_twice_in_the_live_page():
    page = render(make_spawner(groups=["gpu-users", "lab"]))
    repeated = {i for i in page.live_ids if page.live_ids.count(i) > 1}
    assert not repeated
    # The waiting parts do repeat the live part's ids: only one part is ever in the page.
    assert "queue" in page.live_ids and "queue" in page.waiting["gpu"].by_id


def test_the_form_opens_on_the_cluster_of_the_last_choices():
    last = {"cluster": "gpu", "queue": "gpu", "walltime": "2:00:00", "nodes": 1, "gpus": 1}
    page = render(make_spawner(groups=["gpu-users"], user_options=last))
    assert page.selected_cluster() == "gpu" and page.live_cluster() == "gpu"
    assert page.live.by_id["walltime"]["value"] == "2:00:00"
    assert page.live.by_id["gpus"]["value"] == "1"
    # cpu's part starts from cpu's own defaults, not from choices made on gpu.
    assert page.waiting["cpu"].by_id["walltime"]["value"] == "0:30:00"


def test_each_cluster_starts_from_the_users_latest_choices_there():
    others = {
        "old": ({"cluster": "cpu", "queue": "debug", "walltime": "0:45:00", "nodes": 1}, day(1)),
        "a": ({"cluster": "cpu", "queue": "batch", "walltime": "5:00:00", "nodes": 3}, day(2)),
        "b": ({"cluster": "gpu", "queue": "gpu", "walltime": "3:00:00", "nodes": 1}, day(3)),
    }
    page = render(make_spawner(groups=["gpu-users"], others=others))
    assert page.selected_cluster() == "gpu"  # the latest of all
    assert page.live.by_id["walltime"]["value"] == "3:00:00"
    cpu = page.waiting["cpu"]
    assert [o["value"] for o in cpu.options["queue"] if "selected" in o] == ["batch"]
    assert cpu.by_id["walltime"]["value"] == "5:00:00"


def test_last_choices_on_a_cluster_no_longer_allowed_open_the_first_allowed():
    last = {"cluster": "gpu", "queue": "gpu", "walltime": "2:00:00", "nodes": 1}
    page = render(make_spawner(groups=["lab"], user_options=last))
    assert page.selected_cluster() == "cpu" and page.live_cluster() == "cpu"


def test_a_refused_form_comes_back_on_its_cluster_with_its_entries():
    last = {"cluster": "cpu", "queue": "debug", "walltime": "0:10:00", "nodes": 1}
    spawner = make_spawner(groups=["gpu-users"], user_options=last)
    sent = {"cluster": ["gpu"], "queue": ["gpu"], "walltime": ["9:00:00"], "nodes": ["1"]}
    with pytest.raises(web.HTTPError) as caught:
        asyncio.run(spawner.options_from_form(sent))
    assert caught.value.status_code == 400
    page = render(spawner)
    assert page.selected_cluster() == "gpu" and page.live_cluster() == "gpu"
    assert page.live.by_id["walltime"]["value"] == "9:00:00"
    assert "is-invalid" in page.live.by_id["walltime"]["class"]
    assert "at most 4:00:00" in page.live.text("walltime-feedback")
    assert "is-invalid" not in page.waiting["cpu"].by_id["walltime"]["class"]
    # Shown once: the next page opens on the last choices again.
    assert render(spawner).selected_cluster() == "cpu"


def test_a_refused_cluster_is_named_under_the_choice():
    spawner = make_spawner(groups=["gpu-users"])
    with pytest.raises(web.HTTPError):
        asyncio.run(
            spawner.options_from_form({"cluster": ["lab"], "queue": ["small"], "walltime": ["10"]})
        )
    page = render(spawner)
    assert "you may not use cluster 'lab'" in page.live.text("cluster-feedback")
    assert "is-invalid" in page.live.by_id["cluster"]["class"]
    assert [name for name, _ in page.cluster_options()] == ["cpu", "gpu"]
    assert page.live.by_id["walltime"]["value"] == "10"  # the entries are kept


def test_titles_are_escaped():
    html = formpage.render_options_form(make_spawner())
    assert "<b>cluster</b>" not in html
    assert "CPU &lt;b&gt;cluster&lt;/b&gt;" in html


def test_a_user_with_no_cluster_is_told_so():
    staff_only = {name: dict(entry, groups=["staff"]) for name, entry in CLUSTERS.items()}
    page = render(make_spawner(clusters=staff_only))
    assert "No cluster of this hub is open to you" in page.html
    assert "queue" not in page.live.by_id and not page.waiting


async def test_a_cluster_that_does_not_answer_is_marked(login_nodes):
    spawner = make_spawner(groups=["gpu-users", "lab"])
    try:
        gpu = spawner.for_cluster("gpu").cluster.health
        lab = spawner.for_cluster("lab").cluster.health
        assert await lab.check()  # reached once ...
        reached = lab.last_reachable
        login_nodes.down = {"gpu-login.example.org", "lab-login.example.org"}
        assert not await gpu.check()  # ... gpu never
        assert not await lab.check(max_age=0)
        options = dict(render(spawner).cluster_options())
        assert options["cpu"] == "CPU <b>cluster</b>"  # never checked: not marked
        assert options["gpu"] == "GPU cluster — unavailable (never reached)"
        hhmm = time.strftime("%H:%M", time.localtime(reached))
        assert options["lab"] == f"Lab — unavailable (last reachable {hhmm})"
    finally:
        await hub_state(spawner.user).clusters.close()


async def test_the_chosen_cluster_that_does_not_answer_is_warned_about(login_nodes):
    last = {"cluster": "gpu", "queue": "gpu", "walltime": "1:00:00", "nodes": 1}
    spawner = make_spawner(groups=["gpu-users"], user_options=last)
    try:
        page = render(spawner)
        assert "hidden" in page.live.by_id["cluster-status"]
        login_nodes.down = {"gpu-login.example.org"}
        assert not await spawner.for_cluster("gpu").cluster.health.check()
        page = render(spawner)
        status = page.live.by_id["cluster-status"]
        assert "hidden" not in status
        assert "GPU cluster is unavailable" in page.live.text("cluster-status")
        assert "gpu-login.example.org" in page.live.text("cluster-status")
    finally:
        await hub_state(spawner.user).clusters.close()


def test_the_page_points_its_script_at_the_cluster_list():
    page = render(make_spawner(groups=["gpu-users"]))
    root = page.live.by_id["hubdash-form"]
    assert root["data-clusters-url"] == "/hub/api/hubdash/clusters"
    bodies = BODY.findall(page.html)
    assert sorted(bodies) == [("cpu", "30.0"), ("gpu", "30.0")]


def test_a_hub_of_one_cluster_shows_no_cluster_at_all():
    config = Config()
    config.JobSpawner.login_host = "login.example.org"
    config.JobSpawner.queues = {"debug": {"max_walltime": "1:00:00"}}
    spawner = JobSpawner(
        config=config,
        user=SimpleNamespace(name="alice", groups=[], orm_spawners={}),
        hub=SimpleNamespace(base_url="/hub/"),
    )
    html = formpage.render_options_form(spawner)
    assert 'name="cluster"' not in html and "<template" not in html
    assert "data-clusters-url" not in html
    assert 'class="hubdash-cluster-body" data-cluster=""' in html
    assert "batch job on the cluster." in " ".join(html.split())
