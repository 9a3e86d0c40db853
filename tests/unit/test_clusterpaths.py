"""remote_python: an interpreter named as one plain word, or the hub refuses to start, naming
the setting (hubdash/spawner/clusterpaths.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from traitlets import TraitError, Unicode
from traitlets.config import Config, Configurable

from hubdash.spawner.clusterpaths import check_remote_python, validate_remote_python
from hubdash.spawner.jobspawner import JobSpawner
from hubdash.spawner.options import ConfigError

from ..hostile import payloads

GOOD = [
    "python3",
    "/opt/hubdash/venv/bin/python",
    "venv/bin/python",  # from the user's home, where the job script starts
    "./venv/bin/python",
    "/apps/Python/3.11.3-GCCcore-12.3.0/bin/python3.11",
    "/opt/conda+envs/x_y/bin/python",
]
BAD = [
    "",
    " ",
    "/opt/my env/bin/python",
    "python3 -I",
    "-c",
    "~/venv/bin/python",  # quoted in the script, ~ would not be the home folder
    "/opt/py\n/bin/python",
    "py'thon",
    'py"thon',
    "/opt/é/bin/python",
    "python3\t",
    *payloads("/tmp/hubdash-pwned-unit"),
]


@pytest.mark.parametrize("value", GOOD)
def test_an_interpreter_named_as_one_plain_word_is_taken(value):
    assert check_remote_python(value) == value


@pytest.mark.parametrize("value", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_spaces_and_shell_characters_are_refused_naming_the_setting_and_the_value(value):
    with pytest.raises(ConfigError) as caught:
        check_remote_python(value)
    message = str(caught.value)
    assert message.startswith("JobSpawner.remote_python must be the interpreter's path")
    assert "e.g. '/opt/hubdash/venv/bin/python'" in message
    assert message.endswith(f"got {value!r}") or message.endswith("...")
    assert "\n" not in message and len(message) < 300


@pytest.mark.parametrize("value", [None, 3, ["/usr/bin/python3"]])
def test_a_value_that_is_not_text_is_refused(value):
    with pytest.raises(ConfigError, match="JobSpawner.remote_python must be"):
        check_remote_python(value)


def test_the_error_names_the_setting_it_is_given_and_cuts_a_long_value():
    with pytest.raises(ConfigError) as caught:
        check_remote_python("x y" * 100, "JobSpawner.clusters['gpu']['remote_python']")
    message = str(caught.value)
    assert message.startswith("JobSpawner.clusters['gpu']['remote_python'] must be")
    assert message.endswith("...") and len(message) < 300


class Settings(Configurable):
    """A stand-in for JobSpawnerSettings, wired as its class body would be."""

    remote_python = Unicode("python3").tag(config=True)
    _validate_remote_python = validate_remote_python


def test_the_traitlets_check_refuses_a_bad_value_from_the_config_naming_the_setting():
    config = Config()
    config.Settings.remote_python = "/opt/my env/bin/python"
    with pytest.raises(TraitError, match="JobSpawner.remote_python must be"):
        Settings(config=config)
    settings = Settings()
    settings.remote_python = "/opt/hubdash/venv/bin/python"
    assert settings.remote_python == "/opt/hubdash/venv/bin/python"


# --- on JobSpawner, once settings.py wires it --------------------------------------------------


def _wired() -> bool:
    return "remote_python" in JobSpawner(config=Config())._trait_validators


wired = pytest.mark.skipif(
    not _wired(),
    reason="JobSpawnerSettings (hubdash/spawner/settings.py) does not check remote_python "
    "yet: it needs `_validate_remote_python = validate_remote_python` from clusterpaths.py",
)


def spawner(**settings) -> JobSpawner:
    config = Config()
    config.JobSpawner.login_host = "login.example.org"
    config.JobSpawner.queues = {"debug": {"max_walltime": "1:00:00"}}
    for name, value in settings.items():
        setattr(config.JobSpawner, name, value)
    user = SimpleNamespace(name="alice", groups=[], url="/user/alice/", escaped_name="alice")
    return JobSpawner(config=config, user=user)


@wired
@pytest.mark.parametrize("value", ["/opt/my env/bin/python", "python3; id", "$(id)"])
def test_the_hub_refuses_to_start_with_a_remote_python_a_shell_would_split(value):
    with pytest.raises(TraitError, match=r"JobSpawner.remote_python must be .* got"):
        spawner(remote_python=value)


@wired
def test_a_clusters_own_remote_python_is_checked_naming_the_cluster():
    clusters = {"gpu": {"login_host": "gpu.example.org", "remote_python": "/opt/a b/python"}}
    with pytest.raises(TraitError) as stopped:
        spawner(clusters=clusters).check_config()
    assert "clusters['gpu']" in str(stopped.value)
    assert "remote_python must be" in str(stopped.value)


@wired
def test_the_default_and_a_plain_path_start():
    assert spawner().remote_python == "python3"
    assert spawner(remote_python="/opt/hubdash/venv/bin/python").remote_python.endswith("python")
