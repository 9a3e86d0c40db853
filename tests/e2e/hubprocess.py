"""A real JupyterHub process on the test cluster, started and stopped by the tests."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from ..conftest import JOB_PREFIX
from .hubapi import wait_until

VENV_BIN = Path(os.environ.get("HUBDASH_VENV", "/opt/hubdash/venv")) / "bin"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Hub:
    scheduler: str
    port: int
    data_dir: Path
    log_path: Path
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    extra_config: str = ""  # Python config lines loaded after the demo's and the tests'
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"token {self.token}"}
        return requests.request(
            method, f"{self.url}/hub/api{path}", headers=headers, timeout=30, **kwargs
        )

    def start(self) -> Hub:
        env = dict(
            os.environ,
            HUBDASH_ROOT=str(ROOT),
            HUBDASH_SCHEDULER=self.scheduler,
            HUBDASH_PORT=str(self.port),
            HUBDASH_PROXY_API_PORT=str(self.port + 1),
            HUBDASH_HUB_PORT=str(self.port + 81),
            HUBDASH_SERVICE_PORT=str(self.port + 50),  # the dashboard service
            HUBDASH_DATA_DIR=str(self.data_dir),
            HUBDASH_TEST_TOKEN=self.token,
            HUBDASH_JOB_PREFIX=JOB_PREFIX,
        )
        if self.extra_config:
            extra = self.data_dir / "extra_config.py"
            extra.write_text(self.extra_config)
            env["HUBDASH_TEST_EXTRA_CONFIG"] = str(extra)
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            [str(VENV_BIN / "jupyterhub"), "-f", str(ROOT / "tests" / "e2e" / "hub_config.py")],
            cwd=self.data_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the hub exited at start; see {self.log_path}")
            try:
                if requests.get(f"{self.url}/hub/health", timeout=2).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the hub did not answer within 60 s; see {self.log_path}")

    # --- servers through the REST API -----------------------------------------------------

    @staticmethod
    def server_path(user: str, name: str = "") -> str:
        return f"/users/{user}/servers/{name}" if name else f"/users/{user}/server"

    def spawn(self, user: str, name: str = "", **options) -> requests.Response:
        """Ask for a server with these user_options; the hub answers 201 or 202."""
        return self.api("POST", self.server_path(user, name), json={"user_options": options})

    def stop(self, user: str, name: str = "") -> requests.Response:
        return self.api("DELETE", self.server_path(user, name))

    def server(self, user: str, name: str = "") -> dict | None:
        """The server's model with its live spawner state, or None when it is not there."""
        return self.api("GET", f"/users/{user}").json().get("servers", {}).get(name)

    def wait_for(self, what: Callable[[], Any], timeout: float = 120, step: float = 0.3) -> Any:
        """Poll `what()` until it returns something true; return that (a failed check if not)."""
        return wait_until(what, timeout, step, error=AssertionError)

    def wait_ready(self, user: str, name: str = "", timeout: float = 120) -> dict:
        def ready():
            server = self.server(user, name)
            return server if server and server.get("ready") else None

        return self.wait_for(ready, timeout)

    def progress_events(self, user: str, name: str = "", timeout: float = 120) -> list[dict]:
        """The server's progress stream read to its end (ready or failed)."""
        url = f"{self.url}/hub/api/users/{user}/servers/{name}/progress"
        events = []
        with requests.get(
            url, headers={"Authorization": f"token {self.token}"}, stream=True, timeout=timeout
        ) as response:
            response.raise_for_status()
            for line in response.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    event = json.loads(line[5:])
                    events.append(event)
                    if event.get("ready") or event.get("failed"):
                        break
        return events

    def stop_all_servers(self) -> None:
        """Stop every server through the API, so the spawner cancels its jobs."""
        for user in self.api("GET", "/users").json():
            for name in user.get("servers", {}):
                self.stop(user["name"], name)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            users = self.api("GET", "/users").json()
            if not any(u.get("servers") for u in users):
                return
            time.sleep(0.5)

    def terminate(self, sig: int = signal.SIGTERM) -> None:
        """Stop the hub and everything it started (proxy, services), ports freed on return."""
        if self.process is None:
            return
        group = self.process.pid
        # Managed services run in process groups of their own: find them while the hub
        # is still their parent.
        groups = {group, *_child_groups(group)}
        if self.process.poll() is None:
            os.killpg(group, sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(group, signal.SIGKILL)
                self.process.wait(timeout=10)
        # The proxy and managed services may outlive the hub by a little: a next hub on
        # the same ports must not find them there.
        for other in groups - {group}:
            if _group_alive(other):
                os.killpg(other, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while any(_group_alive(g) for g in groups):
            if time.monotonic() > deadline:
                for g in groups:
                    if _group_alive(g):
                        os.killpg(g, signal.SIGKILL)
                deadline = time.monotonic() + 10
            time.sleep(0.1)


def _child_groups(pid: int) -> set[int]:
    """Process groups of the direct children of `pid`."""
    groups = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # fields: state, ppid, pgrp, ...
            groups.add(int(fields[2]))
    return groups


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
