"""The dashboard with several clusters per hub: each server's cluster on its card, status page
and admin row, the admin overview's cluster filter, health table and per-cluster rate, servers
of a cluster the hub no longer lists, and a hub without a cluster list (older, or failing)."""

from __future__ import annotations

import asyncio
import html as htmllib
import json
import re
import time
from typing import Any
from urllib.parse import quote

import pytest

from hubdash.dashboard import clusters as dashboard_clusters
from hubdash.serverstate import ClusterRef, JobRecord, ServerState

from .fakehub import server_model
from .test_dashboard_service import PREFIX, running_dashboard, stop_with_token

PBS = {"name": "pbs", "title": "OpenPBS test cluster", "scheduler": "pbs", "available": True}
SLURM = {"name": "slurm", "title": "", "scheduler": "slurm", "available": True}


@pytest.fixture
async def dash():
    async with running_dashboard() as dashboard:
        dashboard.clusters.clusters = [dict(PBS), dict(SLURM)]
        yield dashboard


def state_on(cluster: str | None, title: str = "", **job: Any) -> dict[str, Any]:
    """A saved state with a job on `cluster` (None: saved before states named their cluster)."""
    ref = ClusterRef(cluster, title=title, scheduler="pbs") if cluster is not None else None
    return ServerState(job=JobRecord(**job), cluster=ref).to_state()


def running(name: str, cluster: str | None, title: str = "", user: str = "alice") -> dict:
    return server_model(
        name,
        ready=True,
        user=user,
        state=state_on(cluster, title, job_id=f"{user}-{name or 'default'}", state="running"),
    )


def cards(page: str) -> dict[str, str]:
    """Each card's HTML by its server's name."""
    found = re.finditer(r'<article [^>]*data-server="([^"]*)".*?</article>', page, re.S)
    return {match.group(1): match.group(0) for match in found}


def admin_rows(page: str) -> dict[tuple[str, str], tuple[str, str]]:
    """The admin table's rows: (user, server) -> (data-cluster, the row's HTML)."""
    row = r'<tr data-user="([^"]*)" data-server="([^"]*)" data-cluster="([^"]*)">(.*?)</tr>'
    return {(m[1], m[2]): (m[3], m[4]) for m in re.finditer(row, page, re.S)}


def detail(page: str, name: str) -> str:
    match = re.search(rf'<dd data-detail="{name}">(.*?)</dd>', page, re.S)
    assert match, f"no {name} detail"
    return match.group(1)


async def text(dash, path: str, token: str) -> str:
    response = await dash.fetch(path, token=token)
    assert response.code == 200, (path, response.code, response.body[:300])
    return response.body.decode()


# --- My servers and status page ----------------------------------------------------------------


async def test_each_card_names_its_servers_cluster_by_title_or_name(dash):
    dash.hub.servers["alice"] = {
        "": running("", "pbs", "OpenPBS test cluster"),
        "gpu": running("gpu", "slurm"),
    }
    shown = cards(await text(dash, PREFIX, "alice-token"))
    assert 'data-cluster="pbs"' in shown[""] and "OpenPBS test cluster" in shown[""]
    assert 'data-cluster="slurm"' in shown["gpu"]
    assert re.search(r"<dt>Cluster</dt>\s*<dd[^>]*>slurm</dd>", shown["gpu"])
    assert "no longer configured" not in "".join(shown.values())


async def test_the_live_cards_and_the_polled_cards_check_the_cluster_too(dash):
    # Only the hub's list can tell a removed cluster: these cards must have asked for it.
    dash.hub.servers["alice"] = {"gpu": running("gpu", "retired", "Old Torque")}
    events = await dash.read_events(
        f"{PREFIX}api/users/alice/events", "alice-token", until=lambda evs: bool(evs)
    )
    assert events[0][0] == "cards"
    polled = await dash.fetch(f"{PREFIX}api/users/alice/cards", token="alice-token")
    for html in (events[0][1]["html"], json.loads(polled.body)["html"]):
        assert 'data-cluster="retired"' in html and "cluster no longer configured" in html


async def test_the_status_page_and_its_stream_show_the_servers_cluster(dash):
    dash.hub.servers["alice"] = {"gpu": running("gpu", "pbs", "OpenPBS test cluster")}
    page = await text(dash, f"{PREFIX}status/alice/gpu", "alice-token")
    assert detail(page, "cluster") == "OpenPBS test cluster"
    events = await dash.read_events(
        f"{PREFIX}api/users/alice/servers/gpu/events",
        "alice-token",
        until=lambda evs: any(name == "server" for name, _ in evs),
    )
    view = next(data for name, data in events if name == "server")
    assert view["cluster"]["name"] == "pbs" and view["cluster"]["configured"] is True


