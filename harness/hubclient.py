"""Speaking to a test hub through its REST API with a service token: start, stop and inspect
users' servers, read their progress, wait for something to hold."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import requests

from harness.hubapi import wait_until


class HubClient:
    """The REST calls a test or a benchmark makes to a hub. A subclass gives `url` (the
    hub's public URL, the proxy's) and `token` (a service token with harness.hubapi's scopes).
    """

    url: str
    token: str
    # Seconds a REST call may take before it counts as failed.
    api_timeout: ClassVar[float] = 30
    # How `wait_for` polls, and what it raises when time is up: a failed check in a test.
    wait_step: ClassVar[float] = 0.3
    wait_error: ClassVar[type[Exception]] = AssertionError

    def api(
        self, method: str, path: str, timeout: float | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = {"Authorization": f"token {self.token}"}
        return requests.request(
            method,
            f"{self.url}/hub/api{path}",
            headers=headers,
            timeout=timeout or self.api_timeout,
            **kwargs,
        )

    @staticmethod
    def server_path(user: str, name: str = "") -> str:
        return f"/users/{user}/servers/{name}" if name else f"/users/{user}/server"

    def spawn(self, user: str, name: str = "", **options: Any) -> requests.Response:
        """Ask for a server with these user_options; the hub answers 201 or 202."""
        return self.api("POST", self.server_path(user, name), json={"user_options": options})

    def stop(self, user: str, name: str = "") -> requests.Response:
        return self.api("DELETE", self.server_path(user, name))

    def server(self, user: str, name: str = "") -> dict | None:
        """The server's model with its live spawner state, or None when it is not there."""
        return self.api("GET", f"/users/{user}").json().get("servers", {}).get(name)

    def servers(self) -> list[tuple[str, str, dict]]:
        """(user, server name, model) of every server the hub has."""
        return [
            (user["name"], name, model)
            for user in self.api("GET", "/users").json()
            for name, model in (user.get("servers") or {}).items()
        ]

    def wait_for(
        self, what: Callable[[], Any], timeout: float = 120, step: float | None = None
    ) -> Any:
        """Poll `what()` until it returns something true; return that (`wait_error` if not)."""
        return wait_until(what, timeout, step or self.wait_step, error=self.wait_error)

    def wait_ready(self, user: str, name: str = "", timeout: float = 120) -> dict:
        def ready() -> dict | None:
            server = self.server(user, name)
            return server if server and server.get("ready") else None

        return self.wait_for(ready, timeout)

    def progress(self, user: str, name: str = "", timeout: float = 120) -> Iterator[dict]:
        """The server's progress events as they arrive, up to `ready` or `failed`."""
        url = f"{self.url}/hub/api/users/{user}/servers/{name}/progress"
        headers = {"Authorization": f"token {self.token}"}
        with requests.get(url, headers=headers, stream=True, timeout=timeout) as response:
            response.raise_for_status()
            for line in response.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    event = json.loads(line[5:])
                    yield event
                    if event.get("ready") or event.get("failed"):
                        return

    def progress_events(self, user: str, name: str = "", timeout: float = 120) -> list[dict]:
        """The server's progress stream read to its end (ready or failed)."""
        return list(self.progress(user, name, timeout))

    def stop_all_servers(self, timeout: float = 60) -> list[tuple[str, str]]:
        """Stop every server through the API (so the spawner cancels its job) and wait for
        them to go; (user, name) of those still there after `timeout` seconds."""
        for user, name, _ in self.servers():
            self.stop(user, name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.servers():
            time.sleep(0.5)
        return [(user, name) for user, name, _ in self.servers()]
