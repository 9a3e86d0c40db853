"""The dashboard service against a fake hub API: isolation, XSRF, stop, live status, admin view."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from jupyterhub.services.auth import HubOAuth
from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from tornado.web import HTTPError, create_signed_value

from hubdash.dashboard.app import HubDash
from hubdash.dashboard.hubapi import HubAPI
from hubdash.serverstate import JobOutcome, JobRecord, ServerState

from .fakehub import (
    SERVICE_TOKEN,
    FakeHubHandler,
    FakeHubState,
    make_fake_hub,
    server_model,
    service_auth,
)

PREFIX = "/services/hubdash/"


@dataclass
class FakeClusters:
    """What the fake hub answers to GET /hub/api/hubdash/clusters: `clusters` (None: the hub
    is older than that route and answers 404), for the service's token only."""

    clusters: Any = None  # a list of clusters; anything else is sent as it is
    status: int = 200  # another answer than 200: the hub failed
    delay: float = 0.0  # seconds the hub takes to answer
    asked: int = 0


class ClusterList(FakeHubHandler):
    def initialize(self, hub: FakeHubState, clusters: FakeClusters) -> None:
        super().initialize(hub)
        self.clusters = clusters

    async def get(self) -> None:
        self.clusters.asked += 1
        await asyncio.sleep(self.clusters.delay)
        if self.clusters.clusters is None:
            raise HTTPError(404)
        if self.clusters.status != 200:
            raise HTTPError(self.clusters.status)
        if self.caller() != "service":
            raise HTTPError(403)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"clusters": self.clusters.clusters}))


def serve_hub(hub: FakeHubState, clusters: FakeClusters) -> tuple[HTTPServer, str]:
    """The fake hub, with its hubdash cluster list too; (its server, its API URL)."""
    app = make_fake_hub(hub)
    kwargs = {"hub": hub, "clusters": clusters}
    app.add_handlers(r".*", [(r"/hub/api/hubdash/clusters", ClusterList, kwargs)])
    sock, port = bind_unused_port()
    server = HTTPServer(app)
    server.add_sockets([sock])
    return server, f"http://127.0.0.1:{port}/hub/api"


@dataclass
class Dashboard:
    url: str
    hub: FakeHubState
    cookie_secret: bytes
    client: AsyncHTTPClient
    clusters: FakeClusters = field(default_factory=FakeClusters)
    settings: dict[str, Any] = field(default_factory=dict)  # the dashboard app's

    async def fetch(
        self, path: str, token: str | None = None, method: str = "GET", **kwargs: Any
    ) -> HTTPResponse:
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["Authorization"] = f"token {token}"
        if method == "POST" and "body" not in kwargs:
            kwargs["body"] = ""
        request = HTTPRequest(
            self.url + path,
            method=method,
            headers=headers,
            follow_redirects=False,
            request_timeout=10,
            **kwargs,
        )
        return await self.client.fetch(request, raise_error=False)

    def login_cookie(self, token: str) -> str:
        """The cookie the dashboard sets after the hub's OAuth, for a browser-like request."""
        value = create_signed_value(self.cookie_secret, "service-hubdash", token).decode()
        return f"service-hubdash={value}"

    async def read_events(
        self,
        path: str,
        token: str,
        until: Callable[[list[tuple[str, Any]]], bool],
        timeout: float = 10,
    ) -> list[tuple[str, Any]]:
        """Read a server-sent event stream until `until(events)` holds, then hang up."""
        events: list[tuple[str, Any]] = []
        buffer = b""
        name = "message"
        done = asyncio.Event()

        def on_chunk(chunk: bytes) -> None:
            nonlocal buffer, name
            if done.is_set():
                raise ConnectionAbortedError("test is done reading")
            buffer += chunk
            while b"\n" in buffer:
                line, _, buffer = buffer.partition(b"\n")
                text = line.decode()
                if text.startswith("event:"):
                    name = text[6:].strip()
                elif text.startswith("data:"):
                    events.append((name, json.loads(text[5:])))
                    name = "message"
                    if until(events):
                        done.set()

        request = HTTPRequest(
            self.url + path,
            headers={"Authorization": f"token {token}"},
            streaming_callback=on_chunk,
            request_timeout=timeout + 5,
        )
        fetch = asyncio.ensure_future(self.client.fetch(request, raise_error=False))
        try:
            async with asyncio.timeout(timeout):
                await asyncio.wait(
                    [fetch, asyncio.ensure_future(done.wait())],
                    return_when=asyncio.FIRST_COMPLETED,
                )
        finally:
            done.set()
        if fetch.done() and not events:
            response = fetch.result()
            raise AssertionError(f"no events; the stream answered {response.code}")
        return events


