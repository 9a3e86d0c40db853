"""A real JupyterHub process on the test cluster, started and stopped by the tests."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from ..conftest import JOB_PREFIX

VENV_BIN = Path(os.environ.get("HUBDASH_VENV", "/opt/hubdash/venv")) / "bin"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Hub:
    scheduler: str
    port: int
    data_dir: Path
    log_path: Path
    token: str = field(default_factory=lambda: secrets.token_hex(16))
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
            HUBDASH_DATA_DIR=str(self.data_dir),
            HUBDASH_TEST_TOKEN=self.token,
            HUBDASH_JOB_PREFIX=JOB_PREFIX,
        )
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

    def stop_all_servers(self) -> None:
        """Stop every server through the API, so the spawner cancels its jobs."""
        for user in self.api("GET", "/users").json():
            for name in user.get("servers", {}):
                path = (
                    f"/users/{user['name']}/servers/{name}"
                    if name
                    else f"/users/{user['name']}/server"
                )
                self.api("DELETE", path)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            users = self.api("GET", "/users").json()
            if not any(u.get("servers") for u in users):
                return
            time.sleep(0.5)

    def terminate(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
