"""Software environments: the admin's table, the user's choice, and the job-script lines that
enter one, run for real in bash against a stand-in `module` command."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from traitlets import TraitError
from traitlets.config import Config

from hubdash.dashboard.views import server_view
from hubdash.job.launcher import server_environment
from hubdash.spawner.environments import (
    Environment,
    EnvironmentConfigError,
    entry_lines,
    parse_environments,
)
from hubdash.spawner.extras import parse_extra_settings
from hubdash.spawner.formpage import render_options_form
from hubdash.spawner.jobspawner import JobSpawner
from hubdash.spawner.options import OptionsError, parse_queue_table, validate_options

from .test_formpage import Page, make_spawner

ENVIRONMENTS = {
    "base": {"description": "Python 3.11", "modules": ["pyenv/base"]},
    "science": {
        "description": "with tabulate",
        "modules": ["pyenv/science"],
        "prefix": "/opt/envs/science",
        "default": True,
    },
    "legacy": {"description": "old stack", "lines": ["export LEGACY=1"]},
}
TABLE = {
    "debug": {"max_walltime": "1:00:00", "max_nodes": 2, "max_engines": 8},
    "batch": {"max_walltime": "4:00:00", "environments": ["base", "legacy"]},
}
QUEUES = parse_queue_table(TABLE)
EXTRAS = parse_extra_settings([], environments=ENVIRONMENTS)


def check(data, extras=EXTRAS):
    return validate_options(data, QUEUES, "alice", (), extras)


def refusal(data, extras=EXTRAS) -> dict[str, str]:
    with pytest.raises(OptionsError) as caught:
        check(data, extras)
    return caught.value.errors


# --- the choice ---------------------------------------------------------------------------


def test_no_choice_takes_the_default_and_a_queue_without_it_takes_its_first():
    assert check({"queue": "debug"}).environment == "science"
    assert check({"queue": "batch"}).environment == "base"


def test_the_chosen_environment_is_kept_and_passes_the_validation_again():
    options = check({"queue": "debug", "environment": "legacy"})
    assert options.environment == "legacy"
    assert options.to_user_options()["environment"] == "legacy"
    assert check(options.to_user_options()) == options


def test_an_environment_the_queue_does_not_offer_is_refused_naming_those_it_does():
    errors = refusal({"queue": "batch", "environment": "science"})
    assert errors == {
        "environment": "environment 'science' is not offered in queue 'batch'; "
        "choose one of: base, legacy"
    }


def test_an_unknown_environment_is_refused_by_name():
    assert "'nope'" in refusal({"queue": "debug", "environment": "nope"})["environment"]


def test_without_environments_the_option_is_unknown_and_none_is_stored():
    plain = parse_extra_settings([])
    assert "environment" not in check({"queue": "debug"}, plain).to_user_options()
    errors = refusal({"queue": "debug", "environment": "base"}, plain)
    assert "unknown option(s) 'environment'" in errors["environment"]


# --- the admin's table --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ({"a b": {}}, "environments['a b']: an environment name may hold only"),
        ({"a": "python/3"}, "environments['a'] must be a dict"),
        ({"a": {"module": ["x"]}}, "environments['a'] has unknown key(s) ['module']"),
        ({"a": {"modules": "python/3"}}, "environments['a']['modules'] must be a list"),
        ({"a": {"modules": ["x; rm -rf ~"]}}, "'x; rm -rf ~' is not a module name"),
        ({"a": {"prefix": "/opt/my env"}}, "environments['a']['prefix'] must be a path"),
        ({"a": {"default": "yes"}}, "environments['a']['default'] must be bool"),
        ({"a": {"lines": ["ok\nrm -rf ~"]}}, "one shell line per entry"),
        ({"a": {"default": True}, "b": {"default": True}}, "a, b all say default: True"),
    ],
)
def test_a_bad_environment_table_names_the_entry(table, fragment):
    with pytest.raises(EnvironmentConfigError) as caught:
        parse_environments(table)
    assert fragment in str(caught.value)


def test_a_bad_table_is_a_trait_error_and_a_queue_naming_an_undeclared_one_fails_the_check():
    with pytest.raises(TraitError, match=r"environments\['a'\] has unknown key"):
        JobSpawner(config=Config(), environments={"a": {"modul": []}})
    spawner = JobSpawner(config=Config(), login_host="login.example.org")
    spawner.queues = {"debug": {"environments": ["gone"]}}
    spawner.environments = {"base": {}}
    with pytest.raises(TraitError) as caught:
        spawner.check_config()
    assert "JobSpawner.queues['debug']['environments'] names 'gone'" in str(caught.value)
    assert "declared: base" in str(caught.value)


def test_the_engines_run_the_environments_python():
    assert Environment("a", python="/sw/a/bin/python3").engine_python() == "/sw/a/bin/python3"
    assert Environment("a", prefix="/sw/a/").engine_python() == "/sw/a/bin/python"
    assert Environment("a", modules=("x",)).engine_python() == ""


# --- the job script's lines, run in bash --------------------------------------------------

FAKE_MODULE = """
module() {  # stands in for Lmod: loads only what $MODULES_OK lists, as Lmod fails otherwise
    case " $MODULES_OK " in
        *" $2 "*) echo "loaded $2" ;;
        *) echo "unknown module $2" >&2; return 1 ;;
    esac
}
"""


def run_entry(tmp_path: Path, env: Environment, modules_ok: str = "", server: str = "jhs"):
    """Run the lines that enter `env`, then print PATH; bash's result."""
    script = "\n".join([FAKE_MODULE, *entry_lines(env, "/nonexistent/init.sh", server)])
    script += '\necho "PATH=$PATH"\n'
    return subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "MODULES_OK": modules_ok, "HOME": str(tmp_path)},
        timeout=30,
    )


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_entering_an_environment_loads_its_modules_and_puts_its_prefix_first(tmp_path):
    executable(tmp_path / "env" / "bin" / "jhs")
    env = Environment("sci", modules=("gcc/12", "py/3.11"), prefix=str(tmp_path / "env"))
    done = run_entry(tmp_path, env, modules_ok="gcc/12 py/3.11")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:3] == ["hubdash: entering environment sci", "loaded gcc/12", "loaded py/3.11"]
    assert lines[-1] == f"PATH={tmp_path}/env/bin:/usr/bin:/bin"


