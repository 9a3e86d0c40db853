"""SSH access without the test cluster: connection throttling, keys held in memory (auth_state),
the file watch, against an SSH server inside the test process."""

from __future__ import annotations

import asyncio
import builtins
import os

import asyncssh
import pytest

from hubdash.metrics import SSH_CONNECTIONS
from hubdash.transport import sshconnect, sshfiles
from hubdash.transport import throttle as throttle_module
from hubdash.transport.base import TransportError
from hubdash.transport.credentials import CredentialsError, KeyMaterial, auth_state_key_source
from hubdash.transport.factory import LoginSettings
from hubdash.transport.ssh import SSHTransport
from hubdash.transport.throttle import ConnectThrottle

from .inprocess_sshd import InProcessSSHD

# Reconnects in tenths of a second (tests/unit/conftest.py).
pytestmark = pytest.mark.usefixtures("fast_backoff")


def transport(sshd: InProcessSSHD, **kwargs) -> SSHTransport:
    options = dict(known_hosts=str(sshd.known_hosts), connect_timeout=5, username="alice")
    if "key_source" not in kwargs:
        options["client_keys"] = [str(sshd.key_path)]
    options.update(kwargs)
    return SSHTransport("127.0.0.1", sshd.port, **options)


class FakeUser:
    """What auth_state_key_source needs of a JupyterHub user."""

    def __init__(self, auth_state: dict | None, name: str = "alice") -> None:
        self.name, self.auth_state, self.asked = name, auth_state, 0

    async def get_auth_state(self):
        self.asked += 1
        return self.auth_state


def connections(host: str, outcome: str) -> float:
    return SSH_CONNECTIONS.labels(host, outcome)._value.get()


# -- throttling ---------------------------------------------------------------------------------


async def test_burst_of_users_never_has_more_startups_than_the_throttle_allows(sshd):
    throttle = ConnectThrottle(max_concurrent=2, per_second=1000)
    users = [transport(sshd, connect_throttle=throttle) for _ in range(12)]
    ok_before = connections("127.0.0.1", "ok")
    try:
        results = await asyncio.gather(*(t.run(["echo", "hi"]) for t in users))
    finally:
        await asyncio.gather(*(t.close() for t in users))
    assert [r.stdout for r in results] == ["hi\n"] * 12
    assert sshd.max_startups_seen <= 2
    assert len(sshd.connections) >= 12
    assert connections("127.0.0.1", "ok") - ok_before == 12


async def test_throttle_spaces_connection_starts_by_its_rate(monkeypatch):
    asked: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        asked.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(throttle_module.asyncio, "sleep", sleep)
    throttle = ConnectThrottle(max_concurrent=10, per_second=10)

    async def attempt() -> None:
        async with throttle.slot():
            pass

    await asyncio.gather(*(attempt() for _ in range(3)))
    # The first starts at once; the next ones wait for their turn, 0.1 s apart.
    assert len(asked) == 2
    assert sorted(round(s, 1) for s in asked) == [0.1, 0.2]


@pytest.mark.parametrize("budget, keepers", [(1, 1), (2, 1), (3, 2), (4, 2), (9, 5)])
def test_the_forward_keeper_sets_up_half_as_many_connections_at_once(budget, keepers):
    """The hub's and the keeper's connections together: 1.5 times the budget at most, well
    below sshd's MaxStartups of 10 with the default 4 (4 + 4 met it under a class burst)."""
    login = LoginSettings(host="login", max_concurrent_connects=budget, connects_per_second=7)
    hub, keeper = login.new_throttle(), login.new_keeper_throttle()
    assert (hub.max_concurrent, hub.per_second) == (budget, 7)
    assert (keeper.max_concurrent, keeper.per_second) == (keepers, 7)


def test_throttle_refuses_limits_that_cannot_work():
    with pytest.raises(ValueError, match="max_concurrent"):
        ConnectThrottle(max_concurrent=0)
    with pytest.raises(ValueError, match="per_second"):
        ConnectThrottle(per_second=0)


async def test_host_key_refusal_is_counted_by_its_outcome(sshd):
    sshd.trust(asyncssh.generate_private_key("ssh-ed25519"))  # a key the server does not have
    before = connections("127.0.0.1", "host_key")
    t = transport(sshd)
    try:
        with pytest.raises(TransportError, match="host key"):
            await t.run(["true"])
    finally:
        await t.close()
    assert connections("127.0.0.1", "host_key") == before + 1


# -- keys from the authenticator's auth_state ---------------------------------------------------


async def test_key_from_auth_state_logs_in_without_touching_disk(sshd, monkeypatch):
    user = FakeUser({"ssh_key": sshd.client_key.export_private_key().decode()})
    source = auth_state_key_source(user, "ssh_key")
    written: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def watching_open(file, mode="r", *args, **kwargs):
        if any(flag in mode for flag in "wax+"):
            written.append(str(file))
        return real_open(file, mode, *args, **kwargs)

    def watching_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            written.append(str(path))
        return real_os_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", watching_open)
    monkeypatch.setattr(os, "open", watching_os_open)
    t = transport(sshd, key_source=source)
    try:
        assert (await t.run(["echo", "in"])).stdout == "in\n"
    finally:
        await t.close()
    assert written == []
    assert user.asked == 1  # read when connecting, not kept anywhere else


