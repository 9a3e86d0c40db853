"""One place builds clusters from configuration: the registry, the hub's shared state, and
the transports made from a cluster's login settings and a user's keys."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from traitlets import TraitError
from traitlets.config import Config

from hubdash.cluster.config import ClusterConfig
from hubdash.cluster.registry import ClusterRegistry
from hubdash.spawner.hubstate import HubState, hub_state
from hubdash.spawner.jobspawner import JobSpawner
from hubdash.transport.factory import LoginSettings, UserKeys
from hubdash.transport.local import LocalTransport


def spawner_of(name: str, settings: dict | None = None, **traits) -> JobSpawner:
    config = Config()
    config.JobSpawner.login_host = "login.example.org"
    config.JobSpawner.known_hosts = "/etc/hubdash/known_hosts"
    for key, value in traits.items():
        setattr(config.JobSpawner, key, value)
    user = SimpleNamespace(name=name, groups=[], url=f"/user/{name}/", escaped_name=name)
    if settings is not None:
        user.settings = settings
    return JobSpawner(config=config, user=user)


def test_spawners_of_one_hub_share_one_cluster_per_configuration():
    hub = {}  # the hub's tornado settings, which every User carries
    alice, bob = spawner_of("alice", hub), spawner_of("bob", hub)
    assert alice.cluster is bob.cluster
    assert isinstance(hub["hubdash_state"], HubState)
    other = spawner_of("carol", hub, login_host="other-login.example.org")
    assert other.cluster is not alice.cluster


def test_two_hubs_in_one_process_share_nothing():
    assert spawner_of("alice", {}).cluster is not spawner_of("alice", {}).cluster


def test_every_users_transport_on_a_cluster_shares_its_connect_throttle():
    alice, bob = spawner_of("alice", {}), spawner_of("bob", {})
    bob.user.settings = alice.user.settings
    first, second = alice.user_transport(), bob.user_transport()
    assert first is not second
    assert first.connector.connect_throttle is second.connector.connect_throttle


def test_the_cluster_config_carries_every_setting_it_is_made_of():
    spawner = spawner_of(
        "alice",
        scheduler="pbs",
        pbs_flavor="pbspro",
        login_port=2222,
        scheduler_bin_dir="/opt/pbs/bin",
        command_timeout=12.0,
        monitor_interval=45.0,
        queue_info_ttl=5.0,
        ssh_idle_timeout=60.0,
    )
    config = spawner.cluster_config
    assert (config.scheduler, config.scheduler_options) == ("pbs", (("flavor", "pbspro"),))
    assert (config.login.host, config.login.port, config.login.idle_timeout) == (
        "login.example.org",
        2222,
        60.0,
    )
    assert (config.bin_dir, config.command_timeout, config.queue_info_ttl) == (
        "/opt/pbs/bin",
        12.0,
        5.0,
    )
    assert config.monitor.interval == 45.0
    assert spawner.cluster.client.bin_dir == "/opt/pbs/bin"


def test_a_cluster_that_cannot_work_stops_the_hub_at_start_naming_the_setting():
    spawner = spawner_of("alice", login_host="")
    with pytest.raises(TraitError, match="login_host"):
        spawner.check_config()


def test_the_job_script_preview_builds_no_cluster():
    spawner = spawner_of("alice", queues={"debug": {"max_walltime": "1:00:00"}})
    spawner.orm_spawner = SimpleNamespace(name="", display_name="", server=None, state=None)
    assert "#SBATCH" in spawner.job_script({"queue": "debug", "walltime": "0:10:00"})
    assert list(hub_state(spawner.user).clusters) == []


async def test_the_registry_checks_a_config_and_closes_what_it_made():
    registry = ClusterRegistry()
    with pytest.raises(ValueError, match="scheduler"):
        registry.cluster(ClusterConfig(scheduler="lsf"))
    config = ClusterConfig(name="here", login=LoginSettings(transport="local"))
    cluster = registry.cluster(config)
    assert registry.cluster(config) is cluster
    transport = cluster.transport_for("alice", UserKeys())
    assert isinstance(transport, LocalTransport)
    assert cluster.transport_for("alice") is transport
    await registry.close()
    assert list(registry) == []
