"""The tests' JupyterHub on the test cluster: the demo's configuration plus the tests' own
(tests/e2e/hub_config.py), one per scheduler or with settings of a test's own, started and
stopped by the fixtures. Starting, stopping and the REST calls are the harness's."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from harness.hubclient import HubClient
from harness.hubprocess import launch_hub, stop_hub, stop_processes, wait_for_health
from hubdash.spawner.restartsettings import default_keeper_socket, hub_id_of_database

from ..conftest import JOB_PREFIX

VENV_BIN = Path(os.environ.get("HUBDASH_VENV", "/opt/hubdash/venv")) / "bin"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Hub(HubClient):
    scheduler: str
    port: int
    data_dir: Path
    log_path: Path
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    extra_config: str = ""  # Python config lines loaded after the demo's and the tests'
    env: dict[str, str] = field(default_factory=dict)  # more environment (HUBDASH_IDLE_...)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def hub_id(self) -> str:
        """The hub's identity in job names and folders: by default, of its database (the
        demo's, in data_dir), unless the test's extra config sets c.JobSpawner.hub_id."""
        return hub_id_of_database(f"sqlite:///{self.data_dir}/jupyterhub.sqlite")

    def folder(self, user: str, name: str = "") -> Path:
        """A server's folder on the cluster (the test cluster's homes are this machine's)."""
        from hubdash.spawner.serverkey import server_key

        return Path(f"/home/{user}/.hubdash/servers/{self.hub_id}/{server_key(name)}")

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
            **self.env,
        )
        if self.extra_config:
            extra = self.data_dir / "extra_config.py"
            extra.write_text(self.extra_config)
            env["HUBDASH_TEST_EXTRA_CONFIG"] = str(extra)
        argv = [str(VENV_BIN / "jupyterhub"), "-f", str(ROOT / "tests" / "e2e" / "hub_config.py")]
        self.process = launch_hub(argv, env, self.data_dir, self.log_path)
        wait_for_health(self.process, self.url, self.log_path, timeout=60)
        return self

    @property
    def keeper_socket(self) -> Path:
        """The forward keeper's socket, where the hub puts it by default."""
        db_url = f"sqlite:///{self.data_dir}/jupyterhub.sqlite"
        return Path(default_keeper_socket(db_url, self.hub_id))

    def terminate(self, sig: int = signal.SIGTERM) -> None:
        """Stop the hub and everything it started (proxy, services, forward keeper, also
        those a restart left running), ports freed on return."""
        stop_hub(self.process, sig)
        stop_processes([self.data_dir / "jupyterhub-proxy.pid", Path(f"{self.keeper_socket}.lock")])

    def restart(self, sig: int = signal.SIGTERM) -> Hub:
        """Stop the hub with `sig` (SIGTERM as systemd does, SIGKILL for a crash) and start
        it again on the same ports and database, as an admin's restart would: the proxy and
        the forward keeper stay, as they do for a hub under systemd with KillMode=process."""
        self.stop_for_restart(sig)
        return self.start()

    def stop_for_restart(self, sig: int = signal.SIGTERM) -> None:
        """The first half of restart(): the hub stopped, its proxy and forward keeper not."""
        stop_hub(self.process, sig, keep_sessions=True)
