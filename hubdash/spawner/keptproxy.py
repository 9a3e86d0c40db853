"""KeptProxy: JupyterHub's configurable-http-proxy, kept by a restarted hub instead of replaced,
so that open notebooks keep their connections while the hub restarts.

JupyterHub stops the proxy it started at shutdown (unless cleanup_proxy is False) and, at
start, stops one it finds by its pid file; either way every browser connection breaks, and
JupyterLab then waits 10-30 s before it tries the kernel again. KeptProxy finds the proxy
the last hub left (pid file, command line, API answering this hub's token) and keeps it;
JupyterHub then brings its routes up to date as it does for an external proxy. With the
notebook forwards in the forward keeper (JobSpawner.forward_keeper), a restart is unseen by
an open notebook. setup_hub() makes it the hub's proxy and keeps the token across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from pathlib import Path

from jupyterhub.objects import Server
from jupyterhub.proxy import ConfigurableHTTPProxy
from tornado.ioloop import PeriodicCallback
from traitlets import Unicode, default

PROBE_TIMEOUT = 5.0  # seconds the kept proxy's API has to answer
PROXY_COMMAND = "configurable-http-proxy"


class _KeptProcess:
    """The Popen-like handle JupyterHub's proxy code needs, for a process it did not start."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self.returncode = -1  # not our child: its exit code is not ours to read
        return self.returncode

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, 15)


def read_or_make_token(path: Path) -> str:
    """The token in `path`, or a new one written there (0600) when it has none."""
    with contextlib.suppress(FileNotFoundError):
        token = path.read_text().strip()
        if token:
            return token
    token = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(token + "\n")
    return token


def _listen_args(url: str, ip_flag: str, port_flag: str) -> list[str] | None:
    """The proxy command's arguments for listening at `url`; None for a Unix socket."""
    server = Server.from_url(url)
    if server._unix_socket:
        return None
    return [ip_flag, server.ip, port_flag, str(server.port)]


def command_line_of(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()[: 64 * 1024]
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _contains(argv: list[str], args: list[str]) -> bool:
    return any(argv[i : i + len(args)] == args for i in range(len(argv)))


class KeptProxy(ConfigurableHTTPProxy):
    """A ConfigurableHTTPProxy that a restarting hub leaves running and the next one keeps."""

    auth_token_file = Unicode(
        "",
        config=True,
        help="""Where the proxy's API token is kept across hub restarts (made 0600 when
        missing), so that the next hub can talk to the proxy the last one left running.
        Empty: the pid file's path with '.token' in place of '.pid'. Unused when
        CONFIGPROXY_AUTH_TOKEN or ConfigurableHTTPProxy.auth_token is set.""",
    )

    @default("auth_token")
    def _kept_auth_token(self) -> str:
        token = os.environ.get("CONFIGPROXY_AUTH_TOKEN", "")
        if token or not self.should_start:
            return token
        return read_or_make_token(self._token_path())

    def _token_path(self) -> Path:
        if self.auth_token_file:
            return Path(self.auth_token_file)
        pid_file = Path(self.pid_file or "jupyterhub-proxy.pid")
        return pid_file.with_name(pid_file.stem + ".token")

    def _left_proxy_pid(self) -> int | None:
        """The pid in the pid file, if that process is a proxy listening where this one is
        to listen; None otherwise (JupyterHub's own start then deals with it)."""
        if not self.pid_file:
            return None
        try:
            pid = int(Path(self.pid_file).read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        argv = command_line_of(pid)
        public = _listen_args(self.public_url, "--ip", "--port")
        api = _listen_args(self.api_url, "--api-ip", "--api-port")
        if public is None or api is None or not any(PROXY_COMMAND in part for part in argv):
            return None
        if not (_contains(argv, public) and _contains(argv, api)):
            self.log.warning(
                "The proxy at pid %d listens elsewhere than configured: replacing it", pid
            )
            return None
        return pid

    async def _answers(self) -> bool:
        """Whether the proxy's API takes this hub's token (and, with internal TLS, its
        certificate): a proxy that does not is not kept."""
        from jupyterhub.httpclient import fetch

        url = self.api_url.rstrip("/") + "/api/routes"
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                response = await fetch(
                    url,
                    headers={"Authorization": f"token {self.auth_token}"},
                    raise_for_status=False,
                )
                status = response.status
                response.release()
        except Exception as exc:  # any failure means: start a new proxy
            self.log.warning("The proxy left running does not answer at %s: %s", url, exc)
            return False
        if status != 200:
            self.log.warning("The proxy left running answers %d at %s: replacing it", status, url)
        return status == 200

    async def start(self) -> None:
        pid = self._left_proxy_pid()
        if pid is None or not await self._answers():
            await super().start()
            return
        self.log.info(
            "Keeping the proxy at pid %d that the last hub left: open notebooks keep their "
            "connections",
            pid,
        )
        self.proxy_process = _KeptProcess(pid)
        callback = PeriodicCallback(self.check_running, 1e3 * self.check_running_interval)
        self._check_running_callback = callback
        callback.start()
