"""SSHTransport and Tunnel against the test cluster's login node: real sshd, real namespaces.

The session fixture brings the test cluster up once (scripts/testcluster up).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import asyncssh
import pytest

from hubdash.spawner.tunnel import Tunnel
from hubdash.transport.base import HostKeyError
from hubdash.transport.local import LocalTransport
from hubdash.transport.ssh import SSHTransport

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LOGIN_HOST = "10.213.0.2"
CN1 = "10.213.1.2"
KEYS = Path("/etc/hubdash-testcluster/keys")
KNOWN_HOSTS = Path("/etc/hubdash-testcluster/known_hosts")
HOST_KEY_PUB = Path("/etc/hubdash-testcluster/ssh_host_ed25519_key.pub")
HOSTILE = "two words $(touch PWNED) `id` 'single' \"double\" ; rm -rf * \n-n --x=y \\"


async def run_here(*argv: str) -> tuple[int, str, str]:
    """A local command, without blocking the loop that serves the forwards under test."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode, out.decode(), err.decode()


def in_cn1(*argv: str) -> list[str]:
    return ["nsenter", "--net=/var/run/netns/cn1", *argv]


@pytest.fixture(scope="module")
def cluster_up(test_cluster):
    """The session's test cluster (tests/conftest.py brings it up once)."""
    return test_cluster


def transport_for(user: str = "alice", **kwargs) -> SSHTransport:
    options = dict(username=user, client_keys=[str(KEYS / user)], known_hosts=str(KNOWN_HOSTS))
    options.update(kwargs)
    return SSHTransport(LOGIN_HOST, **options)


@pytest.fixture
async def alice(cluster_up):
    transport = transport_for("alice")
    yield transport
    await transport.close()


