"""A burst of new SSH connections for many users at once reaches the login node's sshd
through the hub's connection throttle, and sshd refuses none of them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hubdash.metrics import SSH_CONNECTIONS
from hubdash.transport.ssh import SSHTransport
from hubdash.transport.throttle import ConnectThrottle

pytestmark = pytest.mark.integration

LOGIN_HOST = "10.213.0.2"
KEYS = Path("/etc/hubdash-testcluster/keys")
KNOWN_HOSTS = "/etc/hubdash-testcluster/known_hosts"
SSHD_LOG = Path("/var/log/hubdash-testcluster/sshd.log")
USERS = ("alice", "bob", "carol", "dave", "erin")


def sshd_log_size() -> int:
    return SSHD_LOG.stat().st_size if SSHD_LOG.exists() else 0


def sshd_log_since(offset: int) -> str:
    if not SSHD_LOG.exists():
        return ""
    with SSHD_LOG.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def counted(outcome: str) -> float:
    return SSH_CONNECTIONS.labels(LOGIN_HOST, outcome)._value.get()


async def test_twenty_connections_for_five_users_at_once_are_all_accepted(test_cluster):
    missing = [user for user in USERS if not (KEYS / user).exists()]
    if missing:
        pytest.fail(f"users {missing} are missing: run scripts/testcluster up")
    throttle = ConnectThrottle()  # the hub's defaults: 5 at once, 10 a second
    transports = [
        SSHTransport(
            LOGIN_HOST,
            username=USERS[n % len(USERS)],
            client_keys=[str(KEYS / USERS[n % len(USERS)])],
            known_hosts=KNOWN_HOSTS,
            connect_throttle=throttle,
            connect_attempts=1,  # a refused connection must show, not be retried away
        )
        for n in range(20)
    ]
    log_start = sshd_log_size()
    ok, failed = counted("ok"), counted("failed")
    try:
        results = await asyncio.gather(*(t.run(["id", "-un"], timeout=60) for t in transports))
    finally:
        await asyncio.gather(*(t.close() for t in transports))

    assert [r.stdout.strip() for r in results] == [USERS[n % 5] for n in range(20)]
    assert (counted("ok") - ok, counted("failed") - failed) == (20, 0)
    assert throttle.peak <= throttle.max_concurrent
    new_lines = sshd_log_since(log_start)
    assert "MaxStartups" not in new_lines and "drop connection" not in new_lines
