"""The dashboard's pages and API: My servers, a server's live status, stop/cancel, admin overview.

Every request is the logged-in hub user's (OAuth); each acts on that user's own servers only,
and changes go through the hub's REST API with the user's own token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated, UserNotAllowed
from tornado import web
from tornado.iostream import StreamClosedError

from hubdash.dashboard.adminview import admin_overview
from hubdash.dashboard.clusters import ClusterDirectory
from hubdash.dashboard.hubapi import HubAPI, HubAPIError
from hubdash.dashboard.live import ServerFeed, ServerListFeed, known_clusters, read_servers
from hubdash.dashboard.schedulerrate import SchedulerRate, command_totals, idle_totals
from hubdash.dashboard.sse import format_event
from hubdash.dashboard.streamlimits import StreamLimits, StreamsFull
from hubdash.dashboard.views import STATUS_LABELS, duration, server_view
from hubdash.relaunch import launch_link, spawn_path, start_again_url

# A comment line now and then keeps proxies from closing a quiet event stream.
KEEPALIVE_SECONDS = 15.0
# How often a page refused a stream (429) polls instead: a stream reads every few seconds,
# a refused page much less often, so refusals never cost the hub more than streams would.
POLL_SECONDS = 20


def server_urls(prefix: str, user: str, server: str) -> dict[str, str]:
    """The dashboard's own URLs for one server (the default server has no name segment).

    >>> server_urls("/services/hubdash/", "alice", "")["stop"]
    '/services/hubdash/api/users/alice/server/stop'
    >>> server_urls("/services/hubdash/", "alice", "a b")["status"]
    '/services/hubdash/status/alice/a%20b'
    """
    user_part = quote(user, safe="")
    if server:
        status = f"{prefix}status/{user_part}/{quote(server, safe='')}"
        api = f"{prefix}api/users/{user_part}/servers/{quote(server, safe='')}"
    else:
        status = f"{prefix}status/{user_part}"
        api = f"{prefix}api/users/{user_part}/server"
    return {"status": status, "api": api, "events": f"{api}/events", "stop": f"{api}/stop"}


def relaunch_urls(hub_prefix: str, view: dict[str, Any]) -> dict[str, str]:
    """A server's ways to start again: at once with its last choices, the spawn form as it
    is, and the launch link (the form filled in with them); hubdash.relaunch.

    >>> urls = relaunch_urls("/hub/", {"user": "al", "name": "", "choices": {"queue": "q"}})
    >>> urls["again"], urls["form"], urls["link"]
    ('/hub/spawn/al?opt-queue=q', '/hub/spawn/al', '/hub/spawn/al#opt-queue=q')
    """
    user, name, choices = view["user"], view["name"], view.get("choices") or {}
    return {
        "again": start_again_url(hub_prefix, user, name, choices),
        "form": spawn_path(hub_prefix, user, name),
        "link": launch_link(hub_prefix, user, name, choices),
    }


class DashboardHandler(HubOAuthenticated, web.RequestHandler):
    """Common ground: hub OAuth login, ownership checks, templates, errors."""

    def initialize(self) -> None:
        self.hub_auth = self.settings["hub_auth"]

    @property
    def api(self) -> HubAPI:
        return self.settings["hub_api"]

    @property
    def prefix(self) -> str:
        return self.settings["service_prefix"]

    @property
    def clusters(self) -> ClusterDirectory | None:
        return self.settings.get("clusters")

    async def server_views(self, user_name: str) -> list[dict[str, Any]]:
        """The views of all of a user's servers, by name (the hub asked with our token)."""
        servers = await read_servers(self.api, user_name)
        known = await known_clusters(self.clusters)
        now = time.time()
        return [server_view(user_name, servers[name], now, known) for name in sorted(servers)]

    async def prepare(self) -> None:
        # HubAuth's synchronous path would wait for the hub in a thread; ask it here instead.
        model = await self.hub_auth.get_user(self, sync=False)
        try:
            user = self.check_hub_user(model) if model else None
        except UserNotAllowed:
            raise web.HTTPError(403, "You may not use this dashboard.") from None
        self._hub_auth_user_cache = user
        if self.request.headers.get("Authorization") and not getattr(
            self, "_token_authenticated", False
        ):
            raise web.HTTPError(403, "The token in the Authorization header is not valid.")

    def check_xsrf_cookie(self) -> None:
        # A request carrying its own token cannot be forged by another site (prepare() then
        # insists the token is valid); everything cookie-authenticated must carry _xsrf.
        if self.request.headers.get("Authorization"):
            return
        super().check_xsrf_cookie()

    def user_token(self) -> str:
        token = self.hub_auth.get_token(self)
        if not token:
            raise web.HTTPError(403, "No hub token for this request; log in again.")
        return token

    def own(self, user_name: str) -> dict[str, Any]:
        """The logged-in user, if `user_name` is them; 403 for anyone else's servers."""
        me = self.current_user
        if me is None:
            raise web.HTTPError(403, "Log in to the hub first.")
        if me.get("kind", "user") != "user" or me.get("name") != user_name:
            raise web.HTTPError(403, "You can see and act on your own servers only.")
        return me

    async def own_server(self, user_name: str, server: str) -> None:
        """403 unless the server is the logged-in user's, asked of the hub with their token."""
        self.own(user_name)
        try:
            model = await self.api.user(user_name, token=self.user_token())
        except HubAPIError as exc:
            status = 403 if exc.status in (401, 403, 404) else 502
            raise web.HTTPError(status, "%s", exc.message) from None
        if server and server not in (model.get("servers") or {}):
            raise web.HTTPError(404, "%s", f"You have no server named {server!r}.")

    async def own_server_view(self, user_name: str, server: str) -> dict[str, Any]:
        """The view of one of the logged-in user's servers (403/404 as own_server); a server
        the hub no longer lists shows as stopped."""
        await self.own_server(user_name, server)
        servers = await read_servers(self.api, user_name)
        model = servers.get(server) or {"name": server, "pending": None, "ready": False}
        return server_view(user_name, model, clusters=await known_clusters(self.clusters))

    # --- output ---------------------------------------------------------------------------

    def render_template(self, name: str, **namespace: Any) -> str:
        template = self.settings["jinja_env"].get_template(name)
        return template.render(**self.template_namespace(), **namespace)

    def template_namespace(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "hub_prefix": self.settings["hub_prefix"],
            "base_url": self.settings["base_url"],
            "current_user": self.current_user,
            "static_url": self.static_url,
            "xsrf_token": self.xsrf_token.decode("ascii"),
            "walltime_warning_minutes": self.settings["walltime_warning_minutes"],
            "duration": duration,
            "status_labels": STATUS_LABELS,
            "server_urls": lambda user, server: server_urls(self.prefix, user, server),
            "relaunch_urls": lambda view: relaunch_urls(self.settings["hub_prefix"], view),
        }

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        message = self._reason
        exc_info = kwargs.get("exc_info")
        # Dynamic text is raised as ("%s", text): tornado 6.6 doubles a '%' in a message
        # without arguments, and the text is shown here as the user's own words.
        if exc_info and isinstance(exc_info[1], web.HTTPError) and exc_info[1].log_message:
            message = (
                exc_info[1].log_message % exc_info[1].args
                if exc_info[1].args
                else (exc_info[1].log_message)
            )
        if self.wants_json():
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"status": status_code, "message": message}))
            return
        try:
            html = self.render_template(
                "dashboard_error.html", status_code=status_code, message=message
            )
        except Exception:  # an error page must never fail itself
            html = f"<h1>{status_code}</h1>"
        self.finish(html)

    def wants_json(self) -> bool:
        return "application/json" in self.request.headers.get("Accept", "")


