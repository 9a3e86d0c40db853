"""What the hub and the batch job agree on: the server's folder, its files and their shapes.

Each server has a private folder on the cluster (0700, named relative to the user's home). The hub
writes some files there over SFTP as the user, the job writes the others, and each side reads
what the other wrote:

- `job.sh` (JOB_SCRIPT): the batch script; the hub writes it, the scheduler runs it.
- `job.log` (JOB_LOG): the job's output; the scheduler writes it, the hub shows its tail.
- `env.json` (ENV_FILE, 0600): the server's environment and token; hub to launcher.
- `connection.json` (CONNECTION_FILE, 0600): `ServerAddress`, where the server listens;
  launcher to hub.
- `hub-route.json` (ROUTE_FILE, 0600): `HubRoute`, where the hub forward listens on the login
  node; hub to the job's relay, rewritten when the forward moves.
- `engines.json` (ENGINES_FILE, 0600): `EngineReport`, engines up of requested; the engines'
  watcher to the hub.
- `certs/` (CERTS_DIR, CERT_FILES, each 0600): the server's internal-TLS key and
  certificates; hub to server.

The job runs as the user, so whatever it writes may be anything: the hub reads those files
only up to their caps, and checks what they say. Which job wrote a file (`job_id`) is compared
with the scheduler adapter's `same_job`, the one rule for "the same job id".

Pure standard library: both sides import it, and the job's side imports nothing else of
hubdash.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

# --- the server's folder -------------------------------------------------------------------

JOB_SCRIPT = "job.sh"
JOB_LOG = "job.log"  # its appearance tells the hub that the job has started
ENV_FILE = "env.json"  # the server's token lives here, never in a command line
CONNECTION_FILE = "connection.json"
ROUTE_FILE = "hub-route.json"
ENGINES_FILE = "engines.json"
CERTS_DIR = "certs"
# JupyterHub's move_certs keys, and the file names in CERTS_DIR.
CERT_FILES = {"keyfile": "server.key", "certfile": "server.crt", "cafile": "trusted-ca.crt"}

# The job's entry points, as the job script and the engine launchers run them (`python -m`).
LAUNCHER_MODULE = "hubdash.job.launcher"
ENGINES_MODULE = "hubdash.job.engines"
# Grid Engine's engine launcher: starts the engines on the hosts of $PE_HOSTFILE.
PE_HOSTS_MODULE = "hubdash.job.pehosts"
# PBS Pro's engine launcher: starts the engines on the hosts of $PBS_NODEFILE.
PBS_HOSTS_MODULE = "hubdash.job.pbshosts"

# Set in env.json when the server reaches the hub through the job's relay: the launcher
# starts the relay (hubdash.job.hubrelay) and takes the variable out of the server's env.
RELAY_ENV = "HUBDASH_HUB_RELAY"
# The hub's URLs the server calls: the hub points them at its forward on the login node,
# the launcher at the relay on the server's node.
HUB_URL_VARIABLES = ("JUPYTERHUB_API_URL", "JUPYTERHUB_ACTIVITY_URL")

# --- what is read of a file at most ---------------------------------------------------------

CONNECTION_FILE_LIMIT = 16 * 1024  # a host and a port: the hub reads no more
ENGINES_FILE_LIMIT = 16 * 1024  # a few counts: the hub reads no more
ROUTE_FILE_LIMIT = 4096  # a host and a port: the relay reads no more

ENGINE_STATES = ("starting", "running", "failed", "stopped")


def hub_urls_at(env: Mapping[str, str], netloc: str) -> dict[str, str]:
    """The hub's URLs in `env` pointed at `netloc`, scheme and path unchanged.

    >>> hub_urls_at({"JUPYTERHUB_API_URL": "https://hub:8081/hub/api"}, "127.0.0.1:7777")
    {'JUPYTERHUB_API_URL': 'https://127.0.0.1:7777/hub/api'}
    """
    moved = {}
    for name in HUB_URL_VARIABLES:
        if env.get(name):
            parts = urlsplit(env[name])
            moved[name] = urlunsplit(parts._replace(netloc=netloc))
    return moved


def _object(data: bytes | str, what: str) -> dict[str, Any]:
    """The JSON object in `data`; ValueError if it holds none."""
    raw = json.loads(data)
    if not isinstance(raw, dict):
        raise ValueError(f"{what} is not a JSON object")
    return raw


def encode_env(env: Mapping[str, str]) -> bytes:
    """env.json's content: the server's environment variables."""
    return json.dumps(dict(env)).encode()


def decode_env(data: bytes | str) -> dict[str, str]:
    """The variables in env.json; ValueError unless it holds names and their text values.

    >>> decode_env('{"JUPYTERHUB_API_TOKEN": "t"}')
    {'JUPYTERHUB_API_TOKEN': 't'}
    >>> decode_env('{"PORT": 8081}')
    Traceback (most recent call last):
    ...
    ValueError: the server's environment has PORT=8081, not text
    """
    env = _object(data, "the server's environment")
    for name, value in env.items():
        if not isinstance(value, str):
            raise ValueError(f"the server's environment has {name}={value!r:.40}, not text")
    return env


@dataclass(frozen=True)
class ServerAddress:
    """Where a job's server listens, as its launcher wrote it into the connection file.

    `host` and `port` are as the file has them, whatever their type: the hub checks them
    against the job's nodes and the unprivileged ports before it tunnels anywhere.
    """

    job_id: str
    host: Any
    port: Any
    pid: int = 0
    written: float = 0.0  # unix time

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def decode(cls, data: bytes | str) -> Self:
        """The connection file's record; ValueError if it names no host and port.

        >>> ServerAddress.decode('{"job_id": "7", "host": "cn1", "port": 4242}')
        ServerAddress(job_id='7', host='cn1', port=4242, pid=0, written=0.0)
        >>> ServerAddress.decode('{"job_id": "7", "host": "cn1"}')
        Traceback (most recent call last):
        ...
        ValueError: the connection file names no host and port
        """
        raw = _object(data, "the connection file")
        if "host" not in raw or "port" not in raw:
            raise ValueError("the connection file names no host and port")
        pid, written = raw.get("pid"), raw.get("written")
        return cls(
            job_id=str(raw.get("job_id", "")),
            host=raw["host"],
            port=raw["port"],
            pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else 0,
            written=float(written) if _is_number(written) else 0.0,
        )


@dataclass(frozen=True)
class HubRoute:
    """Where the hub forward listens on the login node, as the hub last wrote it."""

    host: str
    port: int

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def decode(cls, data: bytes | str) -> Self:
        """The route file's address; ValueError if it is not a usable host and port.

        >>> HubRoute.decode('{"host": "login1", "port": 4567}')
        HubRoute(host='login1', port=4567)
        >>> HubRoute.decode('{"host": "login1", "port": 0}')
        Traceback (most recent call last):
        ...
        ValueError: names no usable address: 'login1' port 0
        """
        try:
            raw = _object(data, "the route")
            host, port = str(raw["host"]), int(raw["port"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"holds no host and port: {exc}") from None
        if not host or not 0 < port < 65536:
            raise ValueError(f"names no usable address: {host!r} port {port}")
        return cls(host, port)


@dataclass(frozen=True)
class EngineReport:
    """A job's IPython-parallel engines, up of requested, as its watcher last wrote them."""

    requested: int
    up: int
    state: str  # one of ENGINE_STATES
    message: str = ""
    job_id: str = ""
    controller: str = ""  # where the controller listens: a host or an address
    updated: float = 0.0  # unix time

    def __post_init__(self) -> None:
        for key in ("requested", "up"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"engine status has {key}={value!r}, not a count")
        if self.state not in ENGINE_STATES:
            raise ValueError(f"engine status has state {self.state!r}, not one of {ENGINE_STATES}")

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def decode(cls, data: bytes | str) -> Self:
        """The engines file's report; ValueError if it is not one.

        >>> EngineReport.decode('{"job_id": "7", "requested": 4, "up": 2, "state": "starting"}')
        EngineReport(requested=4, up=2, state='starting', message='', job_id='7', ...)
        >>> EngineReport.decode('{"requested": 4, "up": 2, "state": "dancing"}')
        Traceback (most recent call last):
        ...
        ValueError: engine status has state 'dancing', not one of ('starting', 'running', ...)
        """
        raw = _object(data, "engine status")
        updated = raw.get("updated", 0.0)
        return cls(
            requested=raw.get("requested"),  # type: ignore[arg-type] (checked on creation)
            up=raw.get("up"),  # type: ignore[arg-type]
            state=raw.get("state"),  # type: ignore[arg-type]
            message=str(raw.get("message", "")),
            job_id=str(raw.get("job_id", "")),
            controller=str(raw.get("controller", "")),
            updated=float(updated) if _is_number(updated) else 0.0,
        )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
