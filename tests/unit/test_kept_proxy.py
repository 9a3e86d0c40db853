"""KeptProxy keeps the proxy the last hub left only when it is that proxy: the pid file's
process, a configurable-http-proxy, listening where this hub's proxy is to listen; and the
token that lets the next hub talk to it stays the same across restarts."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from traitlets.config import Config

from hubdash.spawner import hubsetup
from hubdash.spawner.jobspawner import JobSpawner
from hubdash.spawner.keptproxy import KeptProxy, command_line_of, read_or_make_token


@pytest.fixture
def left_process():
    """A process whose command line reads like the proxy a hub started (it only sleeps)."""
    started = []

    def start(*argv: str) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *argv])
        started.append(process)
        # As a proxy the last hub left would be: running its own program already.
        for _ in range(200):
            if "time.sleep(60)" in " ".join(command_line_of(process.pid)):
                break
            time.sleep(0.01)
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def proxy(tmp_path, pid: int | None, **settings) -> KeptProxy:
    pid_file = tmp_path / "jupyterhub-proxy.pid"
    if pid is not None:
        pid_file.write_text(f"{pid}\n")
    config = Config()
    config.KeptProxy.pid_file = str(pid_file)
    config.KeptProxy.api_url = "http://127.0.0.1:8001"
    for name, value in settings.items():
        setattr(config.KeptProxy, name, value)
    # The hub gives its proxy the public URL (not a setting of the proxy's).
    return KeptProxy(config=config, public_url="http://127.0.0.1:8000")


PROXY_ARGS = (
    "configurable-http-proxy",
    "--ip",
    "127.0.0.1",
    "--port",
    "8000",
    "--api-ip",
    "127.0.0.1",
    "--api-port",
    "8001",
)


def test_the_proxy_the_last_hub_left_is_found(tmp_path, left_process):
    process = left_process(*PROXY_ARGS)
    assert proxy(tmp_path, process.pid)._left_proxy_pid() == process.pid


def test_a_proxy_listening_elsewhere_is_not_kept(tmp_path, left_process):
    process = left_process(*PROXY_ARGS[:4], "8080", *PROXY_ARGS[5:])
    assert proxy(tmp_path, process.pid)._left_proxy_pid() is None


def test_another_program_under_the_pid_is_not_kept(tmp_path, left_process):
    process = left_process("--ip", "127.0.0.1", "--port", "8000")
    assert proxy(tmp_path, process.pid)._left_proxy_pid() is None


def test_no_pid_file_a_dead_pid_or_a_garbled_one_means_a_new_proxy(tmp_path):
    assert proxy(tmp_path, None)._left_proxy_pid() is None
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert proxy(tmp_path, dead.pid)._left_proxy_pid() is None
    (tmp_path / "jupyterhub-proxy.pid").write_text("not a pid")
    assert proxy(tmp_path, None)._left_proxy_pid() is None


def test_the_proxy_token_stays_the_same_across_hub_restarts(tmp_path, monkeypatch):
    monkeypatch.delenv("CONFIGPROXY_AUTH_TOKEN", raising=False)
    first = proxy(tmp_path, None).auth_token
    token_file = tmp_path / "jupyterhub-proxy.token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert len(first) == 64
    assert proxy(tmp_path, None).auth_token == first  # the next hub's
    monkeypatch.setenv("CONFIGPROXY_AUTH_TOKEN", "from-the-environment")
    assert proxy(tmp_path, None).auth_token == "from-the-environment"
    monkeypatch.delenv("CONFIGPROXY_AUTH_TOKEN")
    elsewhere = tmp_path / "token"
    assert proxy(tmp_path, None, auth_token_file=str(elsewhere)).auth_token != first
    assert read_or_make_token(elsewhere) == elsewhere.read_text().strip()


def test_setup_hub_keeps_the_proxy_across_restarts_unless_the_admin_chose_one():
    c = Config()
    c.JupyterHub.spawner_class = JobSpawner
    c.JobSpawner.login_host = "login.example.org"
    hubsetup.setup_hub(c)
    assert c.JupyterHub.proxy_class is KeptProxy
    assert c.JupyterHub.cleanup_proxy is False
    own = Config()
    own.JupyterHub.proxy_class = "traefik"
    hubsetup.setup_hub(own)
    assert own.JupyterHub.proxy_class == "traefik"
    assert "cleanup_proxy" not in own.JupyterHub
    stopping = Config()
    stopping.JupyterHub.cleanup_proxy = True
    hubsetup.setup_hub(stopping)
    assert stopping.JupyterHub.proxy_class is KeptProxy
    assert stopping.JupyterHub.cleanup_proxy is True  # the admin's word stands
