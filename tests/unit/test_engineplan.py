"""Engine placement and the launcher command: packing arithmetic, admin templates, quoting."""

import shlex
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubdash.schedulers import adapter_for
from hubdash.schedulers.base import JobRequest
from hubdash.spawner.engineplan import (
    LAUNCHER_PRESETS,
    EngineLayout,
    LauncherError,
    launcher_command,
    launcher_template,
    plan_layout,
)
from hubdash.spawner.jobscript import JobScript, render_job_script


@pytest.mark.parametrize(
    ("engines", "nodes", "max_per_node", "expected"),
    [
        (4, 2, 8, EngineLayout(4, 2, 2)),  # both nodes get engines, not 4 + 0
        (128, 8, 16, EngineLayout(128, 8, 16)),  # the workflow this came from
        (3, 2, 8, EngineLayout(3, 2, 2)),  # 2 + 1
        (1, 2, 8, EngineLayout(1, 1, 1)),  # one engine needs one node
        (5, 4, 8, EngineLayout(5, 3, 2)),  # 2 + 2 + 1: ceil(5/4) per node leaves one idle
        (16, 2, 8, EngineLayout(16, 2, 8)),  # full
        (0, 2, 8, EngineLayout(0, 0, 0)),  # nothing of ipyparallel at all
    ],
)
def test_engines_are_spread_evenly_over_the_jobs_nodes(engines, nodes, max_per_node, expected):
    assert plan_layout(engines, nodes, max_per_node) == expected


def test_more_engines_than_the_nodes_can_hold_are_refused_with_the_nodes_needed():
    with pytest.raises(ValueError, match="17 engines need 3 nodes at 8 per node; the job has 2"):
        plan_layout(17, 2, 8)


@pytest.mark.parametrize(
    ("engines", "nodes", "max_per_node"),
    [(-1, 1, 8), (True, 1, 8), (2, 0, 8), (2, 1, 0), ("4", 2, 8)],
)
def test_layout_refuses_counts_that_are_not_whole_numbers_in_range(engines, nodes, max_per_node):
    with pytest.raises(ValueError, match="must be a whole number"):
        plan_layout(engines, nodes, max_per_node)


@given(
    engines=st.integers(min_value=1, max_value=4096),
    nodes=st.integers(min_value=1, max_value=256),
    max_per_node=st.integers(min_value=1, max_value=128),
)
def test_every_layout_fits_its_job_and_leaves_no_used_node_empty(engines, nodes, max_per_node):
    try:
        layout = plan_layout(engines, nodes, max_per_node)
    except ValueError:
        assert engines > nodes * max_per_node
        return
    assert layout.per_node <= max_per_node
    assert layout.nodes <= nodes
    assert layout.nodes * layout.per_node >= engines  # room for all
    assert (layout.nodes - 1) * layout.per_node < engines  # the last node used runs one at least


def test_srun_preset_asks_for_one_task_per_engine_packed_per_node():
    command = launcher_command(launcher_template("srun"), plan_layout(4, 2, 8), "python3")
    assert command[:4] == ["srun", "--nodes=2", "--ntasks=4", "--ntasks-per-node=2"]
    assert "--overlap" in command


def test_pbsdsh_preset_filters_slots_through_the_engines_module():
    command = launcher_command(
        launcher_template("pbsdsh"), plan_layout(6, 2, 4), "/opt/py/bin/python"
    )
    assert command == [
        "pbsdsh",
        "--",
        "/opt/py/bin/python",
        "-m",
        "hubdash.job.engines",
        "slot",
        "--first",
        "6",
        "--",
    ]


def test_admin_template_fills_placeholders_inside_words():
    template = launcher_template(["mpiexec", "-n", "{engines}", "--map-by", "ppr:{per_node}:node"])
    assert launcher_command(template, plan_layout(10, 4, 8), "python3") == [
        "mpiexec",
        "-n",
        "10",
        "--map-by",
        "ppr:3:node",
    ]


def test_python_path_with_spaces_stays_one_word():
    template = launcher_template(["env", "{python}"])
    assert launcher_command(template, plan_layout(1, 1, 1), "/opt/my env/bin/python") == [
        "env",
        "/opt/my env/bin/python",
    ]


@pytest.mark.parametrize(
    ("setting", "fragment"),
    [
        ("slurm", "choose one of srun, mpiexec, pbsdsh"),
        ([], "non-empty list"),
        (["srun", ""], "non-empty list"),
        (["mpiexec", "-n", "{count}"], "unknown placeholder {count}"),
        (["mpiexec", "-n", "{}"], "unknown placeholder {}"),
        (["mpiexec", "-n", "{engines.real}"], "unknown placeholder {engines.real}"),
        (["mpiexec", "-n", "{engines"], "cannot read"),
    ],
)
def test_bad_launcher_setting_names_the_setting(setting, fragment):
    with pytest.raises(LauncherError) as caught:
        launcher_template(setting)
    assert str(caught.value).startswith("JobSpawner.engine_launcher")
    assert fragment in str(caught.value)


def test_every_preset_is_a_valid_template():
    for name in LAUNCHER_PRESETS:
        assert launcher_template(name) == LAUNCHER_PRESETS[name]


def _render(engines: int, launcher: list[str]) -> str:
    request = JobRequest(job_name="jupyterhub-alice-default", queue="debug", walltime_seconds=600)
    job = JobScript(
        username="alice",
        server_name="",
        state_dir=".hubdash/servers/default",
        python="/opt/hubdash/venv/bin/python",
        command=["jupyterhub-singleuser"],
        engines=engines,
        engine_launcher=tuple(launcher),
    )
    return render_job_script(adapter_for("slurm"), request, job)


def _launch_words(script: str) -> list[str]:
    return shlex.split(script[script.index("exec ") :].replace("\\\n", " "))


def test_launcher_reaches_the_job_as_one_argument_that_splits_back_exactly():
    launcher = ["pbsdsh", "--", "/opt/my env/bin/python", "$(touch /tmp/pwned)", "`id`", "a'b"]
    script = _render(4, launcher)
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    words = _launch_words(script)
    assert words[words.index("--engines") + 1] == "4"
    assert shlex.split(words[words.index("--engine-launcher") + 1]) == launcher


def test_script_without_engines_mentions_none():
    script = _render(0, [])
    assert "--engines" not in script and "--engine-launcher" not in script
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_engines_without_a_launcher_are_a_bug_caught_before_submission():
    with pytest.raises(ValueError, match="no engine launcher"):
        _render(2, [])
