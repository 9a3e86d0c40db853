"""SSHTransport closes a connection nothing uses (idle_timeout), against an SSH server inside
the test process: what counts as use, and that the next use connects again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hubdash.cluster.cluster import Cluster
from hubdash.cluster.config import ClusterConfig
from hubdash.cluster.monitor import MonitorSettings
from hubdash.schedulers.base import JobState
from hubdash.spawner.jobspawner import JobSpawner
from hubdash.transport import sshfiles
from hubdash.transport.ssh import SSHTransport

from ..monitor_views import view_once
from .inprocess_sshd import InProcessSSHD

IDLE = 1.0  # seconds; every wait below is an upper bound or a multiple of it
DATA = Path(__file__).parent / "data"


# Reconnects in tenths of a second (tests/unit/conftest.py).
pytestmark = pytest.mark.usefixtures("fast_backoff")


def transport(sshd: InProcessSSHD, **kwargs) -> SSHTransport:
    options = dict(
        known_hosts=str(sshd.known_hosts),
        client_keys=[str(sshd.key_path)],
        connect_timeout=5,
        username="alice",
        idle_timeout=IDLE,
    )
    options.update(kwargs)
    return SSHTransport("127.0.0.1", sshd.port, **options)


def open_connections(sshd: InProcessSSHD) -> int:
    return sum(1 for conn in sshd.connections if not conn.is_closed())


async def until_closed(t: SSHTransport, sshd: InProcessSSHD, patience: float = 10) -> None:
    for _ in range(int(patience / 0.05)):
        if not t.connected and open_connections(sshd) == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the idle connection was not closed")


async def test_an_unused_connection_is_closed_and_the_next_command_reconnects(sshd):
    t = transport(sshd)
    try:
        assert (await t.run(["echo", "one"])).stdout == "one\n"
        assert t.connected
        await until_closed(t, sshd)
        assert (await t.run(["echo", "two"])).stdout == "two\n"
        assert len(sshd.connections) == 2  # a second connection, made on demand
    finally:
        await t.close()


async def test_a_long_command_is_use_however_long_it_runs(sshd):
    t = transport(sshd)
    try:
        result = await t.run(["sleep", str(2 * IDLE)])
        assert result.exit_status == 0
        assert len(sshd.connections) == 1 and t.connected
    finally:
        await t.close()


async def test_commands_more_often_than_the_timeout_keep_one_connection(sshd):
    t = transport(sshd)
    try:
        for _ in range(6):  # 6 x IDLE/3: longer than IDLE in all
            await t.run(["true"])
            await asyncio.sleep(IDLE / 3)
        assert len(sshd.connections) == 1 and t.connected
    finally:
        await t.close()


async def test_the_kept_stat_session_holds_it_open_until_it_is_dropped(sshd, monkeypatch):
    monkeypatch.setattr(sshfiles, "STAT_SESSION_IDLE", 3 * IDLE)
    t = transport(sshd)
    try:
        assert not await t.exists("conn.json")
        await asyncio.sleep(2 * IDLE)
        assert t.connected and sshd.active_sessions == 1  # the stat session is still kept
        await until_closed(t, sshd)  # dropped after STAT_SESSION_IDLE, then IDLE more
        assert not await t.exists("conn.json")
    finally:
        await t.close()


async def test_a_forward_holds_it_open_and_its_close_starts_the_countdown(sshd):
    t = transport(sshd)
    try:
        forward = await t.open_remote_forward("127.0.0.1", 0, "127.0.0.1", 9)
        await asyncio.sleep(2 * IDLE)
        assert t.connected and forward.is_open
        await forward.close()
        await until_closed(t, sshd)
    finally:
        await t.close()


async def test_zero_never_closes_it(sshd):
    t = transport(sshd, idle_timeout=0)
    try:
        await t.run(["true"])
        await asyncio.sleep(2 * IDLE)
        assert t.connected
    finally:
        await t.close()


def test_a_negative_timeout_is_refused(sshd):
    with pytest.raises(ValueError, match="idle_timeout"):
        transport(sshd, idle_timeout=-1)


async def test_the_monitors_lookups_count_as_use(sshd, tmp_path):
    # A stand-in `scontrol` on the "login node": the monitor's lookup of one pending job.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f"#!/bin/sh\ncat {DATA / 'scontrol-show-job-pending-resources.txt'}\n")
    scontrol.chmod(0o755)
    transports: list[SSHTransport] = []

    def factory(username: str, _keys: object) -> SSHTransport:
        transports.append(transport(sshd, username=username))
        return transports[-1]

    settings = MonitorSettings(interval=IDLE / 5, starting_interval=IDLE / 5, jitter=0.0)
    config = ClusterConfig(name="idle", bin_dir=str(bin_dir), monitor=settings)
    cluster = Cluster(config, transport_maker=factory)
    try:
        cluster.monitor.track("69", "alice")
        await view_once(
            cluster.monitor,
            "69",
            lambda v: v.state is JobState.PENDING,
            "PENDING",
            patience=10,
            poll=0.05,
        )
        await asyncio.sleep(2.5 * IDLE)
        looked = sum(1 for command, _ in sshd.commands if "scontrol" in command)
        assert looked >= 4
        assert len(sshd.connections) == 1 and transports[0].connected
        cluster.monitor.untrack("69")  # no more lookups: the connection goes idle
        await until_closed(transports[0], sshd)
    finally:
        await cluster.close()


def test_the_spawner_setting_reaches_the_transport():
    spawner = JobSpawner(login_host="login.example", ssh_idle_timeout=42.0)
    spawner.user = type("User", (), {"name": "carol"})()
    assert spawner.user_transport().idle_timeout == 42.0
    assert JobSpawner().ssh_idle_timeout == 600.0
    with pytest.raises(Exception, match="ssh_idle_timeout"):
        JobSpawner(ssh_idle_timeout=-1)
