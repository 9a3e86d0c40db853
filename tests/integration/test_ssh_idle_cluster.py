"""An idle SSH connection is closed on the test cluster's login node: the user's sshd process
ends, and the next command connects again (SSHTransport's idle_timeout)."""

from __future__ import annotations

import asyncio
import re
import subprocess

import pytest

from hubdash.transport.ssh import SSHTransport

from .test_transport_ssh import KEYS, KNOWN_HOSTS, LOGIN_HOST

pytestmark = pytest.mark.integration

USER = "carol"
IDLE = 2.0


def sshd_pids_of_port(port: int) -> set[int]:
    """The login node's sshd processes that hold our connection (from its local port): the
    namespaces share this machine's pid space, so the pids are valid here too."""
    out = subprocess.run(
        ["nsenter", "--net=/var/run/netns/login", "ss", "-Htnp", "state", "established",
         f"( sport = :22 and dport = :{port} )"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    return {int(pid) for pid in re.findall(r"pid=(\d+)", out)}


def live_processes_of(user: str) -> dict[int, str]:
    """pid -> command of the user's processes that have not ended (zombies left out)."""
    out = subprocess.run(
        ["ps", "-u", user, "-o", "pid=,stat=,comm="],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    processes = {}
    for line in out.splitlines():
        pid, stat, comm = line.split(None, 2)
        if not stat.startswith("Z"):
            processes[int(pid)] = comm
    return processes


async def test_idle_connection_ends_the_users_sshd_and_the_next_command_reconnects(test_cluster):
    t = SSHTransport(
        LOGIN_HOST,
        username=USER,
        client_keys=[str(KEYS / USER)],
        known_hosts=str(KNOWN_HOSTS),
        idle_timeout=IDLE,
    )
    try:
        assert (await t.run(["echo", "first"])).stdout == "first\n"
        port = t._link.conn.get_extra_info("sockname")[1]
        ours = sshd_pids_of_port(port)
        theirs = {pid for pid, comm in live_processes_of(USER).items() if comm == "sshd"}
        assert ours & theirs, f"no sshd of {USER} holds port {port}: {ours} vs {theirs}"

        await asyncio.sleep(IDLE)
        for _ in range(100):  # up to 10 s more for sshd to notice and its parent to reap
            if not t.connected and not ours & set(live_processes_of(USER)):
                break
            await asyncio.sleep(0.1)
        assert not t.connected
        assert not ours & set(live_processes_of(USER)), "the user's sshd is still there"
        assert sshd_pids_of_port(port) == set()

        assert (await t.run(["echo", "again"])).stdout == "again\n"
        assert t._link.conn.get_extra_info("sockname")[1] != port  # a new connection
    finally:
        await t.close()
