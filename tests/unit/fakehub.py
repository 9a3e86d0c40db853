"""A stand-in for JupyterHub's REST API, in-process, for the dashboard's unit tests.

Answers the calls the dashboard makes (whoami, users, servers, progress streams, stop,
metrics) from plain data the test sets, and enforces who may read or stop what.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from tornado import web
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

SERVICE_TOKEN = "service-token"
TOKENS = {"alice-token": "alice", "bob-token": "bob", "root-token": "root"}
ADMINS = {"root"}


@dataclass
class FakeHubState:
    """What the fake hub knows; tests change it between requests."""

    servers: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    progress: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    # Set to hold a progress stream open after its events until the test releases it.
    progress_gate: dict[tuple[str, str], asyncio.Event] = field(default_factory=dict)
    stopped: list[tuple[str, str, str]] = field(default_factory=list)  # (user, server, token)
    metrics_text: str = ""
    progress_readers: int = 0
    requests: int = 0  # every request the hub was asked, whatever its answer


def server_model(
    name: str,
    *,
    pending: str | None = None,
    ready: bool = False,
    state: dict[str, Any] | None = None,
    user_options: dict[str, Any] | None = None,
    user: str = "alice",
) -> dict[str, Any]:
    return {
        "name": name,
        "pending": pending,
        "ready": ready,
        "stopped": not (pending or ready),
        "started": "2026-01-01T00:00:00Z" if (pending or ready) else None,
        "url": f"/user/{user}/{name + '/' if name else ''}",
        "progress_url": f"/hub/api/users/{user}/server/progress",
        "user_options": user_options or {},
        "state": state or {},
    }


class FakeHubHandler(web.RequestHandler):
    def initialize(self, hub: FakeHubState) -> None:
        self.hub = hub
        hub.requests += 1

    def token(self) -> str:
        return self.request.headers.get("Authorization", "").partition(" ")[2]

    def caller(self) -> str:
        token = self.token()
        if token == SERVICE_TOKEN:
            return "service"
        if token in TOKENS:
            return TOKENS[token]
        raise web.HTTPError(403)

    def may_read(self, user: str) -> bool:
        return self.caller() in ("service", user)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish(json.dumps({"status": status_code, "message": self._reason}))


class WhoAmI(FakeHubHandler):
    def get(self) -> None:
        name = TOKENS.get(self.token())
        if name is None:
            raise web.HTTPError(403)
        self.set_header("Content-Type", "application/json")
        self.finish(
            json.dumps(
                {
                    "kind": "user",
                    "name": name,
                    "admin": name in ADMINS,
                    "scopes": ["access:services!service=hubdash", f"read:servers!user={name}"],
                    "session_id": "",
                }
            )
        )


class UserModel(FakeHubHandler):
    def get(self, user: str) -> None:
        if not self.may_read(user):
            raise web.HTTPError(403)
        servers = {}
        for name, model in self.hub.servers.get(user, {}).items():
            model = dict(model)
            if self.caller() != "service":
                model.pop("state", None)  # only admin:server_state sees it
            servers[name] = model
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"kind": "user", "name": user, "servers": servers}))


class UserList(FakeHubHandler):
    def get(self) -> None:
        if self.caller() != "service":
            raise web.HTTPError(403)
        users = [
            {
                "name": user,
                "servers": {k: v for k, v in servers.items() if v["pending"] or v["ready"]},
            }
            for user, servers in self.hub.servers.items()
        ]
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(users))


class Server(FakeHubHandler):
    def delete(self, user: str, server: str | None = None) -> None:
        if self.caller() != user:
            raise web.HTTPError(403)
        self.hub.stopped.append((user, server or "", self.token()))
        self.set_status(202)


class Progress(FakeHubHandler):
    async def get(self, user: str, server: str | None = None) -> None:
        server = server or ""
        if self.caller() != user:
            raise web.HTTPError(403)
        key = (user, server)
        if key not in self.hub.progress:
            raise web.HTTPError(400, f"{user}/{server} is not starting...")
        self.hub.progress_readers += 1
        self.set_header("Content-Type", "text/event-stream")
        for event in self.hub.progress[key]:
            if key in self.hub.progress_gate and (event.get("ready") or event.get("failed")):
                # Hold the final event until the test opens the gate, with keepalives.
                while not self.hub.progress_gate[key].is_set():
                    self.write("\n\n")
                    await self.flush()
                    try:
                        await asyncio.wait_for(self.hub.progress_gate[key].wait(), 0.2)
                    except TimeoutError:
                        pass
            self.write(f"data: {json.dumps(event)}\n\n")
            await self.flush()


class Metrics(FakeHubHandler):
    def get(self) -> None:
        if self.caller() != "service":
            raise web.HTTPError(403)
        self.set_header("Content-Type", "text/plain; version=0.0.4")
        self.finish(self.hub.metrics_text)


def make_fake_hub(hub: FakeHubState) -> web.Application:
    kwargs = {"hub": hub}
    server = r"(?:server|servers/([^/]+))"
    return web.Application(
        [
            (r"/hub/api/user", WhoAmI, kwargs),
            (r"/hub/api/users", UserList, kwargs),
            (r"/hub/api/users/([^/]+)", UserModel, kwargs),
            (rf"/hub/api/users/([^/]+)/{server}", Server, kwargs),
            (rf"/hub/api/users/([^/]+)/{server}/progress", Progress, kwargs),
            (r"/hub/metrics", Metrics, kwargs),
        ]
    )


def serve_fake_hub(hub: FakeHubState) -> tuple[HTTPServer, str]:
    """The fake hub listening on a free loopback port; (its server, its API URL)."""
    sock, port = bind_unused_port()
    server = HTTPServer(make_fake_hub(hub))
    server.add_sockets([sock])
    return server, f"http://127.0.0.1:{port}/hub/api"


def service_auth(auth_class: type, api_url: str, prefix: str) -> Any:
    """The dashboard's HubOAuth (or a subclass) against the fake hub; cache_max_age=0 keeps
    a token it asked about known for the whole test."""
    return auth_class(
        api_url=api_url,
        api_token=SERVICE_TOKEN,
        oauth_client_id="service-hubdash",
        base_url=prefix,
        hub_prefix="/hub/",
        access_scopes={"access:services!service=hubdash"},
        cache_max_age=0,
    )
