"""Several clusters from one hub: the `clusters` table, the user's choice, the settings of the
chosen cluster on the spawner, and what a server saves about its cluster."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from traitlets import TraitError
from traitlets.config import Config

from hubdash.serverstate import ClusterRef, read_server_state
from hubdash.spawner.clusterchoice import ClusterRefused
from hubdash.spawner.formoptions import check_user_options
from hubdash.spawner.jobspawner import JobSpawner
from hubdash.spawner.options import OptionsError

QUEUES = {"debug": {"max_walltime": "1:00:00", "max_nodes": 2}}
CLUSTERS = {
    "slurm": {"title": "Slurm test cluster", "login_host": "10.213.0.2"},
    "pbs": {
        "title": "OpenPBS test cluster",
        "login_host": "10.214.0.2",
        "scheduler": "pbs",
        "pbs_flavor": "pbspro",
        "queues": {"workq": {"max_walltime": "24:00:00"}},
        "queue_timeout": 600,
    },
    "gpu": {"title": "GPU cluster", "login_host": "10.9.0.2", "groups": ["gpu-users"]},
}


def user(name: str = "alice", groups: tuple[str, ...] = ()) -> SimpleNamespace:
    return SimpleNamespace(
        name=name, url=f"/user/{name}/", escaped_name=name,
        groups=[SimpleNamespace(name=g) for g in groups],
    )  # fmt: skip


def spawner(clusters: dict | None = None, who: SimpleNamespace | None = None) -> JobSpawner:
    config = Config()
    config.JobSpawner.login_host = "login.example.org"
    config.JobSpawner.queues = QUEUES
    config.JobSpawner.clusters = CLUSTERS if clusters is None else clusters
    config.JobSpawner.scheduler_precheck = False  # no scheduler here to ask
    return JobSpawner(config=config, user=who or user())


def test_a_hub_without_clusters_is_one_cluster_named_after_its_login_node():
    one = spawner(clusters={})
    assert list(one.cluster_choices) == ["login.example.org"]
    assert one.cluster_config.name == "login.example.org"
    assert one.cluster_config.login.host == "login.example.org"
    assert "cluster" not in asyncio.run(
        one.options_from_form({"queue": ["debug"], "walltime": ["30"]})
    )


def test_each_cluster_takes_its_own_settings_and_the_spawner_wide_ones_for_the_rest():
    s = spawner()
    s.use_cluster("pbs")
    assert (s.scheduler, s.pbs_flavor, s.login_host) == ("pbs", "pbspro", "10.214.0.2")
    assert list(s.queue_table) == ["workq"] and s.queue_timeout == 600
    assert s.cluster_config.name == "pbs" and s.cluster_config.title == "OpenPBS test cluster"
    # Back to another: nothing of the PBS cluster stays behind.
    s.use_cluster("slurm")
    assert (s.scheduler, s.login_host, list(s.queue_table)) == ("slurm", "10.213.0.2", ["debug"])
    assert s.queue_timeout == JobSpawner(config=Config()).queue_timeout
    assert s.start_timeout == s.queue_timeout + s.startup_timeout + int(s.engines_timeout) + 120


def test_only_the_groups_named_may_use_a_cluster():
    assert [c.name for c in spawner().allowed_clusters()] == ["slurm", "pbs"]
    member = spawner(who=user("bob", ("gpu-users",)))
    assert [c.name for c in member.allowed_clusters()] == ["slurm", "pbs", "gpu"]


def test_the_options_name_the_cluster_and_are_checked_against_its_queues():
    s = spawner()
    options = asyncio.run(
        s.options_from_form({"cluster": ["pbs"], "queue": ["workq"], "walltime": ["600"]})
    )
    assert options["cluster"] == "pbs" and s.chosen_cluster == "pbs"
    with pytest.raises(OptionsError, match="queue"):
        s.job_options({"cluster": "slurm", "queue": "workq"})  # a PBS queue asked of Slurm
    assert s.job_options({"queue": "debug"}).queue == "debug"  # none named: the first allowed
    assert s.chosen_cluster == "slurm"


def test_a_cluster_that_is_not_configured_or_not_open_to_the_user_is_refused_by_name():
    s = spawner()
    with pytest.raises(OptionsError, match="there is no cluster 'cray'") as unknown:
        s.job_options({"cluster": "cray", "queue": "debug"})
    assert not isinstance(unknown.value, ClusterRefused)
    with pytest.raises(ClusterRefused, match="you may not use cluster 'gpu'"):
        s.job_options({"cluster": "gpu", "queue": "debug"})
    # On the REST API: 403, naming the cluster.
    with pytest.raises(Exception) as refused:
        asyncio.run(check_user_options(s, {"cluster": "gpu", "queue": "debug"}))
    assert refused.value.status_code == 403
    assert refused.value.jupyterhub_message == (
        "Invalid options: cluster: you may not use cluster 'gpu'; choose one of: slurm, pbs"
    )
    assert str(refused.value) == f"HTTP 403: Forbidden ({refused.value.jupyterhub_message})"


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        ({"login_port": "twenty-two"}, "clusters['bad']"),
        ({"scheduler": "lsf"}, "clusters['bad']"),
        ({"queues": {"q": {"max_walltime": "forever"}}}, "clusters['bad']"),
        ({"nodes": 3}, "unknown key 'nodes'"),
        ({"job_name_prefix": "x"}, "unknown key 'job_name_prefix'"),
        ({"groups": "staff"}, "['groups']"),
        ({"title": 7}, "['title']"),
    ],
)
def test_a_bad_cluster_entry_stops_the_hub_naming_the_cluster_and_the_key(entry, named):
    s = spawner(clusters={"good": {"login_host": "a.example.org"}, "bad": entry})
    with pytest.raises(TraitError) as stopped:
        s.check_config()
    assert named in str(stopped.value)


def test_every_good_cluster_passes_the_start_check():
    spawner().check_config()


def test_a_server_saves_its_cluster_and_a_restarted_hub_puts_it_back():
    s = spawner()
    s.job_options({"cluster": "pbs", "queue": "workq"})
    saved = s.get_state()
    ref = read_server_state(saved).cluster
    assert (ref.name, ref.title, ref.login_host, ref.scheduler) == (
        "pbs", "OpenPBS test cluster", "10.214.0.2", "pbs",
    )  # fmt: skip
    assert ref.scheduler_options == {"flavor": "pbspro"}
    again = spawner()
    again.load_state(saved)
    assert again.chosen_cluster == "pbs" and again.scheduler == "pbs"


def test_a_server_of_a_cluster_since_removed_is_reached_as_saved(caplog):
    ref = ClusterRef(
        "old", "Old cluster", "10.99.0.2", 2222, "pbs", {"flavor": "torque"}, "/opt/pbs/bin"
    )
    s = spawner()
    s.load_state({"version": 2, "cluster": vars(ref) | {"scheduler_options": {"flavor": "torque"}}})
    assert (
        "alice ran on cluster 'old', which is no longer configured: it is reached as saved"
        in caplog.messages
    )
    assert s.removed_cluster is not None and s.chosen_cluster == "old"
    assert (s.login_host, s.login_port, s.scheduler, s.pbs_flavor) == (
        "10.99.0.2", 2222, "pbs", "torque",
    )  # fmt: skip
    assert s.cluster_config.bin_dir == "/opt/pbs/bin" and s.cluster_title == "Old cluster"
    assert read_server_state(s.get_state()).cluster.name == "old"  # still saved as it was
    # Starting it again is refused: the cluster is not configured any more.
    with pytest.raises(OptionsError, match="there is no cluster 'old'"):
        s.job_options({"cluster": "old", "queue": "workq"})


def test_a_state_saved_before_clusters_existed_gets_the_first_cluster():
    s = spawner()
    s.load_state({"version": 2, "job": {"job_id": "77"}})
    assert s.job_id == "77" and s.cluster_config.name == "slurm"


def test_the_sibling_for_another_cluster_leaves_the_spawner_as_it_was():
    s = spawner()
    s.use_cluster("slurm")
    sibling = s.for_cluster("pbs")
    assert sibling is not s and list(sibling.queue_table) == ["workq"]
    assert s.chosen_cluster == "slurm" and list(s.queue_table) == ["debug"]
    assert s.for_cluster("pbs") is sibling and s.for_cluster("slurm") is s