def test_a_module_that_will_not_load_ends_the_job_naming_it(tmp_path):
    executable(tmp_path / "env" / "bin" / "jhs")
    env = Environment("sci", modules=("gcc/12", "py/9.9"), prefix=str(tmp_path / "env"))
    done = run_entry(tmp_path, env, modules_ok="gcc/12")
    assert done.returncode == 1
    assert "hubdash: environment sci: module py/9.9 could not be loaded" in done.stderr
    assert "PATH=" not in done.stdout  # nothing after the failure ran


def test_an_environment_without_the_server_command_ends_the_job_saying_so(tmp_path):
    done = run_entry(tmp_path, Environment("bare", lines=("export X=1",)), server="no-such-jhs")
    assert done.returncode == 1
    assert "hubdash: environment bare: it has no no-such-jhs on PATH: /usr/bin:/bin" in (
        done.stderr
    )


def test_a_missing_prefix_is_named_with_the_node(tmp_path):
    done = run_entry(tmp_path, Environment("gone", prefix=str(tmp_path / "missing")))
    assert done.returncode == 1
    assert f"its prefix {tmp_path}/missing is not a folder on {os.uname().nodename}" in done.stderr


def test_without_module_the_site_init_file_is_sourced_and_its_absence_named(tmp_path):
    lines = entry_lines(Environment("m", modules=("x",)), "/nonexistent/init.sh", "sh")
    done = subprocess.run(["bash", "-c", "\n".join(lines)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "cannot set up modules from /nonexistent/init.sh" in done.stderr


def test_module_names_and_paths_reach_the_script_as_plain_words():
    lines = entry_lines(Environment("q", modules=("py@3:11",), prefix="/sw/a+b"), "/i.sh", "x")
    assert "module load py@3:11 || " in "\n".join(lines)
    assert 'export PATH=/sw/a+b/bin:"$PATH"' in lines


# --- the spawner's job script, the form, the launcher, the dashboard ----------------------


def spawner_with_environments(**settings) -> JobSpawner:
    config = Config()
    config.JobSpawner.queues = TABLE
    config.JobSpawner.environments = ENVIRONMENTS
    for key, value in settings.items():
        config.JobSpawner[key] = value
    return JobSpawner(config=config, user=SimpleNamespace(name="alice", groups=[]))


def test_the_job_script_enters_the_chosen_environment_before_the_server_starts():
    spawner = spawner_with_environments(engine_launcher="srun")
    script = spawner.job_script({"queue": "debug", "environment": "science", "engines": "2"})
    entering = script.index("echo 'hubdash: entering environment science'")
    assert entering < script.index("module load pyenv/science") < script.index("exec ")
    assert "type module >/dev/null 2>&1 || . /etc/profile.d/lmod.sh" in script
    assert "--keep-path" in script
    assert "--engine-python /opt/envs/science/bin/python" in script
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_in_an_environment_the_server_command_is_found_by_name_on_its_path():
    spawner = spawner_with_environments(cmd=["/opt/hubdash/venv/bin/jupyterhub-singleuser"])
    script = spawner.job_script({"queue": "debug", "environment": "base"})
    assert "command -v jupyterhub-singleuser >/dev/null" in script
    assert script.rstrip().endswith("-- jupyterhub-singleuser")


def test_without_environments_the_launcher_puts_its_own_bin_first():
    config = Config()
    config.JobSpawner.queues = {"debug": TABLE["debug"]}
    spawner = JobSpawner(config=config, user=SimpleNamespace(name="alice", groups=[]))
    script = spawner.job_script({"queue": "debug"})
    assert "--keep-path" not in script and "module" not in script


def test_the_launcher_keeps_the_environments_path_when_told(monkeypatch):
    monkeypatch.setenv("PATH", "/sw/env/bin:/usr/bin")
    assert server_environment({}, 8888, keep_path=True)["PATH"] == "/sw/env/bin:/usr/bin"
    own = os.path.dirname(sys.executable)
    assert server_environment({}, 8888)["PATH"] == f"{own}:/sw/env/bin:/usr/bin"


def test_the_form_offers_each_queues_environments_with_the_default_selected():
    spawner = make_spawner(environments=ENVIRONMENTS)
    spawner.queues = {**spawner.queues, "batch": {**TABLE["batch"], "users": []}}
    page = Page(render_options_form(spawner))
    options = page.options["environment"]
    assert [o["value"] for o in options] == ["base", "science", "legacy"]
    assert [o["value"] for o in options if "selected" in o] == ["science"]
    assert "modules pyenv/science; /opt/envs/science" in page.text("environment-help")


def test_the_dashboard_shows_the_servers_environment():
    model = {"name": "", "user_options": {"queue": "debug", "environment": "science"}}
    assert server_view("alice", model)["environment"] == "science"
    assert server_view("alice", {"name": ""})["environment"] == ""


def test_each_cluster_offers_its_own_environments():
    config = Config()
    config.JobSpawner.login_host = "login.example.org"
    config.JobSpawner.queues = {"debug": {"max_walltime": "1:00:00"}}
    config.JobSpawner.environments = {"site": {"modules": ["python/3.11"]}}
    config.JobSpawner.clusters = {
        "cpu": {"title": "CPU", "login_host": "cpu.example.org"},
        "gpu": {
            "title": "GPU",
            "login_host": "gpu.example.org",
            "environments": {"cuda": {"modules": ["cuda/12"], "default": True}},
        },
    }
    spawner = JobSpawner(config=config, user=SimpleNamespace(name="alice", groups=[]))
    assert spawner.job_options({"cluster": "cpu", "queue": "debug"}).environment == "site"
    assert spawner.job_options({"cluster": "gpu", "queue": "debug"}).environment == "cuda"
    with pytest.raises(OptionsError, match="environment 'site' is not offered"):
        spawner.job_options({"cluster": "gpu", "queue": "debug", "environment": "site"})


# --- the exact words an admin and a user read -------------------------------------------------


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"a b": {}},
            "JobSpawner.environments['a b']: an environment name may hold only letters, digits "
            "and _ . + - (at most 64 characters)",
        ),
        (
            {"a": ["x"]},
            "JobSpawner.environments['a'] must be a dict (description, modules, prefix, python, "
            "lines, default), not list",
        ),
        (
            {"a": {"lines": ["ok", 1]}},
            "JobSpawner.environments['a']['lines'] must be a list of text",
        ),
        (
            {"a": {"modules": ["x y"]}},
            "JobSpawner.environments['a']['modules']: 'x y' is not a module name "
            "(letters, digits and _ . + / @ : = -)",
        ),
        (
            {"a": {"python": "/opt/my env/python"}},
            "JobSpawner.environments['a']['python'] must be a path of letters, digits and "
            "_ . / + - (not starting with '-'); got '/opt/my env/python'",
        ),
        (
            {"a": {"lines": ["ok\rrm -rf ~"]}},
            "JobSpawner.environments['a']['lines']: one shell line per entry",
        ),
    ],
)
def test_each_bad_entry_is_named_in_full(table, message):
    with pytest.raises(EnvironmentConfigError) as caught:
        parse_environments(table)
    assert str(caught.value) == message


