"""The job side of the engines: the per-server IPython folder, the slot filter, the status file,
and a real controller with real engines on this machine, started and stopped with the server."""

import json
import os
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from hubdash.job import engines
from hubdash.job.contract import ENGINES_FILE

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def user_ipython(tmp_path):
    real = tmp_path / "home" / ".ipython"
    (real / "profile_default" / "startup").mkdir(parents=True)
    (real / "profile_default" / "startup" / "00-user.py").write_text("X = 1\n")
    (real / "profile_default" / "ipython_config.py").write_text("# the user's\n")
    (real / "profile_default" / "security").mkdir()
    (real / "profile_default" / "security" / "ipcontroller-client.json").write_text("{}")
    (real / "profile_other").mkdir()
    return real


def test_server_ipython_folder_keeps_the_users_config_and_has_its_own_security(
    tmp_path, user_ipython
):
    overlay = engines.build_ipython_dir(tmp_path / "state" / "ipython", user_ipython)
    profile = overlay / "profile_default"
    assert (profile / "startup" / "00-user.py").read_text() == "X = 1\n"
    assert (profile / "ipython_config.py").read_text() == "# the user's\n"
    assert (overlay / "profile_other").resolve() == (user_ipython / "profile_other").resolve()
    security = engines.security_dir(overlay)
    assert not security.is_symlink() and list(security.iterdir()) == []
    assert stat.S_IMODE(security.stat().st_mode) == 0o700


def test_files_ipython_creates_later_land_in_the_users_own_profile(tmp_path):
    real = tmp_path / "fresh" / ".ipython"  # a user who never ran IPython
    overlay = engines.build_ipython_dir(tmp_path / "state" / "ipython", real)
    (overlay / "profile_default" / "ipython_kernel_config.py").write_text("# new\n")
    assert (real / "profile_default" / "ipython_kernel_config.py").read_text() == "# new\n"
    assert (real / "profile_default" / "startup").is_dir()


def test_rebuilding_drops_the_last_jobs_connection_files_and_nothing_of_the_user(
    tmp_path, user_ipython
):
    place = tmp_path / "state" / "ipython"
    first = engines.build_ipython_dir(place, user_ipython)
    (engines.security_dir(first) / "ipcontroller-client.json").write_text('{"old": 1}')
    second = engines.build_ipython_dir(place, user_ipython)
    assert list(engines.security_dir(second).iterdir()) == []
    assert (user_ipython / "profile_default" / "startup" / "00-user.py").exists()
    assert (user_ipython / "profile_default" / "security" / "ipcontroller-client.json").exists()


def test_prepare_writes_a_private_starting_status_and_an_absolute_ipythondir(
    tmp_path, user_ipython, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    state = Path("state")
    state.mkdir()
    extra = engines.prepare(state, "7", 4, {"IPYTHONDIR": str(user_ipython)})
    assert Path(extra["IPYTHONDIR"]).is_absolute()
    written = json.loads((state / ENGINES_FILE).read_text())
    assert (written["job_id"], written["requested"], written["up"], written["state"]) == (
        "7",
        4,
        0,
        "starting",
    )
    assert stat.S_IMODE((state / ENGINES_FILE).stat().st_mode) == 0o600


def test_unknown_state_is_never_written(tmp_path):
    with pytest.raises(ValueError, match="not one of"):
        engines.write_status(tmp_path, "7", 4, 0, "almost")


def slot(index, first=2):
    env = {k: v for k, v in os.environ.items() if k != "PBS_VNODENUM"}
    if index is not None:
        env["PBS_VNODENUM"] = str(index)
    return subprocess.run(
        [sys.executable, "-m", "hubdash.job.engines", "slot", "--first", str(first), "--"]
        + ["echo", "engine"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=30,
    )


def test_slot_filter_runs_the_engine_in_the_first_slots_only():
    assert [slot(i).stdout.strip() for i in range(4)] == ["engine", "engine", "", ""]
    assert {slot(i).returncode for i in range(4)} == {0}


def test_slot_filter_outside_pbsdsh_says_so():
    result = slot(None)
    assert result.returncode == 2 and "PBS_VNODENUM" in result.stderr


def marked_processes(mark: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if mark.encode() in (proc / "environ").read_bytes():
                    found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
    return found


def launch(state: Path, engines_count: int, launcher: str, server: list[str], mark: str):
    return subprocess.run(
        [sys.executable, "-m", "hubdash.job.launcher", "--state-dir", str(state), "--job-id", "7"]
        + ["--engines", str(engines_count), "--engine-launcher", launcher, "--", *server],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "HUBDASH_TEST_MARK": mark},
    )


@pytest.fixture
def state(tmp_path):
    state = tmp_path / "servers" / "default"
    state.mkdir(parents=True)
    (state / "env.json").write_text(
        json.dumps({"JUPYTERHUB_API_TOKEN": "t", "IPYTHONDIR": str(tmp_path / "ipython")})
    )
    return state


# The server stand-in: what a notebook does, then it exits like a server that was shut down.
NOTEBOOK = """
import ipyparallel, json, sys, time
client = ipyparallel.Client()  # no arguments: found through the server's IPYTHONDIR
client.wait_for_engines(2, timeout=120)
print("IDS", len(client.ids), "SUM", sum(client[:].apply_sync(lambda: 21)), flush=True)
client.close()
for _ in range(600):  # until the watcher has reported them (what the hub reads)
    status = json.load(open(sys.argv[1]))
    if status["state"] != "starting":
        break
    time.sleep(0.2)
print("STATUS", status["state"], status["up"], flush=True)
"""


def test_engines_start_beside_the_server_and_stop_when_it_exits(state):
    mark = f"hubdash-test-{uuid.uuid4().hex}"
    # Two engines, started on this machine by a shell standing in for srun.
    launcher = 'sh -c \'"$@" & "$@" & wait\' sh'
    status_file = str(state / ENGINES_FILE)
    result = launch(state, 2, launcher, [sys.executable, "-c", NOTEBOOK, status_file], mark)
    assert "IDS 2 SUM 42" in result.stdout, result.stdout + result.stderr
    assert "STATUS running 2" in result.stdout, result.stdout + result.stderr
    # The server is gone: its watcher stops the controller and the engines, then itself.
    deadline = time.monotonic() + 60
    while marked_processes(mark) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marked_processes(mark) == []
    final = json.loads((state / ENGINES_FILE).read_text())
    assert (final["requested"], final["up"], final["state"]) == (2, 2, "stopped")


def test_server_starts_even_when_its_engines_cannot(state):
    mark = f"hubdash-test-{uuid.uuid4().hex}"
    result = launch(state, 2, "", ["sh", "-c", "echo server runs"], mark)
    assert result.stdout.strip().endswith("server runs")
    assert "parallel engines cannot start" in result.stderr
    written = json.loads((state / ENGINES_FILE).read_text())
    assert written["state"] == "failed" and "no engine launcher" in written["message"]
