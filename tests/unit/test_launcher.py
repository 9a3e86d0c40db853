"""The in-job launcher: settings from a 0600 file, a connection file, then the server."""

import json
import os
import stat
import subprocess
import sys

import pytest


@pytest.fixture
def state_dir(tmp_path):
    state = tmp_path / "servers" / "default"
    state.mkdir(parents=True)
    (state / "env.json").write_text(
        json.dumps(
            {"JUPYTERHUB_API_TOKEN": "secret-token", "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/"}
        )
    )
    return state


def launch(state_dir, *command):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "hubdash.job.launcher",
            "--state-dir",
            str(state_dir),
            "--job-id",
            "42",
            "--",
            *command,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )


def test_connection_file_is_private_and_names_host_and_port(state_dir):
    result = launch(state_dir, "sh", "-c", 'echo "$JUPYTERHUB_SERVICE_URL"')
    assert result.returncode == 0, result.stderr
    info = json.loads((state_dir / "connection.json").read_text())
    assert info["job_id"] == "42" and info["port"] > 0 and info["host"]
    assert stat.S_IMODE((state_dir / "connection.json").stat().st_mode) == 0o600
    assert result.stdout.strip().endswith(f":{info['port']}/user/alice/")


def test_token_reaches_the_environment_not_the_command_line(state_dir):
    result = launch(
        state_dir, "sh", "-c", 'echo "token=$JUPYTERHUB_API_TOKEN"; cat /proc/$$/cmdline'
    )
    assert "token=secret-token" in result.stdout
    assert result.stdout.count("secret-token") == 1


def test_missing_settings_file_is_a_clear_error(tmp_path):
    result = launch(tmp_path, "true")
    assert result.returncode == 2
    assert "cannot read the server's settings" in result.stderr


HELD_PORT_CHECK = """
import os, socket, urllib.parse
port = urllib.parse.urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"]).port
other = socket.socket()
try:
    other.bind(("0.0.0.0", port))
    print("taken by another")
except OSError:
    print("held")
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", port))
server.listen()
client = socket.create_connection(("127.0.0.1", port), timeout=5)
server.accept()
second = socket.socket()
second.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    second.bind(("0.0.0.0", port))
    second.listen()
    print("second listener")
except OSError:
    print("listening alone")
"""


def test_the_servers_port_is_held_for_it_until_it_listens(state_dir):
    """Between the launcher's choice and the server's bind nobody else gets the port (a class
    starting at once lost a server to another job's connection), and the server, binding it
    as tornado does, listens there alone."""
    result = launch(state_dir, sys.executable, "-c", HELD_PORT_CHECK)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-3:] == ["held", "listening alone", ""], result.stdout