def test_long_values_in_messages_are_cut_to_a_readable_length():
    with pytest.raises(EnvironmentConfigError) as caught:
        parse_environments({"a": {"description": "x" * 500}, "b": {"default": "y" * 500}})
    assert len(str(caught.value)) == 200
    with pytest.raises(EnvironmentConfigError) as caught:
        parse_environments({"a": {"prefix": "/" + "a b" * 200}})
    assert len(str(caught.value)) == 240


def test_a_queue_naming_undeclared_environments_lists_them_and_the_declared_ones():
    from hubdash.spawner.environments import check_queue_environments

    envs = parse_environments({"base": {}, "sci": {}})
    with pytest.raises(EnvironmentConfigError) as caught:
        check_queue_environments("gpu", ("base", "ml", "cuda"), envs)
    assert str(caught.value) == (
        "JobSpawner.queues['gpu']['environments'] names 'ml', 'cuda', which "
        "JobSpawner.environments does not declare; declared: base, sci"
    )
    with pytest.raises(EnvironmentConfigError) as caught:
        check_queue_environments("gpu", ("ml",), {})
    assert str(caught.value).endswith("declared: (none: JobSpawner.environments is empty)")


def test_the_choice_when_a_queue_offers_none_or_the_name_is_long():
    from hubdash.spawner.environments import (
        EnvironmentChoiceError,
        choose_environment,
        default_environment,
    )

    assert default_environment({}) == ""
    with pytest.raises(EnvironmentChoiceError) as caught:
        choose_environment("", "debug", {})
    assert str(caught.value) == "queue 'debug' offers no environment"
    with pytest.raises(EnvironmentChoiceError) as caught:
        choose_environment("e" * 41, "debug", {})
    assert str(caught.value) == (
        f"environment '{'e' * 40}…' is not offered in queue 'debug'; choose one of: (none)"
    )
    with pytest.raises(EnvironmentChoiceError) as caught:
        choose_environment("e" * 40, "debug", parse_environments({"a": {}, "b": {}}))
    assert str(caught.value) == (
        f"environment '{'e' * 40}' is not offered in queue 'debug'; choose one of: a, b"
    )


