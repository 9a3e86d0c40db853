"""Grid Engine through the spawner's settings: the sge_* settings reach the adapter, engines
default to `qrsh -inherit`, and the job script previews with `#$` lines."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from traitlets import TraitError

from hubdash.schedulers.sge import GridEngineAdapter
from hubdash.spawner.engineplan import launcher_command, launcher_template, plan_layout

from .test_cluster_wiring import spawner_of

QUEUES = {"all.q": {"max_walltime": "1:00:00", "max_nodes": 2, "max_engines": 8}}


def test_sge_settings_reach_the_adapter_as_scheduler_options():
    spawner = spawner_of(
        "alice", scheduler="sge", sge_parallel_environment="orte", sge_slots_per_node=4
    )
    config = spawner.cluster_config
    assert config.scheduler == "sge"
    assert dict(config.scheduler_options) == {"parallel_environment": "orte", "slots_per_node": "4"}
    adapter = config.adapter()
    assert isinstance(adapter, GridEngineAdapter)
    assert (adapter.parallel_environment, adapter.slots_per_node) == ("orte", 4)
    spawner.check_config()


def test_defaults_suit_a_round_robin_parallel_environment_named_mpi():
    adapter = spawner_of("alice", scheduler="sge").cluster_config.adapter()
    assert (adapter.parallel_environment, adapter.slots_per_node) == ("mpi", 0)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("sge_parallel_environment", "-pe"),
        ("sge_parallel_environment", "mpi 2"),
        ("sge_parallel_environment", "mpi;id"),
        ("sge_slots_per_node", -1),
        ("scheduler", "lsf"),
    ],
)
def test_bad_sge_settings_name_the_setting(setting, value):
    with pytest.raises(TraitError, match=setting):
        spawner_of("alice", **{"scheduler": "sge", setting: value})


def test_engines_on_grid_engine_default_to_qrsh_inherit():
    spawner = spawner_of("alice", scheduler="sge")
    assert spawner.engine_launcher == "qrsh"
    argv = launcher_command(launcher_template("qrsh"), plan_layout(4, 2, 8), "/opt/py/bin/python")
    assert argv == [
        "/opt/py/bin/python",
        "-m",
        "hubdash.job.pehosts",
        "spread",
        "--engines",
        "4",
        "--per-node",
        "2",
        "--",
    ]
    assert "ssh" not in argv


def test_job_script_preview_for_two_nodes_with_engines():
    spawner = spawner_of("alice", scheduler="sge", queues=QUEUES)
    spawner.orm_spawner = SimpleNamespace(name="", display_name="", server=None, state=None)
    script = spawner.job_script({"queue": "all.q", "walltime": "0:10:00", "nodes": 2, "engines": 4})
    assert "#$ -q all.q\n" in script
    assert "#$ -l h_rt=0:10:00\n" in script
    assert "#$ -pe mpi 4\n" in script  # 2 nodes x 2 engines a node
    assert '"${JOB_ID:-unknown}"' in script
    assert "hubdash.job.pehosts spread --engines 4 --per-node 2 --" in script
