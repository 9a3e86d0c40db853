"""PBS through the spawner's settings: pbs_flavor (and its other name 'openpbs') and
pbs_resource_spelling reach the adapter, engines default to pbs_tmrsh on PBS Pro, and the
job script previews with `#PBS` lines."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from traitlets import TraitError

from hubdash.spawner.engineplan import launcher_command, launcher_template, plan_layout

from .test_cluster_wiring import spawner_of

QUEUES = {"workq": {"max_walltime": "1:00:00", "max_nodes": 2, "max_engines": 8}}
TWO_NODES = {"queue": "workq", "walltime": "0:10:00", "nodes": 2, "engines": 4}


def preview(**settings) -> str:
    spawner = spawner_of("alice", scheduler="pbs", queues=QUEUES, **settings)
    spawner.orm_spawner = SimpleNamespace(name="", display_name="", server=None, state=None)
    return spawner.job_script(TWO_NODES)


def test_openpbs_is_pbspro_for_the_whole_hub():
    spawner = spawner_of("alice", scheduler="pbs", pbs_flavor="openpbs")
    assert spawner.pbs_flavor == "pbspro"
    assert spawner.cluster_config.adapter().flavor == "pbspro"
    spawner.check_config()


def test_resource_spelling_reaches_the_adapter_only_when_set():
    default = spawner_of("alice", scheduler="pbs", pbs_flavor="pbspro").cluster_config
    assert dict(default.scheduler_options) == {"flavor": "pbspro"}
    spelled = spawner_of(
        "alice", scheduler="pbs", pbs_flavor="pbspro", pbs_resource_spelling="nodes"
    ).cluster_config
    assert dict(spelled.scheduler_options) == {"flavor": "pbspro", "resource_spelling": "nodes"}
    assert spelled.adapter().node_spelling == "nodes"


def test_bad_pbs_settings_name_the_setting():
    with pytest.raises(TraitError, match="pbs_flavor"):
        spawner_of("alice", scheduler="pbs", pbs_flavor="pbs-pro")
    with pytest.raises(TraitError, match="pbs_resource_spelling"):
        spawner_of("alice", scheduler="pbs", pbs_resource_spelling="chunks")


def test_select_spelling_on_torque_stops_the_hub_with_the_reason():
    spawner = spawner_of(
        "alice", scheduler="pbs", pbs_flavor="torque", pbs_resource_spelling="select"
    )
    with pytest.raises(TraitError, match="resource spelling"):
        spawner.check_config()


def test_engines_on_pbspro_default_to_pbs_tmrsh_and_torque_keeps_pbsdsh():
    assert spawner_of("alice", scheduler="pbs", pbs_flavor="pbspro").engine_launcher == (
        "pbs_tmrsh"
    )
    assert spawner_of("alice", scheduler="pbs", pbs_flavor="torque").engine_launcher == "pbsdsh"
    assert spawner_of("alice", scheduler="pbs", pbs_flavor="slurm-torque").engine_launcher == (
        "srun"
    )
    argv = launcher_command(
        launcher_template("pbs_tmrsh"), plan_layout(4, 2, 8), "/opt/py/bin/python"
    )
    assert argv == [
        "/opt/py/bin/python", "-m", "hubdash.job.pbshosts", "spread",
        "--engines", "4", "--per-node", "2", "--",
    ]  # fmt: skip


def test_job_script_for_two_nodes_with_engines_selects_two_chunks():
    script = preview(pbs_flavor="pbspro")
    assert "#PBS -q workq\n" in script
    assert "#PBS -l select=2:ncpus=2:mpiprocs=2\n#PBS -l place=scatter\n" in script
    assert '"${PBS_JOBID:-unknown}"' in script
    assert "hubdash.job.pbshosts spread --engines 4 --per-node 2 --" in script


def test_job_script_in_torques_spelling_on_pbspro():
    script = preview(pbs_flavor="pbspro", pbs_resource_spelling="nodes")
    assert "#PBS -l nodes=2:ppn=2\n" in script
    assert "select=" not in script