@pytest.fixture
async def cn1_http(cluster_up, tmp_path):
    """`python3 -m http.server` on compute node cn1 (its namespace), serving a small file."""
    (tmp_path / "small.txt").write_text("hello from cn1\n")
    proc = await asyncio.create_subprocess_exec(
        *in_cn1(
            sys.executable,
            "-u",
            "-m",
            "http.server",
            "0",
            "--bind",
            CN1,
            "--directory",
            str(tmp_path),
        ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
        # "Serving HTTP on 10.213.1.2 port 41234 (http://10.213.1.2:41234/) ..."
        yield int(line.split(" port ")[1].split()[0])
    finally:
        proc.kill()
        await proc.wait()


@pytest.fixture
async def hub_api():
    """A stand-in for the hub API on this side (root namespace, 127.0.0.1)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 7\r\n\r\nhub api")
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def get(port: int, path: str = "/small.txt") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def get_from_cn1(port: int) -> str:
    script = (
        "import socket, sys; s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 5); "
        "s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); print(s.recv(200).decode())"
    )
    status, out, err = await run_here(*in_cn1(sys.executable, "-c", script, LOGIN_HOST, str(port)))
    assert status == 0, err
    return out


async def test_hostile_argument_arrives_as_one_literal_item(alice):
    result = await alice.run(["printf", "%s\n", HOSTILE])
    assert (result.exit_status, result.stdout) == (0, HOSTILE + "\n")
    assert (await alice.run(["test", "-e", "PWNED"])).exit_status == 1


async def test_write_file_is_0600_for_the_user_from_the_start(alice):
    await alice.write_file(".hubdash-it/conn.json", b'{"port": 1}')
    try:
        result = await alice.run(["stat", "-c", "%a %U", ".hubdash-it/conn.json", ".hubdash-it"])
        assert result.stdout == "600 alice\n700 alice\n"
        assert await alice.read_file(".hubdash-it/conn.json", max_bytes=100) == b'{"port": 1}'
    finally:
        await alice.remove(".hubdash-it/conn.json")
        await alice.run(["rmdir", ".hubdash-it"])
    with pytest.raises(FileNotFoundError):
        await alice.read_file(".hubdash-it/conn.json", max_bytes=100)


async def test_users_act_as_themselves(cluster_up):
    bob = transport_for("bob")
    try:
        assert (await bob.run(["id", "-un"])).stdout == "bob\n"
    finally:
        await bob.close()


async def test_local_transport_with_a_prefix_acts_as_the_user(cluster_up):
    # A hub on the login node itself: the prefix (runuser here, sudo on a site) makes us alice.
    alice_here = LocalTransport(prefix=["runuser", "-u", "alice", "--"])
    await alice_here.write_file(".hubdash-it-local/conn.json", b"{}")
    try:
        result = await alice_here.run(
            [
                "stat",
                "-c",
                "%a %U",
                "/home/alice/.hubdash-it-local/conn.json",
                "/home/alice/.hubdash-it-local",
            ]
        )
        assert result.stdout == "600 alice\n700 alice\n"
        assert await alice_here.read_file(".hubdash-it-local/conn.json", max_bytes=100) == b"{}"
        assert (await alice_here.run(["printf", "%s\n", HOSTILE])).stdout == HOSTILE + "\n"
    finally:
        await alice_here.remove(".hubdash-it-local/conn.json")
        await alice_here.run(["rmdir", "/home/alice/.hubdash-it-local"])


async def test_more_commands_than_sshd_max_sessions_all_succeed(alice):
    # sshd here has MaxSessions 10; 20 at once only work because we queue at max_sessions.
    results = await asyncio.gather(*(alice.run(["sleep", "0.2"]) for _ in range(20)))
    assert [r.exit_status for r in results] == [0] * 20


async def test_changed_host_key_is_refused_with_the_real_fingerprint(cluster_up, tmp_path):
    wrong = tmp_path / "known_hosts"
    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    wrong.write_text(f"{LOGIN_HOST} {impostor}")
    status, out, _ = await run_here("ssh-keygen", "-l", "-E", "sha256", "-f", str(HOST_KEY_PUB))
    real = out.split()[1]
    transport = transport_for("alice", known_hosts=str(wrong))
    with pytest.raises(HostKeyError) as caught:
        await transport.run(["true"])
    assert real in str(caught.value) and LOGIN_HOST in str(caught.value)
    await transport.close()


async def test_local_forward_reaches_a_compute_node(alice, cn1_http):
    # The hub side cannot reach cn1 at all; only the forward through the login node can.
    forward = await alice.open_local_forward(CN1, cn1_http)
    answer = await get(forward.listen_port)
    assert answer.startswith(b"HTTP/1.0 200") and answer.endswith(b"hello from cn1\n")


async def test_remote_forward_is_reachable_from_a_compute_node(alice, hub_api):
    forward = await alice.open_remote_forward(LOGIN_HOST, 0, "127.0.0.1", hub_api)
    assert "hub api" in await get_from_cn1(forward.listen_port)


async def test_tunnel_reopens_both_forwards_on_the_same_ports_after_a_drop(
    alice, cn1_http, hub_api
):
    tunnel = Tunnel(alice, hub_host="127.0.0.1", hub_port=hub_api, remote_listen_host=LOGIN_HOST)
    hub_side = await tunnel.open_hub_forward()
    local = await tunnel.open_notebook_forward(CN1, cn1_http)
    assert await tunnel.probe() is not None

    alice._link.conn.abort()  # the connection dies under us, as on a network failure
    await asyncio.wait_for(tunnel.hub_forward.reopened.wait(), 30)
    await asyncio.wait_for(tunnel.notebook_forward.reopened.wait(), 30)

    state = tunnel.state
    assert state["hub_forward"] == {"port": hub_side, "open": True}
    assert state["notebook_forward"]["local_port"] == local and state["notebook_forward"]["open"]
    assert "hub api" in await get_from_cn1(hub_side)
    assert (await get(local)).endswith(b"hello from cn1\n")
    await tunnel.close()


async def test_connection_to_the_login_node_is_encrypted_with_aes_gcm(alice):
    # AES-GCM carries ≈1.4x the bytes of asyncssh's default chacha20 through a tunnel.
    await alice.run(["true"])
    connection = alice._link.conn
    assert connection is not None
    assert connection.get_extra_info("send_cipher") == "aes128-gcm@openssh.com"
    assert connection.get_extra_info("recv_cipher") == "aes128-gcm@openssh.com"
