"""`python -m hubdash.spawner.render`: the admin's preview of a job script from the hub config."""

from __future__ import annotations

import textwrap

import pytest

from hubdash.spawner import render as render_module
from hubdash.transport import ssh as ssh_module

CONFIG = textwrap.dedent(
    """
    c = get_config()
    c.JupyterHub.spawner_class = "hubdash"
    c.JobSpawner.scheduler = "slurm"
    c.JobSpawner.login_host = "login.example.org"
    c.JobSpawner.remote_python = "/opt/hubdash/venv/bin/python"
    c.JobSpawner.job_prologue = ["module load python/3.11"]
    c.Spawner.cmd = ["/opt/hubdash/venv/bin/jupyterhub-singleuser"]
    c.JobSpawner.queues = {
        "debug": {"max_walltime": "1:00:00", "default_walltime": "0:30:00", "max_nodes": 2},
        "gpu": {"max_walltime": "4:00:00", "groups": ["gpu-users"]},
    }
    """
)


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "jupyterhub_config.py"
    path.write_text(CONFIG)
    return path


@pytest.fixture(autouse=True)
def no_ssh(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("rendering must not open an SSH connection")

    monkeypatch.setattr(ssh_module.SSHTransport, "__init__", refuse)


def test_prints_the_script_for_the_user_and_options(config_file, capsys):
    status = render_module.main(
        ["--config", str(config_file), "--user", "alice", "queue=debug", "walltime=45", "nodes=2"]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert out.startswith("#!/bin/bash\n")
    for line in (
        "#SBATCH --job-name=jupyterhub-hub-alice-default",
        "#SBATCH --partition=debug",
        "#SBATCH --time=0:45:00",
        "#SBATCH --nodes=2",
        "module load python/3.11",
        "exec /opt/hubdash/venv/bin/python -m hubdash.job.launcher \\",
    ):
        assert line in out.splitlines()


def test_named_server_and_defaults_are_those_the_hub_would_use(config_file, capsys):
    render_module.main(["-f", str(config_file), "-u", "bob", "--server", "analysis"])
    out = capsys.readouterr().out
    assert "#SBATCH --job-name=jupyterhub-hub-bob-analysis" in out
    assert "#SBATCH --time=0:30:00" in out  # the first queue's default walltime
    assert "--state-dir .hubdash/servers/hub/analysis" in out


def test_same_validation_as_the_form(config_file, capsys):
    status = render_module.main(
        ["--config", str(config_file), "--user", "alice", "queue=debug", "walltime=3:00:00"]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert "walltime: queue 'debug' allows at most 1:00:00" in err


def test_group_restricted_queue_follows_the_users_groups(config_file, capsys):
    args = ["--config", str(config_file), "--user", "carol", "queue=gpu"]
    assert render_module.main(args) == 2
    assert "you may not submit to queue 'gpu'" in capsys.readouterr().err
    assert render_module.main([*args, "--group", "gpu-users"]) == 0
    assert "#SBATCH --partition=gpu" in capsys.readouterr().out


def test_hostile_option_never_reaches_the_script(config_file, capsys):
    status = render_module.main(
        ["--config", str(config_file), "--user", "alice", "queue=debug;touch /tmp/x"]
    )
    assert status == 2
    assert "there is no queue" in capsys.readouterr().err


def test_config_loading_follows_load_subconfig(tmp_path, config_file, capsys):
    site = tmp_path / "site_config.py"
    site.write_text(
        'c = get_config()\nload_subconfig("jupyterhub_config.py")\n'
        'c.JobSpawner.scheduler = "pbs"\nc.JobSpawner.pbs_flavor = "torque"\n'
    )
    assert render_module.main(["--config", str(site), "--user", "alice"]) == 0
    out = capsys.readouterr().out
    assert "#PBS -q debug" in out and "#SBATCH" not in out


def test_bad_arguments_and_missing_file_are_named(config_file, capsys):
    assert render_module.main(["--config", str(config_file), "--user", "a", "queue"]) == 2
    assert "name=value" in capsys.readouterr().err
    assert render_module.main(["--config", "/nonexistent/jhub.py", "--user", "a"]) == 2
    assert "no config file /nonexistent/jhub.py" in capsys.readouterr().err


def test_help_names_the_program_and_each_argument(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit) as done:
        render_module.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m hubdash.spawner.render ")
    assert "Print the job script the hub would submit. Connects to nothing." in out.splitlines()
    for text in (
        "--config CONFIG, -f CONFIG the hub's jupyterhub_config.py",
        "--user USER, -u USER the hub user's name",
        "--server SERVER a named server's name (default: none)",
        "--group GROUP a group of the user (repeatable)",
        "options spawn options as name=value",
    ):
        assert text in " ".join(out.split())


@pytest.mark.parametrize("missing", ["--config", "--user"])
def test_config_file_and_user_are_required(config_file, capsys, missing):
    given = {"--config": str(config_file), "--user": "alice"}
    del given[missing]
    with pytest.raises(SystemExit) as done:
        render_module.main([word for pair in given.items() for word in pair])
    assert done.value.code == 2
    assert f"the following arguments are required: {missing}" in capsys.readouterr().err


def test_an_option_is_split_at_its_first_equals_sign(config_file, capsys):
    args = ["--config", str(config_file), "--user", "alice", "queue=debug=gpu"]
    assert render_module.main(args) == 2
    assert "queue: there is no queue 'debug=gpu'" in capsys.readouterr().err


def test_render_without_a_server_name_is_the_default_server(config_file):
    script = render_module.render(render_module.load_config(str(config_file)), "alice", {})
    assert "#SBATCH --job-name=jupyterhub-hub-alice-default" in script.splitlines()