class ApiHandler(DashboardHandler):
    """JSON and event streams; answers 403 instead of sending a browser to log in."""

    def get_login_url(self) -> str:
        raise web.HTTPError(403, "Log in to the hub first.")

    def wants_json(self) -> bool:
        return True


class EventStreamHandler(ApiHandler):
    """Holds a server-sent event stream open while its feed runs, within the stream caps."""

    _closed: asyncio.Event | None = None

    @property
    def limits(self) -> StreamLimits:
        return self.settings["stream_limits"]

    async def prepare(self) -> None:
        # A full dashboard asks the hub nothing, not even who is asking: the total cap
        # needs no name.
        try:
            self.limits.refuse_if_full()
        except StreamsFull as exc:
            raise web.HTTPError(429, "%s", str(exc)) from None
        await super().prepare()

    @contextlib.contextmanager
    def stream_slot(self, user_name: str) -> Iterator[None]:
        """A place among the open streams while the body runs; 429 past a cap.

        Taken before the stream asks the hub anything (only who the user is was asked, and
        that answer is cached), and given back however the body ends.
        """
        me = self.own(user_name)
        try:
            slot = self.limits.acquire(me["name"])
        except StreamsFull as exc:
            raise web.HTTPError(429, "%s", str(exc)) from None
        with slot:
            yield

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 429:
            self.set_header("Retry-After", str(POLL_SECONDS))
        super().write_error(status_code, **kwargs)

    def on_connection_close(self) -> None:
        # Also before stream() began (the page left while we asked the hub): remembered.
        if self._closed is None:
            self._closed = asyncio.Event()
        self._closed.set()

    async def send(self, name: str, data: Any) -> None:
        if self._closed is not None and self._closed.is_set():
            return
        self.write(format_event(name, data))
        try:
            await self.flush()
        except StreamClosedError:
            # The page went away: stream() ends and cancels the feed.
            self.on_connection_close()

    async def stream(self, feed: Any) -> None:
        if self._closed is None:
            self._closed = asyncio.Event()
        if self._closed.is_set():
            return
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        runner = asyncio.ensure_future(feed.run())
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            while not runner.done() and not closed.done():
                await asyncio.wait(
                    [runner, closed],
                    timeout=KEEPALIVE_SECONDS,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not runner.done() and not closed.done():
                    self.write(": keepalive\n\n")
                    try:
                        await self.flush()
                    except StreamClosedError:
                        self.on_connection_close()
        finally:
            closed.cancel()
            runner.cancel()
            with contextlib.suppress(BaseException):
                await runner
        if not self._closed.is_set():
            with contextlib.suppress(StreamClosedError):
                self.finish()


# --- pages ------------------------------------------------------------------------------------


class ServersPage(DashboardHandler):
    """My servers: one card per server, kept current by an event stream."""

    @web.authenticated
    async def get(self) -> None:
        me = self.current_user
        await self.own_server(me["name"], "")
        views = await self.server_views(me["name"])
        self.finish(
            self.render_template(
                "dashboard_servers.html",
                views=views,
                events_url=f"{self.prefix}api/users/{quote(me['name'], safe='')}/events",
                cards_url=f"{self.prefix}api/users/{quote(me['name'], safe='')}/cards",
                stopped=self.get_argument("stopped", None),
                default_active=any(v["name"] == "" and v["status"] != "stopped" for v in views),
            )
        )


class StatusPage(DashboardHandler):
    """A server's live status: the page itself; its data comes over ServerEvents."""

    @web.authenticated
    async def get(self, user_name: str, server: str | None = None) -> None:
        server = server or ""
        view = await self.own_server_view(user_name, server)
        self.finish(
            self.render_template(
                "dashboard_status.html",
                view=view,
                urls=server_urls(self.prefix, user_name, server),
            )
        )


class AdminPage(DashboardHandler):
    """Every user's jobs, the hub's scheduler query rate and its clusters' health, of all
    clusters or one (`?cluster=<name>`); hub admins only."""

    @web.authenticated
    async def get(self) -> None:
        if not self.current_user.get("admin"):
            raise web.HTTPError(403, "The overview is for hub admins only.")
        rate = await sample_scheduler_rate(self.api, self.settings["scheduler_rate"], fresh=True)
        # An admin who presses Refresh wants the health as it is, not half a minute old.
        clusters = await self.clusters.get(max_age=2) if self.clusters is not None else None
        overview = admin_overview(
            await self.api.users(),
            clusters,
            rate,
            self.get_argument("cluster", "").strip(),
            time.time(),
            idle=self.settings["scheduler_rate"].idle,
        )
        self.finish(self.render_template("dashboard_admin.html", **overview))


async def sample_scheduler_rate(
    api: HubAPI, rate: SchedulerRate, fresh: bool = False
) -> dict[str, Any] | None:
    """Read the hub's counters into the rolling window (unless just read); the rate so far."""
    last = rate.last_sample_time
    if not fresh or last is None or time.time() - last > 2:
        try:
            text = await api.metrics()
            rate.add(time.time(), command_totals(text))
            rate.idle = idle_totals(text)
        except HubAPIError:
            pass  # the page says the rate is unknown
    return rate.rates()


# --- API ------------------------------------------------------------------------------------


class ServerStatusAPI(ApiHandler):
    """One server's view as JSON."""

    @web.authenticated
    async def get(self, user_name: str, server: str | None = None) -> None:
        server = server or ""
        view = await self.own_server_view(user_name, server)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(view))


