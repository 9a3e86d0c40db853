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