@contextlib.asynccontextmanager
async def running_dashboard() -> AsyncIterator[Dashboard]:
    """The dashboard against a fake hub, both on free loopback ports, for one test."""
    hub, clusters = FakeHubState(), FakeClusters()
    hub_server, api_url = serve_hub(hub, clusters)

    config = HubDash(service_prefix=PREFIX, state_interval=0.5, walltime_warning_minutes=10)
    auth = service_auth(HubOAuth, api_url, PREFIX)
    app = config.make_app(hub_auth=auth, hub_api=HubAPI(api_url, SERVICE_TOKEN))
    sock, port = bind_unused_port()
    server = HTTPServer(app)
    server.add_sockets([sock])
    client = AsyncHTTPClient(force_instance=True)
    try:
        yield Dashboard(
            f"http://127.0.0.1:{port}",
            hub,
            app.settings["cookie_secret"],
            client,
            clusters,
            app.settings,
        )
    finally:
        client.close()
        server.stop()
        hub_server.stop()
        await asyncio.sleep(0)  # let closed connections finish


@pytest.fixture
async def dash():
    # The hub's cluster list is left unset: these tests are about a hub without one (404).
    async with running_dashboard() as dashboard:
        yield dashboard


def saved_state(**job: Any) -> dict[str, Any]:
    """A server's state as the spawner saves it, with a job of these fields."""
    return ServerState(job=JobRecord(**job)).to_state()


def queued_alice(hub: FakeHubState, name: str = "") -> None:
    hub.servers["alice"] = {
        name: server_model(
            name,
            pending="spawn",
            state=saved_state(
                job_id="4242",
                state="pending",
                queue="debug",
                node_count=1,
                engines=0,
                walltime_seconds=1800,
                reason="Resources",
                position=2,
                submitted_at=1_700_000_000.0,
            ),
            user_options={"queue": "debug", "walltime": "0:30:00", "nodes": 1},
        )
    }


# --- isolation ---------------------------------------------------------------------------------


async def test_another_users_status_page_answers_403(dash):
    queued_alice(dash.hub)
    response = await dash.fetch(f"{PREFIX}status/alice", token="bob-token")
    assert response.code == 403
    assert b"own servers only" in response.body


async def test_a_percent_sign_in_a_refusal_is_shown_once(dash):
    queued_alice(dash.hub)
    response = await dash.fetch(f"{PREFIX}api/users/alice/servers/50%25", token="alice-token")
    assert response.code == 404
    assert json.loads(response.body)["message"] == "You have no server named '50%'."


async def test_another_users_status_api_and_event_stream_answer_403(dash):
    queued_alice(dash.hub, "gpu")
    for path in ("api/users/alice/servers/gpu", "api/users/alice/servers/gpu/events"):
        response = await dash.fetch(PREFIX + path, token="bob-token")
        assert response.code == 403, path
        assert json.loads(response.body)["status"] == 403


async def test_stopping_another_users_server_is_refused_and_reaches_no_hub(dash):
    queued_alice(dash.hub)
    response = await dash.fetch(f"{PREFIX}api/users/alice/server/stop", "bob-token", "POST")
    assert response.code == 403
    assert dash.hub.stopped == []


async def test_admin_overview_is_for_hub_admins_only(dash):
    queued_alice(dash.hub)
    response = await dash.fetch(f"{PREFIX}admin", token="alice-token")
    assert response.code == 403


async def test_a_visitor_without_login_is_sent_to_the_hubs_oauth(dash):
    response = await dash.fetch(PREFIX)
    assert response.code == 302
    assert "/hub/api/oauth2/authorize" in response.headers["Location"]