class ServerEvents(EventStreamHandler):
    """The status page's event stream: see live.ServerFeed."""

    @web.authenticated
    async def get(self, user_name: str, server: str | None = None) -> None:
        server = server or ""
        with self.stream_slot(user_name):
            await self.own_server(user_name, server)
            feed = ServerFeed(
                self.api,
                user_name,
                server,
                self.user_token(),
                self.send,
                interval=self.settings["state_interval"],
                clusters=self.clusters,
            )
            await self.stream(feed)


class ServerListEvents(EventStreamHandler):
    """The My servers page's event stream: the cards, rendered, whenever a server changes."""

    @web.authenticated
    async def get(self, user_name: str) -> None:
        with self.stream_slot(user_name):
            await self.own_server(user_name, "")

            async def send_cards(name: str, data: Any) -> None:
                if name == "servers":
                    await self.send("cards", render_cards(self, data))
                else:
                    await self.send(name, data)

            feed = ServerListFeed(
                self.api,
                user_name,
                send_cards,
                interval=self.settings["state_interval"],
                clusters=self.clusters,
            )
            await self.stream(feed)


def render_cards(handler: DashboardHandler, views: list[dict[str, Any]]) -> dict[str, Any]:
    """The My servers page's cards, rendered: the stream's `cards` event and the poll's answer."""
    html = handler.render_template("dashboard_cards.html", views=views)
    return {"html": html, "count": len(views)}


