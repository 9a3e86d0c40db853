"""Tunnel: the forwards of one server, its state for the dashboard and its health probe."""

from __future__ import annotations

import asyncio
import socket

import pytest

from hubdash.spawner.tunnel import Tunnel
from hubdash.transport import sshconnect
from hubdash.transport.base import Forward
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


class RecordingTransport:
    """Says which forwards the tunnel asked for, with every argument."""

    def __init__(self) -> None:
        self.asked: list[tuple] = []
        self.forwards: list[Forward] = []

    async def open_local_forward(self, dest_host, dest_port, *, listen_port=0, spares=0):
        self.asked.append(("local", dest_host, dest_port, listen_port, spares))
        self.forwards.append(Forward("127.0.0.1", listen_port or 40000 + len(self.asked)))
        return self.forwards[-1]

    async def open_remote_forward(self, listen_host, listen_port, dest_host, dest_port):
        self.asked.append(("remote", listen_host, listen_port, dest_host, dest_port))
        self.forwards.append(Forward(listen_host, listen_port or 50000 + len(self.asked)))
        return self.forwards[-1]


async def test_the_forwards_are_asked_for_exactly_as_configured():
    transport = RecordingTransport()
    tunnel = Tunnel(transport, remote_listen_host="10.0.0.2")  # type: ignore[arg-type]
    assert await tunnel.open_notebook_forward("cn1", 8888) == 40001
    port = await tunnel.open_hub_forward("127.0.0.1", 8081)
    assert transport.asked == [
        ("local", "cn1", 8888, 0, 0),  # any free port, no spare connections by default
        ("remote", "10.0.0.2", 0, "127.0.0.1", 8081),
    ]
    assert port == tunnel.hub_forward_port == 50002
    spare = Tunnel(transport, spare_connections=2, local_port=41000)  # type: ignore[arg-type]
    await spare.open_notebook_forward("cn2", 9999)
    assert transport.asked[-1] == ("local", "cn2", 9999, 41000, 2)


async def test_ports_given_again_are_asked_for_again_and_a_reopened_forward_is_followed():
    transport = RecordingTransport()
    moved: list[int] = []
    tunnel = Tunnel(transport, on_hub_port_moved=moved.append)  # type: ignore[arg-type]
    await tunnel.open_notebook_forward("cn1", 8888, local_port=41234)
    await tunnel.open_hub_forward("hub", 8081, listen_port=45000)
    assert transport.asked[-2:] == [
        ("local", "cn1", 8888, 41234, 0),
        ("remote", "127.0.0.1", 45000, "hub", 8081),
    ]
    first = tunnel.hub_forward
    await tunnel.open_hub_forward(listen_port=45001)  # host and port as before
    assert not first.is_open and tunnel.hub_forward.is_open  # the old one is closed
    assert transport.asked[-1] == ("remote", "127.0.0.1", 45001, "hub", 8081)
    forward = tunnel.hub_forward
    forward.listen_port = 46000  # the transport re-opened it elsewhere after a reconnect
    forward._announce_reopen()
    assert tunnel.hub_forward_port == 46000 and moved == [46000]
    forward._announce_reopen()  # on the same port: nothing moved
    assert moved == [46000]
    assert tunnel.state["hub_forward"] == {"port": 46000, "open": True}


@pytest.mark.parametrize(("node", "port"), [(None, 8888), ("cn1", None), (None, None)])
async def test_a_notebook_forward_needs_both_node_and_port(node, port):
    tunnel = Tunnel(RecordingTransport())  # type: ignore[arg-type]
    with pytest.raises(ValueError) as refused:
        await tunnel.open_notebook_forward(node, port)
    assert str(refused.value) == "open_notebook_forward needs the node and port of the server"


@pytest.mark.parametrize(("host", "port"), [(None, 8081), ("hub", None)])
async def test_a_hub_forward_needs_both_host_and_port(host, port):
    tunnel = Tunnel(RecordingTransport())  # type: ignore[arg-type]
    with pytest.raises(ValueError) as refused:
        await tunnel.open_hub_forward(host, port)
    assert str(refused.value) == "open_hub_forward needs the hub API's host and port"


async def test_renew_without_a_keeper_says_whether_there_is_a_forward():
    tunnel = Tunnel(RecordingTransport())  # type: ignore[arg-type]
    assert await tunnel.renew() is False  # nothing to keep
    await tunnel.open_notebook_forward("cn1", 8888)
    assert await tunnel.renew() is True  # the transport's own: nothing to renew, still there


async def test_a_probe_that_reaches_nothing_is_none_and_raises_nothing():
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there any more
    tunnel = Tunnel(RecordingTransport())  # type: ignore[arg-type]
    tunnel.notebook_forward = Forward("127.0.0.1", port)
    tunnel.rtt_ms = 1.0
    assert await tunnel.probe(timeout=2) is None
    assert tunnel.rtt_ms is None


async def test_the_round_trip_is_shown_in_milliseconds_to_two_places(tunnel, http_port):
    await tunnel.open_notebook_forward("127.0.0.1", http_port)
    elapsed = await tunnel.probe()
    assert tunnel.rtt_ms == round(elapsed * 1000, 2)
    await tunnel.close()
    assert tunnel.rtt_ms is None


async def test_with_internal_tls_the_probe_speaks_tls_to_127_0_0_1(monkeypatch):
    import ssl

    context = ssl.create_default_context()
    asked: list[tuple] = []

    async def refused(host, port, **kwargs):
        asked.append((host, port, kwargs))
        raise ConnectionRefusedError

    monkeypatch.setattr(asyncio, "open_connection", refused)
    tunnel = Tunnel(RecordingTransport(), probe_ssl=context)  # type: ignore[arg-type]
    await tunnel.open_notebook_forward("cn1", 8888)
    assert await tunnel.probe() is None
    plain = Tunnel(RecordingTransport())  # type: ignore[arg-type]
    await plain.open_notebook_forward("cn1", 8888)
    await plain.probe()
    assert asked == [
        ("127.0.0.1", 40001, {"ssl": context, "server_hostname": "127.0.0.1"}),
        ("127.0.0.1", 40001, {"ssl": None, "server_hostname": None}),
    ]