# --- stop with XSRF -------------------------------------------------------------------------


async def test_stop_post_without_xsrf_is_refused(dash):
    queued_alice(dash.hub)
    response = await dash.fetch(
        f"{PREFIX}api/users/alice/server/stop",
        method="POST",
        headers={"Cookie": dash.login_cookie("alice-token"), "Sec-Fetch-Mode": "navigate"},
    )
    assert response.code == 403
    assert dash.hub.stopped == []


async def test_a_bad_token_header_does_not_fall_back_to_the_login_cookie(dash):
    # Requests with a token skip the XSRF check: they must then stand on that token alone.
    queued_alice(dash.hub)
    response = await dash.fetch(
        f"{PREFIX}api/users/alice/server/stop",
        token="not-a-token",
        method="POST",
        headers={"Cookie": dash.login_cookie("alice-token")},
    )
    assert response.code == 403
    assert dash.hub.stopped == []


async def stop_with_token(dash, user: str, server: str, token: str):
    """POST the dashboard's stop API with a user's own API token (no cookie, no XSRF)."""
    path = f"servers/{server}" if server else "server"
    return await dash.fetch(
        f"{PREFIX}api/users/{user}/{path}/stop",
        token=token,
        method="POST",
        headers={"Accept": "application/json"},
    )


async def test_stop_with_the_users_own_api_token_needs_no_xsrf(dash):
    queued_alice(dash.hub, "gpu")
    response = await stop_with_token(dash, "alice", "gpu", "alice-token")
    assert response.code == 202
    assert dash.hub.stopped == [("alice", "gpu", "alice-token")]


