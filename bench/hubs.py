"""The two hubs the benchmarks compare, started side by side on the test cluster: hubdash (the
product venv, bench/hub_config.py) and batchspawner (its own bench-only venv, made here on first
use, bench/batchspawner_config.py). Servers are started and stopped through the REST API.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import requests
from common import LOGIN_HOST, ROOT, VENV, HubProcess

# Polling a hub is shared with the e2e tests and lives with them (tests/e2e/hubapi.py, which
# imports nothing of bench/): the checkout root on sys.path makes `tests` importable here.
sys.path.insert(0, str(ROOT))
from tests.e2e.hubapi import wait_until  # noqa: E402

BENCH_VENV = Path(os.environ.get("HUBDASH_BENCH_VENV", "/opt/hubdash/bench-venv"))
BATCHSPAWNER = "batchspawner==1.3.0"
SAME_AS_PRODUCT = ("jupyterhub", "jupyter_server", "jupyterlab", "ipyparallel")
LOGIN_NETNS = "/var/run/netns/login"
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
class BenchHub:
    """One hub of either kind, with the REST calls the benchmarks make."""

    kind: str
    process: HubProcess
    job_prefix: str

    @property
    def url(self) -> str:
        return self.process.url

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.process.api(method, path, **kwargs)

    @staticmethod
    def server_path(user: str, name: str = "") -> str:
        return f"/users/{user}/servers/{name}" if name else f"/users/{user}/server"

    def spawn(self, user: str, name: str = "", **options: str) -> requests.Response:
        body = {"user_options": options}
        answer = self.api("POST", self.server_path(user, name), json=body)
        if answer.status_code not in (201, 202):
            raise RuntimeError(
                f"spawn of {user}/{name} refused: {answer.status_code} {answer.text}"
            )
        return answer

    def stop(self, user: str, name: str = "") -> requests.Response:
        return self.api("DELETE", self.server_path(user, name))

    def server(self, user: str, name: str = "") -> dict | None:
        """The server's model with its live spawner state, or None when there is none."""
        return self.api("GET", f"/users/{user}").json().get("servers", {}).get(name)

    def job_id(self, user: str, name: str = "") -> str:
        server = self.server(user, name) or {}
        state = server.get("state") or {}
        return str(state.get("job_id") or "")

    def ready_time(self, user: str, name: str = "", timeout: float = 300) -> float:
        """time.time() when the progress stream said `ready` (read from its start)."""
        url = f"{self.url}/hub/api/users/{user}/servers/{name}/progress"
        headers = {"Authorization": f"token {self.process.token}"}
        with requests.get(url, headers=headers, stream=True, timeout=timeout) as response:
            response.raise_for_status()
            for line in response.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    event = json.loads(line[5:])
                    if event.get("ready"):
                        return time.time()
                    if event.get("failed"):
                        raise RuntimeError(f"spawn of {user}/{name} failed: {event}")
        raise RuntimeError(f"the progress stream of {user}/{name} ended without `ready`")

    def servers(self) -> list[tuple[str, str, dict]]:
        """(user, server name, model) of every server the hub has."""
        return [
            (user["name"], name, model)
            for user in self.api("GET", "/users").json()
            for name, model in (user.get("servers") or {}).items()
        ]

    def stop_all(self, timeout: float = 180) -> None:
        """Stop every server through the API (so the spawner cancels its job), and wait."""
        for user, name, _ in self.servers():
            self.stop(user, name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.servers():
            time.sleep(0.5)
        if left := self.servers():
            print(f"  {self.kind}: {len(left)} server(s) not stopped within {timeout:g} s")

    def ensure_users(self, users: list[str]) -> None:
        for user in users:
            if self.api("GET", f"/users/{user}").status_code == 404:
                self.api("POST", f"/users/{user}")

    def wait_for(self, what: Callable[[], Any], timeout: float, step: float = 0.5) -> Any:
        """Poll `what()` until it returns something true; return that (TimeoutError if not)."""
        return wait_until(what, timeout, step)


def start_hub(
    kind: str,
    port: int,
    job_prefix: str,
    *,
    partition: str = "debug",
    tiny: bool = False,
    extra_config: str = "",
    log_dir: Path | None = None,
) -> BenchHub:
    """Start a hub of this kind on port (and port+1, +50, +81); its data in a fresh folder."""
    if kind not in KINDS:
        raise ValueError(f"hub kind must be one of {', '.join(KINDS)}, not {kind!r}")
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
        HUBDASH_SCHEDULER="slurm",
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
        config = str(ROOT / "bench" / "batchspawner_config.py")
        argv = ["nsenter", f"--net={LOGIN_NETNS}", str(venv / "bin" / "jupyterhub"), "-f", config]
        url = f"http://{LOGIN_HOST}:{port}"
    log_path = log_dir / f"bench-hub-{kind}-{port}.log"
    process = HubProcess(argv, env, url, token, log_path, data_dir).start()
    print(f"{kind} hub on {url} (log {log_path})", flush=True)
    return BenchHub(kind, process, job_prefix)


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