async def test_a_state_from_before_clusters_shows_the_hubs_only_cluster(dash):
    dash.clusters.clusters = [dict(PBS)]
    dash.hub.servers["alice"] = {"": running("", None)}
    shown = cards(await text(dash, PREFIX, "alice-token"))
    assert 'data-cluster="pbs"' in shown[""] and "OpenPBS test cluster" in shown[""]


async def test_a_state_from_before_clusters_shows_none_on_a_hub_of_several(dash):
    dash.hub.servers["alice"] = {"": running("", None)}
    shown = cards(await text(dash, PREFIX, "alice-token"))
    assert 'data-cluster=""' in shown[""] and "<dt>Cluster</dt>" not in shown[""]
    page = await text(dash, f"{PREFIX}status/alice", "alice-token")
    assert detail(page, "cluster") == "—"


# --- a cluster no longer configured ------------------------------------------------------------


async def test_a_server_on_a_removed_cluster_says_so_and_can_still_be_stopped(dash):
    dash.hub.servers["alice"] = {"": running("", "retired", "Old Torque")}
    card = cards(await text(dash, PREFIX, "alice-token"))[""]
    assert "Old Torque" in card and "cluster no longer configured" in card
    assert 'class="btn btn-danger btn-sm hd-stop">Stop<' in card

    page = await text(dash, f"{PREFIX}status/alice", "alice-token")
    assert detail(page, "cluster") == "Old Torque (cluster no longer configured)"
    assert re.search(r'<form method="post" action="[^"]+" id="stop-form"\s+class="">', page)

    response = await stop_with_token(dash, "alice", "", "alice-token")
    assert response.code == 202
    assert dash.hub.stopped == [("alice", "", "alice-token")]

    rows = admin_rows(await text(dash, f"{PREFIX}admin", "root-token"))
    cluster, row = rows[("alice", "")]
    assert cluster == "retired" and "cluster no longer configured" in row


# --- admin overview ----------------------------------------------------------------------------


def three_clusters_of_servers(dash) -> None:
    dash.hub.servers["alice"] = {"": running("", "pbs", "OpenPBS test cluster")}
    dash.hub.servers["bob"] = {"": running("", "slurm", user="bob")}
    dash.hub.servers["carol"] = {"": running("", "retired", "Old Torque", user="carol")}


async def test_the_admin_overview_has_a_cluster_column_and_choices(dash):
    three_clusters_of_servers(dash)
    page = await text(dash, f"{PREFIX}admin", "root-token")
    rows = admin_rows(page)
    assert {key: cluster for key, (cluster, _) in rows.items()} == {
        ("alice", ""): "pbs",
        ("bob", ""): "slurm",
        ("carol", ""): "retired",
    }
    assert "OpenPBS test cluster" in rows[("alice", "")][1]
    options = re.findall(r'<option value="([^"]*)"', page)
    # Those the hub lists, and the one a server still runs on.
    assert options == ["", "pbs", "retired", "slurm"]


async def test_the_admin_filter_shows_only_that_clusters_rows_rate_and_health(dash):
    three_clusters_of_servers(dash)
    now = time.time()
    dash.hub.metrics_text = (
        'hubdash_scheduler_commands_total{cluster="pbs",command="qstat",outcome="ok"} 70\n'
        'hubdash_scheduler_commands_total{cluster="slurm",command="squeue",outcome="ok"} 35\n'
    )
    rate = dash.settings["scheduler_rate"]
    rate.add(now - 60, {("pbs", "qstat"): 10.0, ("slurm", "squeue"): 5.0})
    rate.add(now, {("pbs", "qstat"): 70.0, ("slurm", "squeue"): 35.0})

    everything = await text(dash, f"{PREFIX}admin", "root-token")
    assert re.findall(r'<tr data-cluster="([^"]*)"><td>', everything) == [
        *["pbs", "slurm"],  # per cluster
        *["pbs", "slurm"],  # per command
    ]

    page = await text(dash, f"{PREFIX}admin?cluster=pbs", "root-token")
    assert list(admin_rows(page)) == [("alice", "")]
    assert re.search(r'<option value="pbs" selected>', page)
    assert re.findall(r'<tr data-cluster="([^"]*)"><td>', page) == ["pbs", "pbs"]
    assert "squeue" not in page and "qstat" in page
    per_minute = re.search(r"<strong>([\d.]+)</strong> commands per minute", page).group(1)
    assert 59 <= float(per_minute) <= 61  # pbs's 60 in a minute, not both clusters' 90
    health = re.findall(r'<tr data-cluster="([^"]*)" data-available', page)
    assert health == ["pbs"]