async def test_stop_from_the_servers_page_acts_with_the_users_own_token(dash):
    queued_alice(dash.hub)
    cookie = dash.login_cookie("alice-token")
    page = await dash.fetch(PREFIX, headers={"Cookie": cookie, "Sec-Fetch-Mode": "navigate"})
    assert page.code == 200
    xsrf = re.search(rb'name="_xsrf" value="([^"]+)"', page.body).group(1).decode()
    xsrf_cookie = re.search(r"_xsrf=([^;]+)", page.headers["Set-Cookie"]).group(1)
    action = re.search(rb'<form method="post" action="([^"]+)"', page.body).group(1).decode()
    assert action == f"{PREFIX}api/users/alice/server/stop"

    response = await dash.fetch(
        action,
        method="POST",
        body=f"_xsrf={xsrf}",
        headers={
            "Cookie": f"{cookie}; _xsrf={xsrf_cookie}",
            "Sec-Fetch-Mode": "navigate",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert response.code == 303, response.body
    assert response.headers["Location"].startswith(PREFIX)
    assert dash.hub.stopped == [("alice", "", "alice-token")]


# --- pages ----------------------------------------------------------------------------------


async def test_servers_page_shows_a_card_per_server_with_its_job(dash):
    queued_alice(dash.hub)
    dash.hub.servers["alice"]["gpu"] = server_model(
        "gpu",
        ready=True,
        state=saved_state(
            job_id="77",
            state="running",
            queue="batch",
            node="cn2",
            walltime_seconds=3600,
            started_at=1_700_000_000.0,
        ),
    )
    page = await dash.fetch(PREFIX, token="alice-token")
    html = page.body.decode()
    assert page.code == 200
    assert html.count('class="card h-100 hd-card"') == 2
    assert 'data-status="queued"' in html and "Resources" in html and "4242" in html
    assert 'data-status="running"' in html and "cn2" in html and 'href="/user/alice/gpu/"' in html
    assert "Cancel job" in html and ">Stop<" in html


async def test_text_from_the_cluster_is_escaped_on_every_page(dash):
    queued_alice(dash.hub)
    dash.hub.servers["alice"][""]["state"]["job"]["reason"] = "<script>alert(1)</script>"
    # My servers shows it as HTML text; the status page carries it in its initial view
    # (JSON in a <script> element, where a '</script>' would end the element early).
    shown = {
        PREFIX: "&lt;script&gt;alert(1)&lt;/script&gt;",
        f"{PREFIX}status/alice": '"reason": "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e"',
    }
    for path, escaped in shown.items():
        page = await dash.fetch(path, token="alice-token")
        html = page.body.decode()
        assert page.code == 200, (path, page.code)  # an error page holds no reason at all
        assert "<script>alert(1)" not in html, path
        assert escaped in html, path


async def test_admin_overview_lists_every_users_jobs_and_the_scheduler_rate(dash):
    queued_alice(dash.hub)
    dash.hub.servers["bob"] = {
        "": server_model("", ready=True, user="bob", state=saved_state(job_id="9", queue="batch"))
    }
    line = 'hubdash_scheduler_commands_total{{cluster="c",command="squeue",outcome="ok"}} {}\n'
    dash.hub.metrics_text = line.format(10.0)
    first = await dash.fetch(f"{PREFIX}admin", token="root-token")
    assert first.code == 200
    assert b"Measuring" in first.body
    await asyncio.sleep(2.2)  # two readings must lie apart to make a rate
    dash.hub.metrics_text = line.format(40.0)
    html = (await dash.fetch(f"{PREFIX}admin", token="root-token")).body.decode()
    assert 'data-user="alice"' in html and "4242" in html and "Resources" in html
    assert 'data-user="bob"' in html and "batch" in html
    assert "commands per minute" in html and "squeue" in html


# --- live status ----------------------------------------------------------------------------


def _pending_events() -> list[dict[str, Any]]:
    return [
        {"progress": 0, "message": "Server requested"},
        {
            "progress": 10,
            "message": "Job 4242 submitted to queue debug",
            "hubdash": {"phase": "submitted", "time": 1.0, "job_id": "4242"},
        },
        {
            "progress": 20,
            "message": "Job 4242 is queued in debug (Resources)",
            "hubdash": {"phase": "pending", "time": 2.0, "reason": "Resources", "position": 2},
        },
        {
            "progress": 50,
            "message": "Job 4242 is running on cn1",
            "hubdash": {"phase": "running", "time": 3.0, "node": "cn1"},
        },
    ]


async def test_status_stream_relays_the_hubs_progress_then_ready(dash):
    queued_alice(dash.hub)
    dash.hub.progress[("alice", "")] = [
        *_pending_events(),
        {"progress": 100, "ready": True, "url": "/user/alice/", "message": "Server ready"},
    ]
    events = await dash.read_events(
        f"{PREFIX}api/users/alice/server/events",
        "alice-token",
        until=lambda evs: any(name == "ready" for name, _ in evs),
    )
    names = [name for name, _ in events]
    assert names[0] == "server"
    first = events[0][1]
    assert (first["status"], first["reason"], first["position"]) == ("queued", "Resources", 2)
    phases = [data.get("hubdash", {}).get("phase") for name, data in events if name == "progress"]
    assert phases == [None, "submitted", "pending", "running", None]
    assert events[-1] == ("ready", {"url": "/user/alice/"})


async def test_status_stream_tells_why_a_start_failed(dash):
    dash.hub.servers["alice"] = {"": server_model("")}
    message = "Spawn failed: Job 1 ended before its server started. Last lines of its output:\nboom"
    dash.hub.progress[("alice", "")] = [{"progress": 100, "failed": True, "message": message}]
    events = await dash.read_events(
        f"{PREFIX}api/users/alice/server/events",
        "alice-token",
        until=lambda evs: any(name == "failed" for name, _ in evs),
    )
    assert events[0][1]["status"] == "stopped"
    assert events[-1] == ("failed", {"message": message})


async def test_status_stream_sends_new_state_without_being_asked(dash):
    queued_alice(dash.hub)
    dash.hub.progress[("alice", "")] = [
        *_pending_events(),
        {"progress": 100, "ready": True, "url": "/user/alice/"},
    ]
    dash.hub.progress_gate[("alice", "")] = gate = asyncio.Event()

    def job_started(events: list[tuple[str, Any]]) -> bool:
        views = [data for name, data in events if name == "server"]
        return bool(views) and views[-1]["status"] == "starting"

    reading = asyncio.ensure_future(
        dash.read_events(f"{PREFIX}api/users/alice/server/events", "alice-token", job_started)
    )
    await asyncio.sleep(0.3)
    job = dash.hub.servers["alice"][""]["state"]["job"]
    job.update(state="running", node="cn1", reason="", position=None)
    events = await reading
    gate.set()
    assert [data["status"] for name, data in events if name == "server"] == ["queued", "starting"]


async def test_status_page_embeds_the_stream_url_with_its_xsrf_token(dash):
    queued_alice(dash.hub, "gpu")
    html = (await dash.fetch(f"{PREFIX}status/alice/gpu", token="alice-token")).body.decode()
    match = re.search(r'data-events-url="([^"]+)"', html)
    assert match and match.group(1).startswith(f"{PREFIX}api/users/alice/servers/gpu/events?_xsrf=")
    assert 'data-warning-minutes="10"' in html
    assert 'id="status-word"' in html and 'data-status="queued"' in html


async def test_admin_overview_adds_up_the_idle_stops_and_the_node_hours_they_gave_back(dash):
    dash.hub.metrics_text = (
        'hubdash_idle_stops_total{cluster="slurm"} 2.0\n'
        'hubdash_idle_node_hours_returned_total{cluster="slurm"} 3.25\n'
        'hubdash_idle_stops_total{cluster="pbs"} 1.0\n'
        'hubdash_idle_node_hours_returned_total{cluster="pbs"} 0.5\n'
    )
    html = (await dash.fetch(f"{PREFIX}admin", token="root-token")).body.decode()
    assert "<strong>3</strong>\n    servers stopped after idling" in html
    assert "<strong>3.75</strong> node-hours" in html
    one = (await dash.fetch(f"{PREFIX}admin?cluster=pbs", token="root-token")).body.decode()
    assert "<strong>1</strong>\n    server stopped after idling" in one
    assert "<strong>0.5</strong> node-hours" in one


# --- starting again ---------------------------------------------------------------------------

CHOSEN = {"queue": "debug", "walltime": "0:10:00", "nodes": 2, "engines": 4, "account": "p1"}
AGAIN = "/hub/spawn/alice/old?opt-queue=debug&amp;opt-walltime=0%3A10%3A00&amp;opt-nodes=2"


def stopped_alice(hub: FakeHubState, user_options: dict[str, Any], failed: bool = False) -> None:
    outcome = JobOutcome("88", "failed" if failed else "cancelled", "Job 88 ended.", 1.0)
    hub.servers["alice"] = {
        "old": server_model(
            "old", state=ServerState(last_outcome=outcome).to_state(), user_options=user_options
        )
    }


@pytest.mark.parametrize("failed", [False, True])
async def test_a_stopped_or_failed_servers_card_starts_it_again_with_its_last_choices(dash, failed):
    stopped_alice(dash.hub, CHOSEN, failed)
    html = (await dash.fetch(PREFIX, token="alice-token")).body.decode()
    again = re.search(r'class="btn btn-primary btn-sm hd-start-again" href="([^"]+)"', html)
    assert again, html
    assert again.group(1).startswith(AGAIN)
    assert again.group(1).endswith("&amp;opt-engines=4&amp;opt-account=p1")
    link = re.search(r'data-link="([^"]+)"', html).group(1)
    assert link.startswith("/hub/spawn/alice/old#opt-queue=debug&amp;")
    assert 'href="/hub/spawn/alice/old">Change and start' in html


async def test_a_server_without_earlier_choices_offers_the_plain_form(dash):
    stopped_alice(dash.hub, {})
    html = (await dash.fetch(PREFIX, token="alice-token")).body.decode()
    assert "Start again" not in html and "Copy launch link" not in html
    assert 'href="/hub/spawn/alice/old">Start</a>' in html


async def test_the_status_page_starts_again_with_the_last_choices(dash):
    stopped_alice(dash.hub, CHOSEN, failed=True)
    html = (await dash.fetch(f"{PREFIX}status/alice/old", token="alice-token")).body.decode()
    assert re.search(r'data-spawn-url="' + re.escape(AGAIN), html)  # the failure's Start again
    assert re.search(r'id="start-link"[^>]*\n?[^>]*href="' + re.escape(AGAIN), html)
    assert 'id="copy-link" data-link="/hub/spawn/alice/old#opt-queue=debug' in html
