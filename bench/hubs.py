"""The two hubs the benchmarks compare, started side by side on the test cluster: hubdash (the
product venv, bench/hub_config.py) and batchspawner (its own bench-only venv, made here on first
use, bench/batchspawner_config.py). Servers are started and stopped through the REST API.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar

import requests

from bench.common import ROOT, VENV
from harness.hubclient import HubClient
from harness.hubprocess import launch_hub, stop_hub, wait_for_health

BENCH_VENV = Path(os.environ.get("HUBDASH_BENCH_VENV", "/opt/hubdash/bench-venv"))
BATCHSPAWNER = "batchspawner==1.3.0"
SAME_AS_PRODUCT = ("jupyterhub", "jupyter_server", "jupyterlab", "ipyparallel")
# The test clusters' login nodes (network namespace and hostname), where batchspawner's hub runs.
LOGIN_NODES = {"slurm": "login", "pbs": "pbs-login", "sge": "sge-login"}
KINDS = ("hubdash", "batchspawner")
# How far above hubdash's ports batchspawner's hub runs, so that both can run side by side
# (a hub takes its port and port+1, +50, +81: see start_hub).
BATCHSPAWNER_PORT_OFFSET = 200


def bench_requirements() -> list[str]:
    """batchspawner, and the product venv's own versions of what the single-user server
    loads: both hubs then start the same server (same extensions, same imports)."""
    pinned = [f"{name}=={version(name)}" for name in SAME_AS_PRODUCT]
    return [BATCHSPAWNER, *pinned]


def ensure_bench_venv() -> Path:
    """The bench-only venv (never the product's) with batchspawner from PyPI; world-readable,
    since jobs run its batchspawner-singleuser and jupyterhub-singleuser."""
    wanted = "\n".join(bench_requirements())
    marker = BENCH_VENV / "hdbench-requirements.txt"
    if marker.exists() and marker.read_text() == wanted:
        return BENCH_VENV
    print(f"preparing {BENCH_VENV}: {wanted.replace(chr(10), ' ')} ...", flush=True)
    if not (BENCH_VENV / "bin" / "python").exists():
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(BENCH_VENV)], check=True)
    pip = [str(BENCH_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, *wanted.split()], check=True)
    subprocess.run(["chmod", "-R", "a+rX", str(BENCH_VENV)], check=True)
    marker.write_text(wanted)
    return BENCH_VENV


@dataclass
class BenchHub(HubClient):
    """One hub of either kind, started by start_hub, with the REST calls the benchmarks make."""

    kind: str
    url: str  # the public URL (proxy)
    token: str
    log_path: Path
    job_prefix: str
    process: subprocess.Popen | None = None

    # A hub with 100 servers pending may take its time (hub_load.py).
    api_timeout: ClassVar[float] = 60
    wait_step: ClassVar[float] = 0.5
    wait_error: ClassVar[type[Exception]] = TimeoutError

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def terminate(self) -> None:
        """Stop the hub, its proxy and its services."""
        stop_hub(self.process)

    def spawn(self, user: str, name: str = "", **options: Any) -> requests.Response:
        """Ask for a server; RuntimeError when the hub refuses."""
        answer = super().spawn(user, name, **options)
        if answer.status_code not in (201, 202):
            raise RuntimeError(
                f"spawn of {user}/{name} refused: {answer.status_code} {answer.text}"
            )
        return answer

    def job_id(self, user: str, name: str = "") -> str:
        server = self.server(user, name) or {}
        state = server.get("state") or {}
        # hubdash keeps its job under "job"; batchspawner has job_id at the top level.
        return str((state.get("job") or state).get("job_id") or "")

    def ready_time(self, user: str, name: str = "", timeout: float = 300) -> float:
        """time.time() when the progress stream said `ready` (read from its start)."""
        for event in self.progress(user, name, timeout):
            if event.get("ready"):
                return time.time()
            if event.get("failed"):
                raise RuntimeError(f"spawn of {user}/{name} failed: {event}")
        raise RuntimeError(f"the progress stream of {user}/{name} ended without `ready`")

    def stop_all(self, timeout: float = 180) -> None:
        """Stop every server through the API (so the spawner cancels its job), and wait."""
        if left := self.stop_all_servers(timeout):
            print(f"  {self.kind}: {len(left)} server(s) not stopped within {timeout:g} s")

    def ensure_users(self, users: list[str]) -> None:
        for user in users:
            if self.api("GET", f"/users/{user}").status_code == 404:
                self.api("POST", f"/users/{user}")


def start_hub(
    kind: str,
    port: int,
    job_prefix: str,
    *,
    partition: str = "debug",
    tiny: bool = False,
    extra_config: str = "",
    log_dir: Path | None = None,
    scheduler: str = "slurm",
    users: Sequence[str] = (),
    env_extra: dict[str, str] | None = None,
) -> BenchHub:
    """Start a hub of this kind on port (and port+1, +50, +81); its data in a fresh folder.
    `scheduler` picks the test cluster (the demo's HUBDASH_SCHEDULER; batchspawner: slurm, pbs
    or sge, its hub on that cluster's login node);
    `users` are allowed in besides the five test users; `env_extra` (HUBDASH_BENCH_*
    variables) goes to the hub's environment."""
    if kind not in KINDS:
        raise ValueError(f"hub kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if kind == "batchspawner" and scheduler not in LOGIN_NODES:
        raise ValueError(f"the bench's batchspawner hub runs on {', '.join(LOGIN_NODES)} only")
    data_dir = Path(tempfile.mkdtemp(prefix=f"hdbench-{kind}-"))
    log_dir = log_dir or ROOT / "artifacts"
    log_dir.mkdir(exist_ok=True)
    token = secrets.token_hex(16)
    env = dict(
        os.environ,
        HUBDASH_ROOT=str(ROOT),
        HUBDASH_PORT=str(port),
        HUBDASH_PROXY_API_PORT=str(port + 1),
        HUBDASH_SERVICE_PORT=str(port + 50),
        HUBDASH_HUB_PORT=str(port + 81),
        HUBDASH_DATA_DIR=str(data_dir),
        HUBDASH_BENCH_TOKEN=token,
        HUBDASH_BENCH_JOB_PREFIX=job_prefix,
        HUBDASH_BENCH_PARTITION=partition,
        HUBDASH_SCHEDULER=scheduler,
        HUBDASH_BENCH_USERS=" ".join(users),
        **(env_extra or {}),
    )
    env.pop("HUBDASH_BENCH_TINY", None)
    if tiny:
        env["HUBDASH_BENCH_TINY"] = "1"
    if extra_config:
        extra = data_dir / "extra_config.py"
        extra.write_text(extra_config)
        env["HUBDASH_BENCH_EXTRA_CONFIG"] = str(extra)
    if kind == "hubdash":
        argv = [str(VENV / "bin" / "jupyterhub"), "-f", str(ROOT / "bench" / "hub_config.py")]
        url = f"http://127.0.0.1:{port}"
    else:
        venv = ensure_bench_venv()
        env["HUBDASH_BENCH_VENV"] = str(venv)
        env["PATH"] = f"{venv}/bin:{env.get('PATH', '/usr/bin:/bin')}"
        login = LOGIN_NODES[scheduler]
        address = socket.gethostbyname(login)  # the test bed's /etc/hosts
        env["HUBDASH_BENCH_LOGIN_HOST"] = address
        config = str(ROOT / "bench" / "batchspawner_config.py")
        netns = f"--net=/var/run/netns/{login}"
        argv = ["nsenter", netns, str(venv / "bin" / "jupyterhub"), "-f", config]
        url = f"http://{address}:{port}"
    log_path = log_dir / f"bench-hub-{kind}-{port}.log"
    hub = BenchHub(kind, url, token, log_path, job_prefix)
    hub.process = launch_hub(argv, env, data_dir, log_path)
    try:
        wait_for_health(hub.process, url, log_path, timeout=90)
    except BaseException:
        hub.terminate()  # a hub that did not come up must not hold its ports
        raise
    print(f"{kind} hub on {url} (log {log_path})", flush=True)
    return hub


def add_hub_arguments(parser: argparse.ArgumentParser, kinds: Sequence[str] = KINDS) -> None:
    """The options of a benchmark that compares hubs: --kinds (by default `kinds`) and --port."""
    parser.add_argument(
        "--kinds", default=",".join(kinds), help="hubs to measure: hubdash and/or batchspawner"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=13100,
        help=f"hubdash's port; batchspawner +{BATCHSPAWNER_PORT_OFFSET}",
    )


def hubs_to_measure(args: argparse.Namespace) -> list[tuple[str, int]]:
    """(kind, port) of every hub the options of add_hub_arguments ask for, in their order."""
    return [
        (kind, args.port if kind == "hubdash" else args.port + BATCHSPAWNER_PORT_OFFSET)
        for kind in args.kinds.split(",")
    ]