class ServerCardsAPI(ApiHandler):
    """The My servers page's cards as JSON, for a page whose stream was refused (429)."""

    @web.authenticated
    async def get(self, user_name: str) -> None:
        await self.own_server(user_name, "")
        views = await self.server_views(user_name)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(render_cards(self, views)))


class StopServer(ApiHandler):
    """POST: stop a server, or cancel its queued job, with the user's own hub token."""

    @web.authenticated
    async def post(self, user_name: str, server: str | None = None) -> None:
        server = server or ""
        self.own(user_name)
        try:
            await self.api.stop_server(user_name, server, self.user_token())
        except HubAPIError as exc:
            status = exc.status if 400 <= exc.status < 500 else 502
            refusal = f"The hub refused to stop it: {exc.message}"
            raise web.HTTPError(status, "%s", refusal) from None
        if "application/json" in self.request.headers.get("Accept", ""):
            self.set_status(202)
            self.finish(json.dumps({"stopping": True}))
            return
        title = server or "default server"
        self.redirect(f"{self.prefix}?stopped={quote(title)}", status=303)

    def wants_json(self) -> bool:
        return "application/json" in self.request.headers.get("Accept", "")


class OAuthCallback(HubOAuthCallbackHandler):
    def initialize(self) -> None:
        self.hub_auth = self.settings["hub_auth"]


def routes(prefix: str) -> list[tuple[str, type]]:
    user = r"([^/]+)"
    server = r"(?:server|servers/([^/]+))"
    return [
        (prefix, ServersPage),
        (prefix + "admin", AdminPage),
        (prefix + rf"status/{user}/?", StatusPage),
        (prefix + rf"status/{user}/([^/]+)", StatusPage),
        (prefix + rf"api/users/{user}/events", ServerListEvents),
        (prefix + rf"api/users/{user}/cards", ServerCardsAPI),
        (prefix + rf"api/users/{user}/{server}", ServerStatusAPI),
        (prefix + rf"api/users/{user}/{server}/events", ServerEvents),
        (prefix + rf"api/users/{user}/{server}/stop", StopServer),
        (prefix + "oauth_callback", OAuthCallback),
    ]
