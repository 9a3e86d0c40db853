"""LoginHealth: whether a login node answers, from a real TCP server on loopback."""

from __future__ import annotations

import asyncio
import socket

import pytest

from hubdash.cluster.health import LoginHealth, ssh_greeting


@pytest.fixture
async def greeter():
    """A loopback server that greets like sshd (or as `box.greeting` says)."""
    box = {"greeting": b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n", "connections": 0}

    async def greet(reader, writer):
        box["connections"] += 1
        writer.write(box["greeting"])
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(greet, "127.0.0.1", 0)
    box["port"] = server.sockets[0].getsockname()[1]
    yield box
    server.close()
    await server.wait_closed()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_an_ssh_greeting_is_read(greeter):
    assert (await ssh_greeting("127.0.0.1", greeter["port"], 5)).startswith("SSH-2.0-OpenSSH")


async def test_a_server_that_is_not_ssh_does_not_count(greeter):
    greeter["greeting"] = b"HTTP/1.1 400 Bad Request\r\n"
    with pytest.raises(OSError, match="not an SSH server"):
        await ssh_greeting("127.0.0.1", greeter["port"], 5)


async def test_a_greeting_longer_than_the_protocol_allows_is_not_read(greeter):
    greeter["greeting"] = b"SSH-2.0-" + b"x" * 5000 + b"\r\n"
    with pytest.raises(OSError):
        await ssh_greeting("127.0.0.1", greeter["port"], 5)


async def test_down_then_back_by_itself_with_when_it_was_last_reachable(greeter):
    health = LoginHealth("127.0.0.1", greeter["port"], interval=3600)
    try:
        assert await health.check() and health.last_reachable is not None
        first_seen = health.last_reachable
        health.port = closed_port()  # the login node's sshd stops
        assert not await health.check(max_age=0)
        assert "does not answer (connection refused)" in health.message
        assert health.last_reachable == first_seen
        assert health.describe()["available"] is False
        health.port = greeter["port"]  # and comes back
        assert await health.check(max_age=0) and health.message == ""
    finally:
        await health.close()


async def test_answers_within_max_age_cost_no_connection(greeter):
    health = LoginHealth("127.0.0.1", greeter["port"], interval=3600)
    try:
        await asyncio.gather(*(health.check() for _ in range(20)))
        assert greeter["connections"] == 1  # twenty callers, one check
    finally:
        await health.close()


async def test_the_check_repeats_by_itself_every_interval(greeter):
    health = LoginHealth("127.0.0.1", greeter["port"], interval=1)
    try:
        await health.check()
        await asyncio.sleep(2.5)
        assert greeter["connections"] >= 2
    finally:
        await health.close()


async def test_a_silent_port_is_unavailable_after_the_timeout():
    async def silent(reader, writer):
        await asyncio.sleep(10)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    health = LoginHealth("127.0.0.1", port, interval=3600, timeout=0.5)
    try:
        assert not await health.check()
        assert f"127.0.0.1 port {port}" in health.message
        assert "no SSH answer within 0.5 s" in health.message
    finally:
        await health.close()
        server.close()
