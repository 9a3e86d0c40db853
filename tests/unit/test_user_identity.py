"""One user's SSH identity never acts for another: every transport carries its own user's key.

The hub shares one Cluster between all spawners; its transports are keyed by cluster user,
and only a spawner of that user may create one.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from traitlets.config import Config

from hubdash.spawner.jobspawner import JobSpawner
from hubdash.transport.base import TransportError


class HubUser(SimpleNamespace):
    async def get_auth_state(self):
        return {"ssh_private_key": f"KEY OF {self.name}"}


def spawner_of(name: str, **settings) -> JobSpawner:
    config = Config()
    config.JobSpawner.login_host = "login.example.org"
    config.JobSpawner.known_hosts = "/etc/hubdash/known_hosts"
    config.JobSpawner.ssh_key_path = "/etc/hubdash/keys/{username}"
    for key, value in settings.items():
        setattr(config.JobSpawner, key, value)
    user = HubUser(name=name, groups=[], url=f"/user/{name}/", escaped_name=name)
    return JobSpawner(config=config, user=user)


def transport_of(spawner: JobSpawner):
    return spawner.user_transport()


def test_each_user_logs_in_as_themselves_with_their_own_key_file():
    alice, bob = spawner_of("alice"), spawner_of("bob")
    assert alice.cluster is bob.cluster  # one cluster for the hub
    first, second = transport_of(alice), transport_of(bob)
    assert (first.username, first.client_keys) == ("alice", ["/etc/hubdash/keys/alice"])
    assert (second.username, second.client_keys) == ("bob", ["/etc/hubdash/keys/bob"])
    # Later callers (the job monitor) get each user's own transport by name.
    assert alice.cluster.transport_for("bob") is second


def test_a_user_nobody_connected_gets_no_transport_rather_than_someone_elses_key():
    alice = spawner_of("alice")
    transport_of(alice)
    with pytest.raises(TransportError, match="cluster user bob"):
        alice.cluster.transport_for("bob")


async def test_keys_from_auth_state_are_each_users_own():
    settings = {"ssh_key_from_auth_state": "ssh_private_key"}
    alice, bob = spawner_of("alice", **settings), spawner_of("bob", **settings)
    first, second = transport_of(alice), transport_of(bob)
    assert (await first.key_source()).private_key == "KEY OF alice"
    assert (await second.key_source()).private_key == "KEY OF bob"
    assert second.username == "bob"


def test_cluster_account_names_outside_the_unix_alphabet_are_refused():
    spawner = spawner_of("alice", remote_username="{username};id")
    with pytest.raises(Exception, match="not a valid user name"):
        _ = spawner.cluster_username