def test_what_the_form_says_of_an_environment():
    both = Environment("a", description="Python", modules=("gcc/12", "py/3"), prefix="/sw/a")
    assert both.summary() == "Python; modules gcc/12, py/3; /sw/a"
    assert Environment("b", modules=("py/3",)).summary() == "modules py/3"
    assert Environment("c").summary() == ""
    assert Environment("d", prefix="/sw/envX/").engine_python() == "/sw/envX/bin/python"


def test_the_lines_read_exactly_so_in_the_job_script():
    lines = entry_lines(
        Environment("sci", modules=("py/3",), prefix="/sw/sciX/", lines=("export A=1",)),
        "/etc/profile.d/lmod.sh",
        "jupyterhub-singleuser",
    )
    assert lines == [
        "echo 'hubdash: entering environment sci'",
        "type module >/dev/null 2>&1 || . /etc/profile.d/lmod.sh || { echo 'hubdash: "
        "environment sci: cannot set up modules from /etc/profile.d/lmod.sh' >&2; exit 1; }",
        "module load py/3 || { echo 'hubdash: environment sci: module py/3 could not be "
        "loaded' >&2; exit 1; }",
        "[ -d /sw/sciX ] || { echo 'hubdash: environment sci: its prefix /sw/sciX is not a "
        'folder on\' "$(hostname)" >&2; exit 1; }',
        'export PATH=/sw/sciX/bin:"$PATH"',
        "export A=1",
        "command -v jupyterhub-singleuser >/dev/null || { echo 'hubdash: environment sci: it "
        'has no jupyterhub-singleuser on PATH:\' "$PATH" >&2; exit 1; }',
    ]
    root = entry_lines(Environment("r", prefix="/"), "/i.sh", "x")
    assert "[ -d / ] || " in root[1] and root[2] == 'export PATH=//bin:"$PATH"'


def test_an_environment_that_is_no_text_is_refused_as_such():
    assert refusal({"queue": "debug", "environment": {"a": 1}}) == {
        "environment": "environment must be text or a number, not dict"
    }