async def test_an_unknown_cluster_shows_no_rows_and_says_so(dash):
    three_clusters_of_servers(dash)
    page = await text(dash, f"{PREFIX}admin?cluster=nope", "root-token")
    assert admin_rows(page) == {}
    assert 'id="cluster-unknown"' in page and "No cluster is named “nope”" in page
    assert "No server is running or starting on nope." in page
    # A known cluster without servers is no unknown one.
    dash.hub.servers.pop("bob")
    page = await text(dash, f"{PREFIX}admin?cluster=slurm", "root-token")
    assert admin_rows(page) == {} and 'id="cluster-unknown"' not in page


async def test_the_health_table_says_which_clusters_answer(dash):
    now = time.time()
    dash.clusters.clusters = [
        dict(PBS, checked_at=now - 5, last_reachable=now - 5),
        {
            "name": "sge",
            "title": "Grid Engine",
            "scheduler": "sge",
            "available": False,
            "last_reachable": now - 600,
            "checked_at": now - 5,
            "message": "qstat timed out after 30 s",
        },
        {"name": "lost", "scheduler": "slurm", "available": False, "last_reachable": None},
    ]
    page = await text(dash, f"{PREFIX}admin", "root-token")
    found = re.finditer(
        r'<tr data-cluster="([^"]*)" data-available="(true|false)">(.*?)</tr>', page, re.S
    )
    health = {m[1]: (m[2], " ".join(m[3].split())) for m in found}
    assert list(health) == ["pbs", "sge", "lost"]
    assert health["pbs"][0] == "true" and ">available<" in health["pbs"][1]
    available, row = health["sge"]
    assert available == "false" and "Grid Engine" in row and "unavailable" in row
    assert "qstat timed out after 30 s, last reachable 10 min ago" in row
    assert time.strftime("%Y-%m-%d", time.gmtime(now - 600)) in row and "UTC" in row
    assert "last reachable not known" in health["lost"][1]


# --- a hub without a cluster list --------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"clusters": None}, id="404-older-hub"),
        pytest.param({"status": 500}, id="hub-error"),
        pytest.param({"clusters": "nonsense"}, id="not-a-list"),
    ],
)
async def test_without_a_cluster_list_every_page_still_works(dash, answer):
    for key, value in answer.items():
        setattr(dash.clusters, key, value)
    three_clusters_of_servers(dash)
    dash.hub.servers["alice"]["old"] = running("old", None)

    shown = cards(await text(dash, PREFIX, "alice-token"))
    assert "OpenPBS test cluster" in shown[""]  # the state still names it
    assert 'data-cluster=""' in shown["old"]
    page = await text(dash, f"{PREFIX}status/alice", "alice-token")
    assert detail(page, "cluster") == "OpenPBS test cluster"

    admin = await text(dash, f"{PREFIX}admin", "root-token")
    assert "The hub gives no cluster information" in admin
    assert "no longer configured" not in admin  # without a list nothing is known removed
    assert len(admin_rows(admin)) == 4
    filtered = await text(dash, f"{PREFIX}admin?cluster=retired", "root-token")
    assert list(admin_rows(filtered)) == [("carol", "")]
    assert dash.clusters.asked >= 1  # it was asked, and its failure did not show


async def test_a_hub_slow_to_list_its_clusters_does_not_hold_the_pages(dash, monkeypatch):
    monkeypatch.setattr(dashboard_clusters, "TIMEOUT_SECONDS", 0.2)
    dash.clusters.delay = 1.0
    dash.hub.servers["alice"] = {"": running("", "retired", "Old Torque")}
    started = time.monotonic()
    card = cards(await text(dash, PREFIX, "alice-token"))[""]
    assert time.monotonic() - started < 0.9
    assert "Old Torque" in card and "no longer configured" not in card
    await asyncio.sleep(0.9)  # the hub's late answer goes nowhere


async def test_the_cluster_list_is_read_once_for_many_pages(dash):
    dash.hub.servers["alice"] = {"": running("", "pbs")}
    pages = await asyncio.gather(*(dash.fetch(PREFIX, token="alice-token") for _ in range(5)))
    assert [page.code for page in pages] == [200] * 5
    await dash.fetch(PREFIX, token="alice-token")
    assert dash.clusters.asked == 1


# --- untrusted text ----------------------------------------------------------------------------


async def test_cluster_names_and_titles_are_escaped_everywhere(dash):
    name, title = '"><script>alert(1)</script>', "<img src=x onerror=alert(2)>"
    dash.clusters.clusters = [{"name": name, "title": title, "available": False, "message": title}]
    dash.hub.servers["alice"] = {"": running("", name, title)}
    for path, token in (
        (PREFIX, "alice-token"),
        (f"{PREFIX}status/alice", "alice-token"),
        (f"{PREFIX}admin", "root-token"),
        (f"{PREFIX}admin?cluster={quote(name)}", "root-token"),
    ):
        page = await text(dash, path, token)
        assert "<script>alert(1)" not in page and "<img src=x" not in page, path
        assert htmllib.escape(title) in page, path