async def test_auth_state_without_the_key_names_the_entry_and_the_setting(sshd):
    t = transport(sshd, key_source=auth_state_key_source(FakeUser({}), "ssh_key"))
    try:
        with pytest.raises(CredentialsError, match=r"'ssh_key'.*ssh_key_from_auth_state"):
            await t.run(["true"])
    finally:
        await t.close()


async def test_unusable_key_from_auth_state_is_named_but_never_shown(sshd):
    secret = "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0IGtleSBtYXRlcmlhbA==\n"
    t = transport(sshd, key_source=auth_state_key_source(FakeUser({"k": secret}), "k"))
    try:
        with pytest.raises(CredentialsError) as refused:
            await t.run(["true"])
    finally:
        await t.close()
    assert "auth_state of alice" in str(refused.value)
    assert "c2VjcmV0" not in str(refused.value)


async def test_certificate_from_auth_state_is_paired_with_its_key():
    ca = asyncssh.generate_private_key("ssh-ed25519")
    key = asyncssh.generate_private_key("ssh-ed25519")
    cert = ca.generate_user_certificate(key, "alice", principals=["alice"])
    user = FakeUser({"key": key.export_private_key().decode(), "cert": cert.export_certificate()})
    material = await auth_state_key_source(user, "key", "cert")()
    pairs = sshconnect.import_keys(material, "login")
    assert any(pair.get_algorithm().endswith("-cert-v01@openssh.com") for pair in pairs)


def test_key_material_repr_hides_the_key():
    assert "SECRET" not in repr(KeyMaterial("SECRET", "SECRETCERT"))


def test_a_transport_takes_key_files_or_a_key_source_not_both():
    async def source() -> KeyMaterial:
        return KeyMaterial("x")

    with pytest.raises(ValueError, match="client_keys"):
        SSHTransport("h", username="a", known_hosts="/k")
    with pytest.raises(ValueError, match="not both"):
        SSHTransport("h", username="a", known_hosts="/k", client_keys=["/a"], key_source=source)


# -- watching for a file ------------------------------------------------------------------------


async def test_exists_keeps_one_sftp_session_for_its_looks(sshd):
    t = transport(sshd)
    try:
        assert not await t.exists("conn.json")
        (sshd.home / "conn.json").write_text("{}")
        assert await t.exists("conn.json")
        for _ in range(5):
            await t.exists("conn.json")
        assert sshd.active_sessions == 1  # the same session throughout
        sshd.drop_connections()
        assert await t.exists("conn.json")  # on a new connection
    finally:
        await t.close()


async def test_idle_sftp_session_for_looks_is_closed_and_frees_its_slot(sshd, monkeypatch):
    monkeypatch.setattr(sshfiles, "STAT_SESSION_IDLE", 0.05)
    t = transport(sshd, max_sessions=2)
    try:
        assert not await t.exists("conn.json")
        assert sshd.active_sessions == 1
        for _ in range(200):  # up to 10 s: an upper bound, not a timing
            if sshd.active_sessions == 0:
                break
            await asyncio.sleep(0.05)
        assert sshd.active_sessions == 0
        # Both slots are free again: two commands at once still run.
        results = await asyncio.gather(t.run(["echo", "a"]), t.run(["echo", "b"]))
        assert [r.stdout for r in results] == ["a\n", "b\n"]
    finally:
        await t.close()


async def test_with_one_session_allowed_looks_never_hold_it(sshd):
    t = transport(sshd, max_sessions=1)
    try:
        assert not await t.exists("conn.json")
        assert (await t.run(["echo", "free"])).stdout == "free\n"
    finally:
        await t.close()


# -- a spawn's files: one SFTP session ------------------------------------------------------------


async def test_a_spawns_file_work_shares_one_sftp_session(sshd):
    t = transport(sshd)
    try:
        await t.write_file("srv/job.sh", b"#!/bin/sh\n", mode=0o700)
        await t.write_file("srv/env", b"A=1\n")
        await t.remove("srv/conn.json")
        assert await t.read_file("srv/env", max_bytes=100) == b"A=1\n"
        assert await t.exists("srv/job.sh")
        assert sshd.active_sessions == 1  # one kept session did all of it
        assert sshd.max_sessions_seen == 1
        assert (sshd.home / "srv" / "job.sh").stat().st_mode & 0o777 == 0o700
    finally:
        await t.close()
    assert sshd.active_sessions == 0


async def test_file_work_goes_on_after_its_session_was_lost(sshd):
    t = transport(sshd)
    try:
        await t.write_file("env", b"one")
        sshd.drop_connections()
        await t.write_file("env", b"two")  # on a new connection and session
        assert (sshd.home / "env").read_bytes() == b"two"
    finally:
        await t.close()


async def test_a_refusal_by_the_sftp_server_keeps_the_session_for_the_next_operation(sshd):
    t = transport(sshd)
    try:
        (sshd.home / "dir").mkdir()
        with pytest.raises(TransportError, match="not a regular file"):
            await t.read_file("dir", max_bytes=10)
        with pytest.raises(TransportError, match="Could not remove"):
            await t.remove("dir")  # a folder: the SFTP server says no
        await t.write_file("ok", b"fine")
        assert sshd.max_sessions_seen == 1
    finally:
        await t.close()


async def test_with_one_session_allowed_file_work_leaves_it_free_for_commands(sshd):
    t = transport(sshd, max_sessions=1)
    try:
        await t.write_file("env", b"x")
        assert sshd.active_sessions == 0
        assert (await t.run(["cat", "env"])).stdout == "x"
    finally:
        await t.close()
