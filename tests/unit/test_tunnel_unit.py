"""Tunnel: the forwards of one server, its state for the dashboard and its health probe."""

from __future__ import annotations

import asyncio
import socket

import pytest

from hubdash.spawner.tunnel import Tunnel
from hubdash.transport import sshconnect
from hubdash.transport.local import LocalTransport
from hubdash.transport.ssh import SSHTransport

from .inprocess_sshd import InProcessSSHD


async def start_server(reply: bytes) -> tuple[asyncio.Server, int]:
    """Answers every request with `reply`, then closes (an HTTP/1.0 server when reply is HTTP)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(reply)
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def http_get(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.0\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def http_port():
    server, port = await start_server(b"HTTP/1.0 302 Found\r\nLocation: /hub/\r\n\r\n")
    yield port
    server.close()


@pytest.fixture
async def tunnel():
    transport = LocalTransport()
    tunnel = Tunnel(transport, hub_host="127.0.0.1", hub_port=8081)
    yield tunnel
    await tunnel.close()
    await transport.close()


async def test_notebook_forward_reaches_the_server_and_shows_in_state(tunnel, http_port):
    assert tunnel.state["notebook_forward"]["open"] is False
    port = await tunnel.open_notebook_forward("127.0.0.1", http_port)
    assert (await http_get(port)).startswith(b"HTTP/1.0 302")
    assert tunnel.state == {
        "hub_forward": {"port": None, "open": False},
        "notebook_forward": {
            "local_port": port,
            "node": "127.0.0.1",
            "remote_port": http_port,
            "open": True,
        },
        "rtt_ms": None,
    }


async def test_probe_measures_any_http_answer(tunnel, http_port):
    await tunnel.open_notebook_forward("127.0.0.1", http_port)
    seconds = await tunnel.probe()
    assert seconds is not None and 0 < seconds < 5
    assert tunnel.state["rtt_ms"] == pytest.approx(seconds * 1000, abs=0.01)


async def test_probe_is_none_when_nothing_answers_http(tunnel):
    server, port = await start_server(b"SSH-2.0-not-http\r\n")
    try:
        await tunnel.open_notebook_forward("127.0.0.1", port)
        assert await tunnel.probe() is None
        assert tunnel.state["rtt_ms"] is None
    finally:
        server.close()


async def test_probe_is_none_when_the_server_is_gone(tunnel):
    await tunnel.open_notebook_forward("127.0.0.1", free_port())
    assert await tunnel.probe(timeout=2) is None


async def test_probe_is_none_before_any_forward(tunnel):
    assert await tunnel.probe() is None


async def test_probe_gives_up_after_its_timeout(tunnel):
    async def silent(reader, writer):
        await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        await tunnel.open_notebook_forward("127.0.0.1", server.sockets[0].getsockname()[1])
        assert await tunnel.probe(timeout=0.2) is None
    finally:
        server.close()


async def test_given_local_port_is_used_again(http_port):
    wanted = free_port()
    tunnel = Tunnel(LocalTransport(), "127.0.0.1", http_port, local_port=wanted)
    try:
        assert await tunnel.open_notebook_forward() == wanted
        assert (await http_get(wanted)).startswith(b"HTTP/1.0")
    finally:
        await tunnel.close()


async def test_moving_to_another_node_keeps_the_local_port(tunnel, http_port):
    first = await tunnel.open_notebook_forward("127.0.0.1", free_port())
    assert await tunnel.open_notebook_forward("127.0.0.1", http_port) == first
    assert (await http_get(first)).startswith(b"HTTP/1.0")


async def test_local_hub_forward_is_the_hub_itself(tunnel):
    assert await tunnel.open_hub_forward() == 8081
    assert tunnel.state["hub_forward"] == {"port": 8081, "open": True}


async def test_close_closes_both_forwards(tunnel, http_port):
    await tunnel.open_hub_forward()
    port = await tunnel.open_notebook_forward("127.0.0.1", http_port)
    await tunnel.close()
    state = tunnel.state
    assert not state["hub_forward"]["open"] and not state["notebook_forward"]["open"]
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_missing_node_or_hub_is_a_clear_error():
    tunnel = Tunnel(LocalTransport())
    with pytest.raises(ValueError, match="node and port"):
        await tunnel.open_notebook_forward()
    with pytest.raises(ValueError, match="hub API"):
        await tunnel.open_hub_forward()


# -- over SSH (in-process server) -------------------------------------------------------------


@pytest.fixture
async def ssh_tunnel(tmp_path, monkeypatch):
    monkeypatch.setattr(sshconnect, "BACKOFF_START", 0.05)
    sshd = await InProcessSSHD(tmp_path).start()
    transport = SSHTransport(
        "127.0.0.1",
        sshd.port,
        username="alice",
        client_keys=[str(sshd.key_path)],
        known_hosts=str(sshd.known_hosts),
    )
    hub_server, hub_port = await start_server(b"HTTP/1.0 200 OK\r\n\r\nhub")
    tunnel = Tunnel(
        transport, hub_host="127.0.0.1", hub_port=hub_port, remote_listen_host="127.0.0.1"
    )
    yield sshd, tunnel
    await tunnel.close()
    await transport.close()
    hub_server.close()
    await sshd.stop()


async def test_ssh_tunnel_survives_a_dropped_connection_on_the_same_ports(ssh_tunnel, http_port):
    sshd, tunnel = ssh_tunnel
    hub_side = await tunnel.open_hub_forward()
    local = await tunnel.open_notebook_forward("127.0.0.1", http_port)
    assert (await http_get(hub_side)).endswith(b"hub")
    assert await tunnel.probe() is not None
    before = tunnel.state

    sshd.drop_connections()
    await asyncio.wait_for(tunnel.hub_forward.reopened.wait(), 5)
    await asyncio.wait_for(tunnel.notebook_forward.reopened.wait(), 5)

    assert tunnel.state["hub_forward"] == before["hub_forward"] == {"port": hub_side, "open": True}
    assert tunnel.state["notebook_forward"] == before["notebook_forward"]
    assert tunnel.state["notebook_forward"]["local_port"] == local
    assert (await http_get(hub_side)).endswith(b"hub")
    assert await tunnel.probe() is not None
